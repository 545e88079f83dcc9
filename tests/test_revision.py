"""Revision construction on hand-built trees with known answers: pairing, verifiers,
splices and their loss flags, the replay check, datasets."""

from __future__ import annotations

import json
import random
import re

import pytest

from agentr_lib.llm.scripted import ScriptedPolicy
from agentr_lib.mcts import Node, Tree, backpropagate, mark_terminal
from agentr_lib.prompts import REVISION_SIGNALS
from agentr_lib.revision import (
    RevisionSettings, build_dataset, counts, divergence, is_good, leaves, make_pairs, model_verifier, observation_kind,
    parse_judgment, replay_check, save_dataset, signal_contexts, splice, value_verifier,
)
from fake_env import NumberLine

# ---------------------------------------------------------------------- a hand-built tree
#
# root
# |- A (a)            N3 W1   value 1/3
# |  |- B (b)         N2 W1   value 1/2
# |  |  |- G (g)      reward 1, done            <- good
# |  |  '- X (x)      reward 0, depth cap
# |  '- C (c)         N1 W0   value 0
# |     '- D (d)      reward 0, depth cap
# '- E (e)            reward 0.6, done


def add(tree: Tree, parent: Node, name: str, reward: float = 0.0, done: bool = False, terminal: bool = False) -> Node:
    node = Node(id=len(tree.nodes), depth=parent.depth + 1, response=f"Thought: do {name}.\nAction: {name}",
                action=name, observation=f"obs {name}", reward=reward, done=done, parent=parent)
    parent.children.append(node)
    tree.nodes.append(node)
    if terminal or done:
        backpropagate(node, node.score)
        mark_terminal(node)
    return node


def hand_tree() -> tuple[Tree, dict[str, Node]]:
    root = Node(id=0, depth=0, observation="start", instruction="inst")
    tree = Tree("toy", 7, root, [root])
    n = {"root": root}
    n["A"] = add(tree, root, "a")
    n["B"] = add(tree, n["A"], "b")
    n["G"] = add(tree, n["B"], "g", reward=1.0, done=True)
    n["X"] = add(tree, n["B"], "x", terminal=True)
    n["C"] = add(tree, n["A"], "c")
    n["D"] = add(tree, n["C"], "d", terminal=True)
    n["E"] = add(tree, root, "e", reward=0.6, done=True)
    return tree, n


def pair_of(tree, good, bad):
    return next(p for p in make_pairs(tree, 0.0, -1.0, None, random.Random(0)) if p.good is good and p.bad is bad)


OPENING = [
    {"role": "user", "content": "inst", "loss": False},
    {"role": "assistant", "content": "Ok.", "loss": False},
    {"role": "user", "content": "start", "loss": False},
]


def turns(names: str, loss: bool) -> list[dict]:
    out = []
    for name in names:
        out.append({"role": "assistant", "content": f"Thought: do {name}.\nAction: {name}", "loss": loss})
        out.append({"role": "user", "content": f"obs {name}", "loss": False})
    return out


SIGNAL = [
    {"role": "assistant", "content": "Thought: S\nAction: wait", "loss": True},
    {"role": "user", "content": "ok.", "loss": False},
]


# ---------------------------------------------------------------------- leaves and pairs


def test_hand_tree_values():
    tree, n = hand_tree()
    assert [leaf.action for leaf in leaves(tree)] == ["g", "x", "d", "e"]
    assert (n["A"].N, n["A"].W, n["B"].value, n["C"].value, n["root"].N) == (3, 1.0, 0.5, 0.0, 4)
    assert n["A"].terminal and n["root"].terminal
    assert divergence(n["G"], n["X"]) is n["B"] and divergence(n["G"], n["D"]) is n["A"]
    assert divergence(n["G"], n["E"]) is n["root"]


def test_alpha_one_means_reward_equals_one():
    assert is_good(1.0, 1.0) and not is_good(0.99, 1.0)
    assert is_good(0.6, 0.5) and not is_good(0.5, 0.5)


def names(pairs) -> list[tuple[str, str]]:
    return [(p.good.action, p.bad.action) for p in pairs]


def test_pairing_honours_alpha_and_beta():
    tree, _ = hand_tree()
    assert names(make_pairs(tree, 0.5, 0.2, None, random.Random(0))) == [
        ("g", "x"), ("g", "d"), ("g", "e"), ("e", "x"), ("e", "d")]
    assert names(make_pairs(tree, 1.0, 0.2, None, random.Random(0))) == [("g", "x"), ("g", "d"), ("g", "e")]
    assert names(make_pairs(tree, 0.7, 0.2, None, random.Random(0))) == [("g", "x"), ("g", "d"), ("g", "e")]
    assert names(make_pairs(tree, 0.5, 0.5, None, random.Random(0))) == [("g", "x"), ("g", "d"), ("e", "x"), ("e", "d")]
    assert names(make_pairs(tree, 0.5, 0.4, None, random.Random(0)))[2] == ("g", "e")  # 0.6 <= 1.0 - 0.4
    assert make_pairs(tree, 1.5, 0.0, None, random.Random(0))[0].good.action == "g"  # alpha > 1 is still reward == 1


def test_pair_cap_is_a_seeded_sample():
    tree, _ = hand_tree()
    capped = [names(make_pairs(tree, 0.5, 0.2, 2, random.Random(seed))) for seed in range(12)]
    assert all(len(pairs) == 2 for pairs in capped)
    assert capped[3] == names(make_pairs(tree, 0.5, 0.2, 2, random.Random(3)))
    assert len({tuple(pairs) for pairs in capped}) > 1
    everything = set(names(make_pairs(tree, 0.5, 0.2, None, random.Random(0))))
    assert all(set(pairs) <= everything for pairs in capped)


# ---------------------------------------------------------------------- verifiers


def test_value_verifier_picks_first_low_value_step_after_divergence():
    tree, n = hand_tree()
    gd = pair_of(tree, n["G"], n["D"])  # d = 1; A (1/3) is shared, C (0) is the first low one
    verdict = value_verifier(gd, 0.5)
    assert (verdict.t_prime, verdict.verifier) == (2, "value")
    assert verdict.judgments == [{"step": 2, "value": 0.0, "N": 1}]
    assert value_verifier(pair_of(tree, n["G"], n["X"]), 0.5).t_prime == 3  # d = 2
    ex = pair_of(tree, n["E"], n["X"])  # d = 0: A (1/3) < 0.5 is the first error
    assert value_verifier(ex, 0.5).t_prime == 1
    verdict = value_verifier(ex, 0.3)  # A 1/3 and B 1/2 pass, X 0 fails
    assert verdict.t_prime == 3 and [j["step"] for j in verdict.judgments] == [1, 2, 3]
    assert value_verifier(ex, 1.0).t_prime == 1  # alpha 1: any failure below counts
    assert value_verifier(pair_of(tree, n["G"], n["E"]), 0.5).t_prime == 1  # E 0.6: none low -> last step


def test_value_verifier_no_good_rule_waits_for_the_point_of_no_return():
    tree, n = hand_tree()
    ex = pair_of(tree, n["E"], n["X"])  # A and B still have G (1.0) below them; X has nothing
    verdict = value_verifier(ex, 0.5, rule="no_good")
    assert verdict.t_prime == 3 and verdict.verifier == "value-no-good"
    assert [(j["step"], j["best"]) for j in verdict.judgments] == [(1, 1.0), (2, 1.0), (3, 0.0)]
    gd = pair_of(tree, n["G"], n["D"])  # C's subtree holds only D (0)
    assert value_verifier(gd, 1.0, rule="no_good").t_prime == 2
    assert value_verifier(pair_of(tree, n["G"], n["E"]), 0.5, rule="no_good").t_prime == 1  # E itself is good
    with pytest.raises(ValueError, match="rule"):
        value_verifier(gd, 0.5, rule="median")
    ds = build_dataset([tree], RevisionSettings("agent_r", alpha=0.5, beta=0.2, verifier="value-no-good", max_pairs_per_tree=None),
                       progress=False)
    assert {r["verifier"] for r in ds.to_list() if r["kind"] == "revision"} == {"value-no-good"}


def test_value_verifier_seen_rule_waits_for_a_failure_the_model_can_see():
    tree, n = hand_tree()
    tree.env = "textcraft"
    gd = pair_of(tree, n["G"], n["D"])  # d = 1: C (value 0) is lost but "obs c" shows nothing
    assert value_verifier(gd, 0.5, rule="seen") is None
    n["D"].observation = "Could not find enough items to craft minecraft:d"
    verdict = value_verifier(gd, 0.5, rule="seen")
    assert (verdict.t_prime, verdict.verifier) == (3, "value-seen")
    assert [(j["step"], j["failure"]) for j in verdict.judgments] == [(2, False), (3, True)]
    n["C"].action = None  # an unparsed reply is a failure the model sees too
    assert value_verifier(gd, 0.5, rule="seen").t_prime == 2
    tally: dict[str, int] = {}
    ds = build_dataset([tree], RevisionSettings("agent_r", alpha=0.5, beta=0.2, verifier="value-seen", max_pairs_per_tree=None),
                       progress=False, tally=tally)
    spliced = [r for r in ds.to_list() if r["kind"] == "revision"]
    assert tally == {"pairs": 5, "unseen": 3, "inconsistent": 0}  # the dropped pairs are counted
    mean = [r for r in build_dataset([tree], RevisionSettings("agent_r", alpha=0.5, beta=0.2, max_pairs_per_tree=None),
                                     progress=False).to_list() if r["kind"] == "revision"]
    # only the pairs whose bad path runs through C show a failure: (g, d) and (e, d)
    assert [(r["verifier"], r["t_prime"], r["divergence"]) for r in spliced] == [("value-seen", 2, 1), ("value-seen", 2, 0)]
    assert len(mean) == 5
    tree.env = "toy"
    with pytest.raises(ValueError, match="unknown environment 'toy'"):
        value_verifier(gd, 0.5, rule="seen")


@pytest.mark.parametrize("text,expected", [
    ("The action gathers wood.\nJudgment: Good", "Good"),
    ("Wrong item.\nJudgment: Bad", "Bad"),
    ("Judgment: Uncertain", "Uncertain"),
    ("it fails\njudgement: BAD", "Bad"),
    ("JUDGEMENT - good", "Good"),
    ("Judgment: **Bad**", "Bad"),
    ("Judgment: Good ... on reflection, Judgment: Bad", "Bad"),
    ("This looks fine to me.", "Uncertain"),
    ("", "Uncertain"),
    (None, "Uncertain"),
    ("#$%^ Judgment: maybe?!", "Uncertain"),
])
def test_judgment_parser(text, expected):
    assert parse_judgment(text) == expected


def judge_policy(bad_actions: set[str], reply_other: str = "Judgment: Good") -> ScriptedPolicy:
    def respond(conversation, rng):
        judged = re.search(r"## Step to judge\nStep \d+\nAction: (\S+)", conversation[-1]["content"]).group(1)
        return "It goes nowhere.\nJudgement: bad" if judged in bad_actions else reply_other
    return ScriptedPolicy(respond)


def test_model_verifier_first_bad_step_and_fallback():
    tree, n = hand_tree()
    gd = pair_of(tree, n["G"], n["D"])
    verdict = model_verifier([gd], judge_policy({"d"}), progress=False)[0]
    assert verdict.t_prime == 3 and verdict.verifier == "model"
    assert [(j["step"], j["judgment"]) for j in verdict.judgments] == [(2, "Good"), (3, "Bad")]
    assert verdict.judgments[1]["raw"].endswith("Judgement: bad")
    verdict = model_verifier([gd], judge_policy(set(), reply_other="no idea"), progress=False)[0]
    assert verdict.t_prime == 3 and {j["judgment"] for j in verdict.judgments} == {"Uncertain"}
    # the shared step A is only judged when walking from the start
    assert model_verifier([gd], judge_policy({"a", "d"}), progress=False)[0].t_prime == 3
    assert model_verifier([gd], judge_policy({"a", "d"}), judge_from="start", progress=False)[0].t_prime == 1
    # several pairs go to the policy in one batched call
    policy = judge_policy({"c"})
    verdicts = model_verifier([gd, pair_of(tree, n["G"], n["X"])], policy, progress=False)
    assert [v.t_prime for v in verdicts] == [2, 3] and policy.calls == 1


# ---------------------------------------------------------------------- splices


def test_splice_at_before_and_after_divergence():
    tree, n = hand_tree()
    gx = pair_of(tree, n["G"], n["X"])  # shared: a, b; bad: a b x; good: a b g
    assert splice(gx, 1, "S") == OPENING + turns("a", False) + SIGNAL + turns("bg", True)  # before d = 2
    assert splice(gx, 2, "S") == OPENING + turns("ab", False) + SIGNAL + turns("g", True)  # at d
    assert splice(gx, 3, "S") == OPENING + turns("abx", False) + SIGNAL + turns("g", True)  # after d
    gd = pair_of(tree, n["G"], n["D"])  # shared: a; bad: a c d; good: a b g
    assert splice(gd, 2, "S") == OPENING + turns("ac", False) + SIGNAL + turns("bg", True)
    with pytest.raises(ValueError, match="t_prime=4"):
        splice(gd, 4, "S")


def test_dataset_rows_methods_and_counts(tmp_path):
    tree, n = hand_tree()
    agent_r = build_dataset([tree], RevisionSettings("agent_r", alpha=0.5, beta=0.2, verifier="value",
                                                    max_pairs_per_tree=None, seed=0), progress=False)
    rows = agent_r.to_list()
    assert [r["kind"] for r in rows] == ["good"] * 2 + ["revision"] * 5
    good = rows[0]
    assert good["messages"] == OPENING + turns("abg", True) and good["t_prime"] == -1 and good["good_len"] == 3
    gd = next(r for r in rows if r["kind"] == "revision" and r["messages"][-2]["content"].endswith("g") and r["bad_score"] == 0.0 and r["divergence"] == 1)
    assert gd["t_prime"] == 2 and gd["bad_len"] == 2 and gd["good_len"] == 2
    assert gd["signal"] in REVISION_SIGNALS and gd["messages"][7]["content"] == f"Thought: {gd['signal']}\nAction: wait"
    assert gd["verifier"] == "value" and json.loads(gd["judgments"]) == [{"step": 2, "value": 0.0, "N": 1}]
    assert gd["consistent"] is None

    direct = build_dataset([tree], RevisionSettings("direct_revision", alpha=0.5, beta=0.2, max_pairs_per_tree=None),
                           progress=False).to_list()
    spliced = [r for r in direct if r["kind"] == "direct"]
    assert len(spliced) == 5 and all(r["t_prime"] == r["bad_len"] for r in spliced)
    gd_direct = next(r for r in spliced if r["divergence"] == 1 and r["bad_score"] == 0.0 and r["good_score"] == 1.0)
    body = [{**m, "content": m["content"]} for m in gd_direct["messages"]]
    signal = {"role": "assistant", "content": f"Thought: {gd_direct['signal']}\nAction: wait", "loss": True}
    assert body == OPENING + turns("acd", False) + [signal, SIGNAL[1]] + turns("bg", True)

    only_good = build_dataset([tree], RevisionSettings("good_only", alpha=1.0, beta=0.2), progress=False)
    assert only_good["kind"] == ["good"] and only_good["good_score"] == [1.0]
    assert counts(only_good)[0]["revision"] == 0 and counts(only_good)[0]["mean_t_prime"] is None
    assert set(counts(only_good)[0]) == set(counts(agent_r)[0])
    one_good = build_dataset([tree], RevisionSettings("good_only", alpha=0.5, beta=0.2, max_good_per_tree=1), progress=False)
    assert len(one_good) == 1

    table = counts(agent_r)
    assert table == [{"env": "toy", "revision": 5, "direct": 0, "good": 2, "checked": 0, "consistent": 0,
                      "mean_t_prime": pytest.approx(sum(r["t_prime"] for r in rows[2:]) / 5)}]
    out = save_dataset(agent_r, tmp_path / "ds")
    from datasets import load_from_disk
    assert load_from_disk(str(out)).to_list() == rows
    lines = (out / "data.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == rows

    goods_only = build_dataset([tree], RevisionSettings("agent_r", alpha=1.0, beta=2.0), progress=False)  # no pair this far apart
    assert goods_only["kind"] == ["good"]
    empty = build_dataset([], RevisionSettings("agent_r"), progress=False)
    assert len(empty) == 0 and list(empty.features) == list(agent_r.features)
    checked = build_dataset([numberline_tree()[0]], RevisionSettings("agent_r"),
                            replay_env_factory=lambda env: NumberLine(), progress=False)
    from datasets import concatenate_datasets
    both = concatenate_datasets([agent_r, empty, checked])  # None and bool `consistent`, empty parts
    assert len(both) == len(agent_r) + len(checked) and both["consistent"][-1] is False
    with pytest.raises(ValueError, match="policy"):
        build_dataset([tree], RevisionSettings("agent_r", verifier="model"), progress=False)


def test_dataset_with_model_verifier_records_raw_judgments():
    tree, n = hand_tree()
    ds = build_dataset([tree], RevisionSettings("agent_r", alpha=1.0, beta=0.2, verifier="model", max_pairs_per_tree=None),
                       policy=judge_policy({"c", "x"}), progress=False)
    revisions = [r for r in ds.to_list() if r["kind"] == "revision"]
    assert [(r["divergence"], r["t_prime"]) for r in revisions] == [(2, 3), (1, 2), (0, 1)]
    judged = json.loads(revisions[1]["judgments"])
    assert [(j["step"], j["judgment"]) for j in judged] == [(2, "Bad"), (3, "Good")]
    assert json.loads(revisions[2]["judgments"])[0]["raw"] == "Judgment: Good"  # no Bad -> t' = last step
    assert all(r["verifier"] == "model" for r in revisions)


# ---------------------------------------------------------------------- replay check


def numberline_tree() -> tuple[Tree, dict[str, Node]]:
    """Goal 1 on the number line: left, then either right, right (success) or left (fail)."""
    env = NumberLine()
    root = Node(id=0, depth=0, observation=env.reset(1), instruction=NumberLine.instruction)
    tree = Tree("numberline", 1, root, [root])
    n = {}

    def step(parent, action):
        env.reset(1)
        for a in parent.action_history:
            env.step(a)
        obs, reward, done = env.step(action)
        node = Node(id=len(tree.nodes), depth=parent.depth + 1, response=f"Thought: t.\nAction: {action}",
                    action=action, observation=obs, reward=reward, done=done, parent=parent)
        parent.children.append(node)
        tree.nodes.append(node)
        return node

    n["L"] = step(root, "left")
    n["R1"] = step(n["L"], "right")
    n["G"] = step(n["R1"], "right")
    n["LL"] = step(n["L"], "left")
    for leaf in (n["G"], n["LL"]):
        backpropagate(leaf, leaf.score)
        mark_terminal(leaf)
    return tree, n


def test_replay_check_flags_an_inconsistent_splice():
    tree, n = numberline_tree()
    assert n["G"].reward == 1.0 and n["LL"].observation == "You are at -2."
    pair = pair_of(tree, n["G"], n["LL"])
    env = NumberLine()
    ok, messages, reward = replay_check(splice(pair, 1, "S"), env, 1, 1.0)
    assert ok and reward == 1.0
    bad, replayed, reward = replay_check(splice(pair, 2, "S"), env, 1, 1.0)
    assert not bad and reward == 0.0
    original = splice(pair, 2, "S")
    assert [m["content"] for m in original[10::2]] == ["You are at 0.", "You reached 1."]  # stale
    assert [m["content"] for m in replayed[10::2]] == ["You are at -1.", "You are at 0."]  # replayed
    assert [m["loss"] for m in replayed] == [m["loss"] for m in original]
    ds = build_dataset([tree], RevisionSettings("agent_r", alpha=0.5, beta=0.2, verifier="value"),
                       replay_env_factory=lambda env: NumberLine(), progress=False)
    revision = [r for r in ds.to_list() if r["kind"] == "revision"]
    assert [(r["t_prime"], r["consistent"]) for r in revision] == [(2, False)]
    assert counts(ds)[0]["checked"] == 1 and counts(ds)[0]["consistent"] == 0
    tally: dict[str, int] = {}
    kept = build_dataset([tree], RevisionSettings("agent_r", alpha=0.5, beta=0.2, drop_inconsistent=True),
                         replay_env_factory=lambda env: NumberLine(), progress=False, tally=tally)
    assert kept["kind"] == ["good"] and tally == {"pairs": 1, "unseen": 0, "inconsistent": 1}
    direct = build_dataset([tree], RevisionSettings("direct_revision", alpha=0.5, beta=0.2),
                           replay_env_factory=lambda env: NumberLine(), progress=False)
    assert [r["consistent"] for r in direct.to_list() if r["kind"] == "direct"] == [False]


def test_model_verifier_judges_a_shared_bad_path_once():
    tree, n = hand_tree()
    policy = judge_policy({"x"})
    prompts = []
    inner = policy.respond
    policy.respond = lambda conversation, rng: prompts.append(conversation[-1]["content"]) or inner(conversation, rng)
    pairs = [p for p in make_pairs(tree, 0.5, 0.2, None, random.Random(0)) if p.bad is n["X"]]  # (g, x) and (e, x)
    verdicts = model_verifier(pairs, policy, progress=False)
    assert [v.t_prime for v in verdicts] == [3, 3]
    assert [[j["step"] for j in v.judgments] for v in verdicts] == [[3], [1, 2, 3]]
    assert len(prompts) == 3  # steps 1, 2, 3 of the path a b x, each once


def test_model_verifier_judges_every_env_in_one_call_and_counts_unparsed_verdicts():
    """Pairs of trees from several environments: one generate call over every step (a step
    shared by two bad paths once); verdicts Good / Bad / Uncertain / unparsed counted once
    per judged step; the judged node's id lets the notebook rebuild the prompt."""
    from agentr_lib.revision import verdict_counts, verifier_prompt

    first, n = hand_tree()
    second, m = hand_tree()
    second.env, second.task_id = "other", 8
    replies = {"a": "Judgment: Good", "b": "Judgment: Uncertain", "x": "no verdict here", "c": "Judgement: bad",
               "d": "Judgment: Good", "g": "Judgment: Good", "e": "Judgment: Good"}

    def respond(conversation, rng):
        judged = re.search(r"## Step to judge\nStep \d+\nAction: (\S+)", conversation[-1]["content"]).group(1)
        return replies[judged]

    policy = ScriptedPolicy(respond)
    settings = RevisionSettings("agent_r", alpha=0.5, beta=0.2, verifier="model", max_pairs_per_tree=None,
                                judge_from="start")
    ds = build_dataset([first, second], settings, policy=policy, progress=False)
    assert policy.calls == 1, "one generate call over both environments' pairs"
    assert {r["env"] for r in ds.to_list()} == {"toy", "other"}
    counted = verdict_counts(ds)
    # per tree the bad paths a b x, a c d (each paired with G and E) and e (paired with G): six
    # nodes judged once each, of which a, d, e Good, c Bad, b Uncertain, x unparsed
    assert counted == {"judged": 12, "Good": 6, "Bad": 2, "Uncertain": 2, "unparsed": 2, "uncertain_fraction": 4 / 12}
    row = next(r for r in ds.to_list() if r["kind"] == "revision" and r["env"] == "other")
    judgment = json.loads(row["judgments"])[-1]
    assert set(judgment) == {"step", "node", "judgment", "parsed", "raw"}
    prompt = verifier_prompt(second, second.nodes[judgment["node"]])[-1]["content"]
    assert f"Action: {second.nodes[judgment['node']].action}\nObservation:" in prompt.split("## Step to judge")[1]
    unparsed = [j for r in ds.to_list() for j in json.loads(r["judgments"]) if not j["parsed"]]
    assert unparsed and all(j["judgment"] == "Uncertain" and j["raw"] == "no verdict here" for j in unparsed)
    assert verdict_counts(build_dataset([first], RevisionSettings("agent_r", alpha=0.5), progress=False))["judged"] == 0


def test_verifier_prompt_leaves_out_the_oldest_steps_to_fit_the_context_budget():
    """One user turn, so turn-level truncation cannot shorten it (vLLM refuses a prompt past
    its context): the oldest steps go first, then the environment's instructions."""
    from agentr_lib.revision import verifier_prompt

    tree, n = hand_tree()
    count = lambda messages: len(messages[0]["content"])  # noqa: E731 -- characters as tokens
    full = verifier_prompt(tree, n["X"])[0]["content"]
    assert "Step 1\nAction: a" in full and "Step 2\nAction: b" in full and "earlier steps" not in full
    assert verifier_prompt(tree, n["X"], count, len(full))[0]["content"] == full
    cut = verifier_prompt(tree, n["X"], count, len(full) - 3)[0]["content"]
    assert "(1 earlier steps not shown)" in cut and "Step 1\n" not in cut and "Step 2\nAction: b" in cut
    assert "## Step to judge\nStep 3\nAction: x" in cut and "inst" in cut
    tree.root.instruction = "I" * 1000  # a long instruction: left out before any step is
    full = verifier_prompt(tree, n["X"])[0]["content"]
    roomy = verifier_prompt(tree, n["X"], count, len(full) - 900)[0]["content"]
    assert "does not fit the model's context" in roomy and "earlier steps" not in roomy and "Step 1\nAction: a" in roomy
    tiny = verifier_prompt(tree, n["X"], count, 10)[0]["content"]
    assert "(2 earlier steps not shown)" in tiny and "does not fit the model's context" in tiny
    assert "## Task\nstart" in tiny and "Step 3\nAction: x" in tiny


def test_divergence_is_measured_in_actions():
    """Two children that differ only in their thought take the same action to the same
    state: the pair's shared steps run on through them, and t' is looked for after them."""
    root = Node(id=0, depth=0, observation="start", instruction="inst")
    tree = Tree("toy", 3, root, [root])
    first_good = add(tree, root, "a")
    first_bad = add(tree, root, "a")
    first_bad.response = "Thought: another plan.\nAction: a"
    good = add(tree, add(tree, first_good, "b"), "g", reward=1.0, done=True)
    bad = add(tree, add(tree, first_bad, "x"), "y", terminal=True)
    pair = pair_of(tree, good, bad)
    assert pair.divergence is root and pair.d == 1
    verdict = value_verifier(pair, alpha=0.5)
    assert verdict.t_prime == 2  # the bad path's "x", its first action the good path did not take
    messages = splice(pair, verdict.t_prime, "S")
    assert messages[3]["content"] == "Thought: another plan.\nAction: a" and messages[5]["content"] == "Thought: do x.\nAction: x"
    assert [m["content"] for m in messages[9::2]] == ["Thought: do b.\nAction: b", "Thought: do g.\nAction: g"]


def test_signal_contexts_show_what_precedes_the_revision_turn():
    tree, n = hand_tree()
    rows = list(build_dataset([tree], RevisionSettings("agent_r", alpha=0.5, beta=0.2, max_pairs_per_tree=None), progress=False))
    contexts = signal_contexts(rows)
    assert len(contexts) == sum(1 for row in rows if row["kind"] == "revision") > 0
    for context, row in zip(contexts, [row for row in rows if row["kind"] == "revision"]):
        kept = [m for m in row["messages"] if m["role"] == "assistant"][1:row["t_prime"] + 1]
        assert context["action"] == kept[-1]["content"].split("Action: ")[1]
        assert context["observation"] == f"obs {context['action']}" and context["observation_kind"] == context["observation"]
    assert observation_kind("Got 12 oak logs") == "Got N oak" and observation_kind("Could not find 4 sticks.", 4) == "Could not find N"
