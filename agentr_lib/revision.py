"""Revision trajectories from MCTS trees (docs/design.md "Revision trajectories"): pair good and bad leaves, find
the first error on the bad path (transition point t'), and splice a conversation that walks
the bad path up to t', admits the mistake, and continues along the good path.

Conventions (tested in tests/test_revision.py):
- Steps are numbered 1..L along a path (step i = the node at depth i). The divergence depth
  d of a pair is the number of steps the two paths share: up to the leaves' last common node,
  and on through the steps where both took the same action (`Pair.d`).
- t' is the number of bad-path steps kept before the revision signal (the paper's
  "revision length"). The good continuation starts right after the part of the good path
  shared with the kept bad segment, i.e. at step min(t', d) + 1.
- Loss flags are set on every message (data.py treats a missing flag on an assistant turn as
  trained): user turns never; the opening "Ok." never (a constant acknowledgement teaches
  nothing); the bad segment's assistant turns never; the revision signal and the good
  continuation always. Good trajectories train every assistant turn after the opening.

Usage (notebook 02):
    trees = load_trees("runs/x/mcts/trees")
    settings = RevisionSettings("agent_r", alpha=0.5, beta=0.2, verifier="value", max_pairs_per_tree=4, seed=0)
    ds = build_dataset(trees, settings, replay_env_factory=make_env)
    save_dataset(ds, "runs/x/revision/dataset"); pandas.DataFrame(counts(ds))
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Sequence

from tqdm.auto import tqdm

from .agent import REVISION_ACTION, REVISION_OBSERVATION, Turn, opening_messages, parse_action, take_action
from .checks import int_at_least, number, one_of, optional, setting
from .conversation import N_OPENING
from .envs import env_class
from .envs.base import Env
from .llm.base import Message, Policy
from .mcts import Node, Tree
from .prompts import REVISION_SIGNALS, judgment_in, parse_judgment, verifier_messages  # noqa: F401


# --------------------------------------------------------------------------------------
# Leaves and pairs
# --------------------------------------------------------------------------------------


def leaves(tree: Tree) -> list[Node]:
    """Terminal nodes without children (finished episodes), in node-id order."""
    return tree.leaves()


def is_good(score: float, alpha: float) -> bool:
    """score > alpha; a threshold of 1.0 (or more) means reward == 1, not an empty set."""
    return score >= 1.0 if alpha >= 1.0 else score > alpha


def divergence(a: Node, b: Node) -> Node:
    """The last node shared by the root-to-`a` and root-to-`b` paths."""
    shared = None
    for x, y in zip(a.path(), b.path()):
        if x is not y:
            break
        shared = x
    if shared is None:
        raise ValueError(f"nodes {a.id} and {b.id} are not in the same tree")
    return shared


@dataclass
class Pair:
    """A good and a bad leaf of one tree and the node where their paths split."""

    tree: Tree
    good: Node
    bad: Node
    divergence: Node

    @property
    def d(self) -> int:
        """Number of steps shared by the two paths: those up to their last common node, then
        every further step at which both took the same action. Two replies that differ only
        in their thought reach the same state (the environments are deterministic), so the
        error is looked for where the actions part: with tree nodes alone, 18 of 72 revision
        splices of a TextCraft search put the revision signal after a step the good path
        then repeated word for word (README, experiments table)."""
        shared, good, bad = self.divergence.depth, self.good_steps, self.bad_steps
        while shared < min(len(good), len(bad)) and good[shared].action is not None \
                and good[shared].action == bad[shared].action:
            shared += 1
        return shared

    @property
    def good_steps(self) -> list[Node]:
        return self.good.path()[1:]

    @property
    def bad_steps(self) -> list[Node]:
        return self.bad.path()[1:]


def make_pairs(tree: Tree, alpha: float, beta: float, max_pairs_per_tree: int | None, rng: random.Random) -> list[Pair]:
    """Every (good, bad) leaf pair with good score > alpha and bad score <= good - beta,
    capped at `max_pairs_per_tree` by a seeded sample (so one tree does not dominate)."""
    tree_leaves = leaves(tree)
    goods = [leaf for leaf in tree_leaves if is_good(leaf.score, alpha)]
    pairs = [
        (good, bad) for good in goods for bad in tree_leaves
        if bad is not good and bad.score <= good.score - beta + 1e-12
    ]
    if max_pairs_per_tree is not None and len(pairs) > max_pairs_per_tree:
        chosen = sorted(rng.sample(range(len(pairs)), max_pairs_per_tree))
        pairs = [pairs[i] for i in chosen]
    return [Pair(tree, good, bad, divergence(good, bad)) for good, bad in pairs]


# --------------------------------------------------------------------------------------
# Verifiers: where is the first error on the bad path?
# --------------------------------------------------------------------------------------


@dataclass
class Verdict:
    """t' and the evidence: per judged step, {"step", ...} with the raw judgment/value."""

    t_prime: int
    verifier: str
    judgments: list[dict] = field(default_factory=list)


def _subtree_best(node: Node) -> float:
    """The best leaf score under `node` (its own score when it is a leaf)."""
    best, stack = -1.0, [node]
    while stack:
        current = stack.pop()
        if current.children:
            stack.extend(current.children)
        elif current.terminal:
            best = max(best, current.score)
    return best


#: The methods a run can train (Figure 3's lines).
METHODS: tuple[str, ...] = ("agent_r", "direct_revision", "good_only")
#: value rule -> the verifier name its verdicts are recorded under
VERIFIER_NAMES: dict[str, str] = {"mean": "value", "no_good": "value-no-good", "seen": "value-seen"}
VALUE_RULES: tuple[str, ...] = tuple(VERIFIER_NAMES)
#: who finds a bad path's first error (`revision.verifier`): the value verifier by one of its
#: rules, named as its verdicts are recorded, or the model (the actor judges its own steps)
VERIFIERS: tuple[str, ...] = (*VERIFIER_NAMES.values(), "model")


def shows_failure(env: str, node: Node) -> bool:
    """Whether the step's observation tells the agent it failed: a reply with no action, or
    one of the environment's failure messages (`failure_prefixes`)."""
    prefixes = env_class(env).failure_prefixes  # first: an unknown environment is an error either way
    return node.action is None or node.observation.startswith(prefixes)


def lost_by_value(node: Node, alpha: float) -> bool:
    """The mean rule's test: the search rated the step lost (mean value below alpha, below 1
    when alpha >= 1)."""
    return node.value < min(alpha, 1.0)


def value_verifier(pair: Pair, alpha: float, rule: str = "mean") -> Verdict | None:
    """The first bad-path step after the divergence that the search already rated as lost.
    rule "mean" (the default, the design's): the node's mean value W/N is below alpha (below 1 when
    alpha >= 1, which makes t' = d + 1 whenever the bad leaf failed outright);
    rule "no_good": no leaf under the node is good (`is_good(best, alpha)` fails), i.e. the
    latest point the search saw no way back from -- never earlier than needed;
    rule "seen": lost by the mean rule and its observation shows the failure (`shows_failure`):
    the first error the model can see, so that the revision signal follows something it can
    learn to react to. None (the pair gives no revision row) when the bad path shows none.
    Steps 1..d are shared with the good path, which succeeded from them, so they cannot be
    the error: t' >= d + 1. No such step -> t' = the last step (rules mean, no_good). Recorded
    as verifier "value" ("value-no-good", "value-seen") with per-step values."""
    if rule not in VALUE_RULES:
        raise ValueError(f"rule={rule!r}; expected one of {VALUE_RULES}")
    steps = pair.bad_steps
    name = VERIFIER_NAMES[rule]
    judgments = []
    for index in range(pair.d, len(steps)):
        node = steps[index]
        record = {"step": index + 1, "value": round(node.value, 6), "N": node.N}
        if rule == "no_good":
            record["best"] = _subtree_best(node)
            lost = not is_good(record["best"], alpha)
        else:
            lost = lost_by_value(node, alpha)
            if rule == "seen":
                record["failure"] = shows_failure(pair.tree.env, node)
                lost = lost and record["failure"]
        judgments.append(record)
        if lost:
            return Verdict(index + 1, name, judgments)
    return None if rule == "seen" else Verdict(len(steps), name, judgments)


def _as_turn(node: Node) -> Turn:
    return Turn(response=node.response or "", action=node.action, observation=node.observation,
                reward=node.reward, done=node.done)


def verifier_prompt(tree: Tree, node: Node, count_tokens: Callable[[list[Message]], int] | None = None,
                    budget: int | None = None) -> list[Message]:
    """The chat that asks the actor to judge `node`'s step: the task, the steps before it
    (actions and observations) and the step itself (`prompts.verifier_messages`). With a
    token `budget` (and the policy's `count_tokens`), the oldest earlier steps are left out
    until the prompt fits (the history says how many), as an episode's oldest turns are, and
    if even the task and the judged step alone do not fit, the environment's instructions are
    left out too (a small model's context): the task and the judged step are always shown."""
    steps = [_as_turn(s) for s in node.path()[1:]]
    history, judged = steps[:-1], steps[-1]

    instruction = tree.root.instruction

    def prompt(omitted: int) -> list[Message]:
        return verifier_messages(instruction, tree.root.observation, history[omitted:], judged, omitted)

    if budget is None or count_tokens is None or count_tokens(prompt(0)) <= budget:
        return prompt(0)
    if count_tokens(prompt(len(history))) > budget:
        instruction = "(not shown: it does not fit the model's context)"
    low, high = 0, len(history)  # the fewest omitted steps that fit (all of them at worst)
    while low < high:
        middle = (low + high) // 2
        if count_tokens(prompt(middle)) <= budget:
            high = middle
        else:
            low = middle + 1
    return prompt(low)


def model_verifier(
    pairs: Sequence[Pair], policy: Policy, judge_from: str = "divergence", max_new_tokens: int = 128,
    progress: bool = True,
) -> list[Verdict]:
    """The paper's verifier: the actor judges bad-path steps, greedy, in ONE `generate` call
    over every step of every pair (the engine batches them; a step shared by several bad
    paths is judged once); the first step judged Bad is t'; none Bad -> t' = the last step.
    A reply without a judgment line counts as Uncertain and is recorded as unparsed
    (`parsed: false`, see `verdict_counts`). Each judgment records the step, the judged
    node's id in its tree, the judgment, whether it was parsed and the raw reply.
    `judge_from="divergence"` (default) judges steps d+1..L only (the shared steps led to a
    good outcome and a Bad there would splice a revision after a correct action);
    `judge_from="start"` walks the whole bad path from its first action, as the paper describes it."""
    if judge_from not in ("divergence", "start"):
        raise ValueError(f"judge_from={judge_from!r}; expected 'divergence' or 'start'")
    wanted: list[list[tuple[int, int, int]]] = []  # per pair: (tree, judged node, step) keys
    prompts: dict[tuple[int, int], list[Message]] = {}
    # a backend that counts tokens gets prompts that fit its context (oldest history steps left out)
    count_tokens = getattr(policy, "count_tokens", None)
    budget = policy.budget(max_new_tokens) if count_tokens is not None and hasattr(policy, "budget") else None
    for pair in pairs:
        steps = pair.bad_steps
        keys = []
        for position in range(pair.d if judge_from == "divergence" else 0, len(steps)):
            node = steps[position]
            if (id(pair.tree), node.id) not in prompts:
                prompts[(id(pair.tree), node.id)] = verifier_prompt(pair.tree, node, count_tokens, budget)
            keys.append((id(pair.tree), node.id, position + 1))
        wanted.append(keys)
    order = list(prompts)
    replies: dict[tuple[int, int], str] = {}
    if order:
        if progress:
            print(f"verifier: {len(order)} steps of {len(pairs)} pairs judged in one generate call", flush=True)
        out = policy.generate([prompts[key] for key in order], n=1, temperature=0.0, max_new_tokens=max_new_tokens)
        replies = {key: samples[0] if samples else "" for key, samples in zip(order, out)}
    verdicts = []
    for pair, keys in zip(pairs, wanted):
        judgments = []
        for tree_key, node_id, step in keys:
            raw = replies[(tree_key, node_id)]
            found = judgment_in(raw)
            judgments.append({"step": step, "node": node_id, "judgment": found or "Uncertain", "parsed": found is not None,
                              "raw": raw})
        bad_steps = [j["step"] for j in judgments if j["judgment"] == "Bad"]
        verdicts.append(Verdict(bad_steps[0] if bad_steps else len(pair.bad_steps), "model", judgments))
    return verdicts


def verdict_counts(rows: Any) -> dict[str, Any]:
    """The model verifier's verdicts over a dataset's spliced rows (or RevisionRow dicts),
    each judged step counted once (a bad path shared by several pairs is judged once):
    judged, Good, Bad, Uncertain (the reply said so), unparsed (no judgment line: acted on as
    Uncertain), and `uncertain_fraction` = (Uncertain + unparsed) / judged (None when nothing
    was judged). Rows of the value verifier have no verdicts and count nothing."""
    seen: dict[tuple, dict] = {}
    for row in rows.to_list() if hasattr(rows, "to_list") else rows:
        if row.get("verifier") != "model":
            continue
        for judgment in json.loads(row["judgments"]):
            seen.setdefault((row["env"], row["task_id"], judgment.get("node", judgment["step"])), judgment)
    counts_ = {"judged": len(seen), "Good": 0, "Bad": 0, "Uncertain": 0, "unparsed": 0}
    for judgment in seen.values():
        counts_[judgment["judgment"] if judgment.get("parsed", True) else "unparsed"] += 1
    counts_["uncertain_fraction"] = ((counts_["Uncertain"] + counts_["unparsed"]) / counts_["judged"]
                                     if counts_["judged"] else None)
    return counts_


# --------------------------------------------------------------------------------------
# Splicing
# --------------------------------------------------------------------------------------


def _opening(tree: Tree) -> list[dict]:
    turns = opening_messages(tree.root.instruction, tree.root.observation)
    return [{**turn, "loss": False} for turn in turns]


def _turns(steps: Sequence[Node], loss: bool) -> list[dict]:
    turns = []
    for node in steps:
        turns.append({"role": "assistant", "content": node.response or "", "loss": loss})
        turns.append({"role": "user", "content": node.observation, "loss": False})
    return turns


def splice(pair: Pair, t_prime: int, signal: str) -> list[dict]:
    """Opening turns; bad steps 1..t' (no loss); `Thought: <signal>\\nAction: wait` (loss) and
    `ok.`; then the good path's steps after the part it shares with the kept bad segment,
    i.e. from step min(t', d) + 1 (loss)."""
    bad, good = pair.bad_steps, pair.good_steps
    if not 1 <= t_prime <= len(bad):
        raise ValueError(f"t_prime={t_prime} outside the bad path's steps 1..{len(bad)} (tree {pair.tree.task_id}, leaf {pair.bad.id})")
    messages = _opening(pair.tree) + _turns(bad[:t_prime], loss=False)
    messages.append({"role": "assistant", "content": f"Thought: {signal}\nAction: {REVISION_ACTION}", "loss": True})
    messages.append({"role": "user", "content": REVISION_OBSERVATION, "loss": False})
    messages += _turns(good[min(t_prime, pair.d):], loss=True)
    return messages


def good_messages(leaf: Node, tree: Tree) -> list[dict]:
    """A good root-to-leaf path with every assistant turn after the opening trained."""
    return _opening(tree) + _turns(leaf.path()[1:], loss=True)


# --------------------------------------------------------------------------------------
# Replay check
# --------------------------------------------------------------------------------------


def replay_check(messages: list[dict], env: Env, task_id: int, target: float) -> tuple[bool, list[dict], float]:
    """Replay a spliced conversation's actions in `env` (the revision turn `Action: wait` is
    answered `ok.` without touching the env, as during an episode) and replace every
    observation with the replayed one. Consistent = the replay ends with a reward >= `target`
    (the good leaf's score). Returns (consistent, new messages, final reward)."""
    env.reset(task_id)
    replayed = [dict(m) for m in messages]
    reward, finished = 0.0, False
    for i in range(N_OPENING, len(replayed) - 1, 2):  # assistant turns after the opening
        action = parse_action(replayed[i]["content"])
        if finished and action is not None:
            observation = "The episode has already ended."
        else:
            observation, step_reward, step_done = take_action(env, action, reward)
            reward, finished = max(0.0, float(step_reward)), finished or step_done
        replayed[i + 1] = {**replayed[i + 1], "content": observation}
    return reward >= target - 1e-9, replayed, reward


# --------------------------------------------------------------------------------------
# Datasets
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RevisionSettings:
    """How one iteration's trees become training rows: the profile's `revision` section
    (a field made by `setting` is the key `revision.<field>`: agentr_lib.profiles reads its
    default, check and meaning here) plus the method and the choices tests and ablations
    vary. `alpha`: a good leaf scores above it; `beta`: a bad leaf scores at least this much
    below its good one; `max_pairs_per_tree` / `max_good_per_tree` (None = all) cap pairs and
    good rows per tree by a seeded sample (a tree whose late steps branch a lot yields many
    near-identical good paths); `judge_from` as in `model_verifier`; `verifier` the model or
    the value verifier with the rule it is named by (`value_verifier`); `drop_inconsistent`
    leaves out the splices whose replay misses the good reward."""

    method: str = "agent_r"
    alpha: float = 0.5
    beta: float = setting(0.2, number(0), "bad leaf: at least beta below the good leaf", "02")
    verifier: str = setting("value", one_of(*VERIFIERS), "who finds the first error: the search's values by one "
                            "rule -- value (the first step after the divergence whose mean value is below alpha), "
                            "value-no-good (the first with no good leaf under it, i.e. later) or value-seen (the first "
                            "value error whose observation shows the failure; a pair without one gives no revision "
                            "row) -- or model (the actor judges its own steps)", "02")
    max_pairs_per_tree: int | None = setting(4, optional(int_at_least(1)), "(good, bad) pairs kept per tree, a seeded "
                                             "sample (null/None: all), so one tree does not dominate", "02")
    max_good_per_tree: int | None = None
    seed: int = 0
    judge_from: str = "divergence"
    drop_inconsistent: bool = False

    def __post_init__(self) -> None:
        for name, value, allowed in (("method", self.method, METHODS), ("verifier", self.verifier, VERIFIERS),
                                     ("judge_from", self.judge_from, ("divergence", "start"))):
            if value not in allowed:
                raise ValueError(f"{name}={value!r}; expected one of {allowed}")


@dataclass(kw_only=True)
class RevisionRow:
    """One training trajectory: a row of the dataset, its fields in column order (the one
    place the row schema is written; `row_features` maps their types to `datasets` types).

    `kind`: revision (Agent-R splice), direct (Direct-Revision splice) or good; `t_prime`:
    bad-path steps kept before the revision signal (-1 for good rows); `bad_len` = t';
    `good_len`: good-path steps after the splice point (the whole path for a good row);
    `bad_score` and `divergence` (steps shared by the pair): -1 for good rows; `judgments`:
    the verifier's per-step evidence as JSON; `consistent`: whether the replayed splice still
    reaches the good reward (None without a replay check)."""

    messages: list[dict]
    env: str
    task_id: int
    kind: str
    t_prime: int = -1
    bad_len: int = 0
    good_len: int
    good_score: float
    bad_score: float = -1.0
    divergence: int = -1
    signal: str = ""
    verifier: str = ""
    judgments: str = "[]"
    consistent: bool | None = None

    def to_dict(self) -> dict:
        return {name: getattr(self, name) for name in ROW_COLUMNS}


#: The dataset's columns, in order.
ROW_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(RevisionRow))


def build_rows(trees: Sequence[Tree], settings: RevisionSettings | None = None, policy: Policy | None = None,
               replay_env_factory: Callable[[str], Env] | None = None, progress: bool = True,
               tally: dict[str, int] | None = None) -> list[RevisionRow]:
    """The rows of `build_dataset`, one per trajectory: good rows first (tree order, then
    leaf order), then spliced rows. The trees may come from several environments: the model
    verifier judges all their pairs in one call. `policy`: the actor, for the model verifier.
    With `replay_env_factory` (env name -> a fresh env, e.g. `make_env`) every splice is
    replayed (observations replaced, `consistent` recorded), one env opened per environment.
    `tally` (a dict) receives what leaves no trace in the rows: `pairs` (sampled), `unseen`
    (those the value rule "seen" dropped: no failure visible on the bad path) and `inconsistent`
    (those `drop_inconsistent` dropped)."""
    settings = settings or RevisionSettings()
    method = settings.method
    if settings.verifier == "model" and method == "agent_r" and policy is None:
        raise ValueError("verifier='model' needs a policy (the actor judges its own steps)")
    rng = random.Random(settings.seed)
    tally = tally if tally is not None else {}
    tally.update(pairs=0, unseen=0, inconsistent=0)
    rows: list[RevisionRow] = []
    for tree in trees:
        good_leaves = [leaf for leaf in leaves(tree) if is_good(leaf.score, settings.alpha)]
        cap = settings.max_good_per_tree
        if cap is not None and len(good_leaves) > cap:
            good_leaves = [good_leaves[i] for i in sorted(rng.sample(range(len(good_leaves)), cap))]
        for leaf in good_leaves:
            rows.append(RevisionRow(messages=good_messages(leaf, tree), env=tree.env, task_id=tree.task_id, kind="good",
                                    good_len=leaf.depth, good_score=leaf.score))
    if method == "good_only":
        return rows
    pairs = [pair for tree in trees
             for pair in make_pairs(tree, settings.alpha, settings.beta, settings.max_pairs_per_tree, rng)]
    if method == "direct_revision":
        verdicts = [Verdict(len(p.bad_steps), "none", []) for p in pairs]
    elif settings.verifier == "model":
        verdicts = model_verifier(pairs, policy, judge_from=settings.judge_from, progress=progress)
    else:
        rule = next(rule for rule, name in VERIFIER_NAMES.items() if name == settings.verifier)
        verdicts = [value_verifier(pair, settings.alpha, rule) for pair in pairs]
    tally.update(pairs=len(pairs), unseen=sum(verdict is None for verdict in verdicts))
    kept = [(pair, verdict) for pair, verdict in zip(pairs, verdicts) if verdict is not None]  # rule "seen"
    pairs, verdicts = [pair for pair, _ in kept], [verdict for _, verdict in kept]
    kind = "revision" if method == "agent_r" else "direct"
    envs: dict[str, Env] = {}
    try:
        for pair, verdict in tqdm(list(zip(pairs, verdicts)), desc=f"splice {method}", disable=not progress):
            signal = rng.choice(REVISION_SIGNALS)
            messages = splice(pair, verdict.t_prime, signal)
            consistent = None
            if replay_env_factory is not None:
                if pair.tree.env not in envs:
                    envs[pair.tree.env] = replay_env_factory(pair.tree.env)
                env = envs[pair.tree.env]
                consistent, messages, _ = replay_check(messages, env, pair.tree.task_id, pair.good.score)
                if settings.drop_inconsistent and not consistent:
                    tally["inconsistent"] += 1
                    continue
            rows.append(RevisionRow(
                messages=messages, env=pair.tree.env, task_id=pair.tree.task_id, kind=kind,
                good_len=len(pair.good_steps) - min(verdict.t_prime, pair.d), good_score=pair.good.score,
                t_prime=verdict.t_prime, bad_len=verdict.t_prime, bad_score=pair.bad.score, divergence=pair.d,
                signal=signal, verifier=verdict.verifier,
                judgments=json.dumps(verdict.judgments, ensure_ascii=False), consistent=consistent))
    finally:
        for env in envs.values():
            env.close()
    return rows


def observation_kind(observation: str, words: int = 3) -> str:
    """An observation's first words with numbers replaced by N (`Got N acacia`, `Could not
    find`): enough to tell a visible failure from a step that looked fine."""
    return " ".join("N" if token.strip(".,:").isdigit() else token for token in observation.split()[:words])


def revision_turn_index(messages: Sequence[dict]) -> int:
    """The index of a spliced row's revision turn (the trained `Thought: <signal>` +
    `Action: wait` reply `splice` inserts)."""
    return next(i for i, m in enumerate(messages) if m["role"] == "assistant" and m["loss"]
                and m["content"].endswith(f"Action: {REVISION_ACTION}"))


def signal_contexts(rows: Any) -> list[dict]:
    """For every spliced row, what the model sees just before the revision signal: the kept
    bad step's action, the observation it got back and that observation's kind. A model can
    only learn to revise what it can see: a signal after a failure message is learnable, one
    after an observation no different from the good path's is noise."""
    contexts = []
    for row in rows:
        if row["kind"] == "good":
            continue
        messages = row["messages"]
        at = revision_turn_index(messages)
        contexts.append({"env": row["env"], "task_id": row["task_id"], "kind": row["kind"], "t_prime": row["t_prime"],
                         "action": parse_action(messages[at - 2]["content"]), "observation": messages[at - 1]["content"],
                         "observation_kind": observation_kind(messages[at - 1]["content"])})
    return contexts


def row_features() -> Any:
    """The dataset schema (RevisionRow's fields as `datasets` types), fixed so that datasets
    of different envs/methods (or an empty one) always concatenate."""
    from datasets import Features, List, Value

    types = {"list[dict]": lambda: List({"role": Value("string"), "content": Value("string"), "loss": Value("bool")}),
             "str": lambda: Value("string"), "int": lambda: Value("int64"), "float": lambda: Value("float64"),
             "bool | None": lambda: Value("bool")}
    # one object per column: the pickled schema (and so datasets' fingerprint) stays what it was
    return Features({f.name: types[str(f.type)]() for f in fields(RevisionRow)})


def build_dataset(trees: Sequence[Tree], settings: RevisionSettings | None = None, policy: Policy | None = None,
                  replay_env_factory: Callable[[str], Env] | None = None, progress: bool = True,
                  tally: dict[str, int] | None = None) -> Any:
    """A `datasets.Dataset` of `build_rows`, one row per trajectory (RevisionRow's fields:
    messages [{role, content, loss}], env, task_id, kind, t_prime, ...); `tally` as there."""
    from datasets import Dataset

    rows = build_rows(trees, settings, policy=policy, replay_env_factory=replay_env_factory, progress=progress,
                      tally=tally)
    if not rows:
        return Dataset.from_dict({key: [] for key in ROW_COLUMNS}, features=row_features())
    return Dataset.from_list([row.to_dict() for row in rows], features=row_features())


def save_dataset(ds: Any, out_dir: str | Path) -> Path:
    """`save_to_disk(out_dir)` plus a `data.jsonl` copy beside it for inspection (written
    atomically). Returns out_dir."""
    from .io import write_jsonl

    out_dir = Path(out_dir)
    ds.save_to_disk(str(out_dir))
    write_jsonl(out_dir / "data.jsonl", ds.to_list())
    return out_dir


def load_dataset(out_dir: str | Path) -> Any:
    """Read a dataset written by `save_dataset`; an iteration whose search found no pair
    gives an empty dataset with the usual columns (datasets cannot reload an empty one)."""
    from datasets import load_from_disk

    from .io import read_jsonl

    if not read_jsonl(Path(out_dir) / "data.jsonl"):
        return build_dataset([])
    return load_from_disk(str(out_dir))


def counts(ds: Any) -> list[dict]:
    """Table-1-style counts: one row per env with revision/direct/good trajectories, the
    replay check's consistent count and the mean t'."""
    by_env: dict[str, dict] = {}
    for row in ds.to_list() if hasattr(ds, "to_list") else ds:
        entry = by_env.setdefault(row["env"], {"env": row["env"], "revision": 0, "direct": 0, "good": 0,
                                               "checked": 0, "consistent": 0, "t_prime_sum": 0})
        entry[row["kind"]] += 1
        if row["consistent"] is not None:
            entry["checked"] += 1
            entry["consistent"] += bool(row["consistent"])
        if row["kind"] != "good":
            entry["t_prime_sum"] += row["t_prime"]
    result = []
    for env in sorted(by_env):
        entry = by_env[env]
        spliced = entry["revision"] + entry["direct"]
        total = entry.pop("t_prime_sum")
        entry["mean_t_prime"] = total / spliced if spliced else None  # None, not NaN: JSON has no NaN
        result.append(entry)
    return result
