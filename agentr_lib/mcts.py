"""Phase I of Agent-R: Monte Carlo Tree Search over agent conversations (docs/design.md "Search").

Read top to bottom:
1. `Node` / `Tree`: the conversation state lives on the parent chain (each node holds one
   model response, the action parsed from it and the observation that came back).
   Rewards follow the Env protocol: a step's reward is the episode's current score in
   [0, 1] (ScienceWorld's score / 100, TextCraft's and WebShop's final reward), so a leaf's
   score is its own reward, and a step with no parsable action (the env is not touched)
   keeps its parent's reward.
2. `uct_select`, `backpropagate`, `mark_terminal`: the tree arithmetic (pure, tested on
   hand-built trees).
3. `TreeSearch`: one tree's simulation loop written as a small state machine, so that many
   trees can wait on the model at the same time.
4. `search_trees`: runs many `TreeSearch`es concurrently and batches their expansion
   requests into ONE `policy.generate` call (on a GPU the model is the bottleneck and one
   large batch beats many small ones). Finished trees are saved one JSON file per task,
   atomically; a rerun skips them (resume).
5. `load_tree`, `tree_rows`: reading results back for revision construction and notebooks.

Usage (notebook 01):
    config = MCTSConfig(simulations=8, n_gen=4, temperature=1.0, max_depth=15, seed=0)
    result = search_trees(policy, lambda: make_env("textcraft"), task_ids, config, "runs/x/mcts/trees")
    pandas.DataFrame(tree_rows(result.trees)); result.model_calls, result.env_steps

One simulation: from the root, repeatedly (a) expand the node if it has no children, then
(b) select a child by UCT, until the selected node's children are all terminal. Terminal
children are backpropagated at once with their final reward, so every simulation descends
until it produces terminal leaves (no random rollouts are needed: the descent *is* the
rollout). A node whose children are all terminal becomes terminal itself.
"""

from __future__ import annotations

import math
import random
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from tqdm.auto import tqdm

from .agent import REVISION_ACTION, opening_messages, parse_action, take_action
from .checks import int_at_least, number, one_of, setting
from .envs.base import Env
from .io import atomic_write_json, read_json
from .llm.base import Message, Policy, derive_seed

TREE_FORMAT = "agentr-mcts-tree/1"


@dataclass
class MCTSConfig:
    """Search parameters, the paper's defaults where it gives one. A field made by `setting` is
    the profile key `mcts.<field>`: agentr_lib.profiles reads its default, check and meaning here."""

    simulations: int = setting(8, int_at_least(1), "descents per tree", "01")
    n_gen: int = setting(4, int_at_least(1), "replies sampled per expansion (duplicates dropped)", "01")
    temperature: float = setting(1.0, number(0), "sampling temperature of expansions", "01")
    max_depth: int = setting(15, int_at_least(1), "a node at this many actions is terminal", "01")
    c: float = setting(0.25, number(0), "UCT exploration constant (paper: 0.25)", "01")
    seed: int = 0  # tie-breaks in UCT selection
    restore: str = setting("snapshot", one_of("snapshot", "replay"), "how a node's state is restored: snapshot "
                           "(where the env supports it) or replay (reset + actions)", "01")
    max_new_tokens: int = setting(96, int_at_least(1), "tokens per sampled reply", "01")
    batch_trees: int = setting(16, int_at_least(1), "trees searched concurrently (their expansions share model calls)",
                               "01")
    max_batch: int = 64  # conversations per policy.generate call (each gets n_gen samples)

    def __post_init__(self) -> None:
        if self.restore not in ("snapshot", "replay"):
            raise ValueError(f"MCTSConfig.restore={self.restore!r}; expected 'snapshot' or 'replay'")
        for name in ("simulations", "n_gen", "max_depth", "batch_trees", "max_batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"MCTSConfig.{name}={getattr(self, name)!r}; expected an integer >= 1")


# --------------------------------------------------------------------------------------
# 1. Nodes and trees
# --------------------------------------------------------------------------------------


@dataclass(eq=False)
class Node:
    """One conversation state. The root holds the instruction and the first observation;
    every other node holds the response that led to it, its parsed action (None = no action
    found, an invalid step), the observation and the reward that came back."""

    id: int
    depth: int  # number of agent steps from the root
    response: str | None = None
    action: str | None = None
    observation: str = ""
    reward: float = 0.0
    done: bool = False
    terminal: bool = False
    N: int = 0  # visits (terminal leaves backpropagated through this node)
    W: float = 0.0  # sum of those leaves' rewards
    instruction: str = ""  # root only
    parent: Node | None = field(default=None, repr=False)
    children: list[Node] = field(default_factory=list, repr=False)
    state: Any = field(default=None, repr=False)  # env snapshot (in memory only, never saved)

    @property
    def value(self) -> float:
        """Mean value W/N (0 for an unvisited node)."""
        return self.W / self.N if self.N else 0.0

    @property
    def score(self) -> float:
        """A leaf's final reward in [0, 1] (a negative reward counts as 0)."""
        return min(1.0, max(0.0, self.reward))

    def path(self) -> list[Node]:
        """Root ... self."""
        nodes: list[Node] = []
        node: Node | None = self
        while node is not None:
            nodes.append(node)
            node = node.parent
        return nodes[::-1]

    @property
    def action_history(self) -> list[str | None]:
        """Actions from the root to this node (None where no action was parsed)."""
        return [node.action for node in self.path()[1:]]

    def messages(self) -> list[Message]:
        """The conversation up to this node, ready for `policy.generate`."""
        path = self.path()
        root = path[0]
        messages = opening_messages(root.instruction, root.observation)
        for node in path[1:]:
            messages.append({"role": "assistant", "content": node.response or ""})
            messages.append({"role": "user", "content": node.observation})
        return messages


@dataclass(eq=False)
class Tree:
    """One task's search tree; `nodes` is in creation order (node.id == index)."""

    env: str
    task_id: int
    root: Node
    nodes: list[Node]
    config: dict = field(default_factory=dict)
    stats: dict = field(default_factory=dict)  # env_steps, expansions, simulations, seconds

    def leaves(self) -> list[Node]:
        """Terminal nodes without children: finished episodes."""
        return [node for node in self.nodes if node.terminal and not node.children]


# --------------------------------------------------------------------------------------
# 2. Tree arithmetic
# --------------------------------------------------------------------------------------


def backpropagate(node: Node, reward: float) -> None:
    """N += 1 and W += reward on `node` and every ancestor."""
    while node is not None:
        node.N += 1
        node.W += reward
        node = node.parent


def mark_terminal(node: Node) -> None:
    """Make `node` terminal, then every ancestor whose children are now all terminal."""
    node.terminal = True
    parent = node.parent
    while parent is not None and not parent.terminal and all(child.terminal for child in parent.children):
        parent.terminal = True
        parent = parent.parent


def uct_select(node: Node, c: float, rng: random.Random) -> Node | None:
    """The child to descend into: terminal children are skipped; an unvisited child first;
    otherwise argmax W/N + c * sqrt(ln N_parent / N). Ties are broken with `rng`.
    Returns None when every child is terminal (or there are none)."""
    candidates = [child for child in node.children if not child.terminal]
    if not candidates:
        return None
    unvisited = [child for child in candidates if child.N == 0]
    if unvisited:
        return rng.choice(unvisited) if len(unvisited) > 1 else unvisited[0]
    log_n = math.log(max(node.N, 1))
    scores = [child.W / child.N + c * math.sqrt(log_n / child.N) for child in candidates]
    best = max(scores)
    tied = [child for child, score in zip(candidates, scores) if score >= best - 1e-12]
    return rng.choice(tied) if len(tied) > 1 else tied[0]


# --------------------------------------------------------------------------------------
# 3. One tree's search as a state machine
# --------------------------------------------------------------------------------------


class CountingEnv:
    """Wraps an Env to count the calls that cost simulator time (steps, resets, restores):
    the snapshot-vs-replay comparison is made on these counts."""

    def __init__(self, env: Env):
        self.env = env
        self.steps = 0
        self.resets = 0
        self.restores = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.env, name)

    def reset(self, task_id: int) -> str:
        self.resets += 1
        return self.env.reset(task_id)

    def step(self, action: str) -> tuple[str, float, bool]:
        self.steps += 1
        return self.env.step(action)

    def restore(self, state: Any) -> None:
        self.restores += 1
        self.env.restore(state)


class TreeSearch:
    """Simulations on one task. `next_request()` walks the tree (no model needed) until it
    reaches a node to expand and returns it, or returns None when the tree is finished;
    `expand(node, responses)` steps the environment for each response."""

    def __init__(self, env: CountingEnv, task_id: int, config: MCTSConfig):
        self.env = env
        self.task_id = task_id
        self.config = config
        self.rng = random.Random(config.seed * 1_000_003 + task_id)
        self.use_snapshot = config.restore == "snapshot" and bool(getattr(env, "supports_snapshot", False))
        self.steps_before = env.steps
        self.start = time.perf_counter()
        first_observation = env.reset(task_id)
        self.root = Node(id=0, depth=0, observation=first_observation, instruction=env.instruction)
        if self.use_snapshot:
            self.root.state = env.snapshot()
        self.nodes = [self.root]
        self.simulations = 0
        self.expansions = 0
        self.cursor: Node | None = None  # where the current simulation stands

    def next_request(self) -> Node | None:
        while True:
            if self.cursor is None:  # start a simulation
                if self.simulations >= self.config.simulations or self.root.terminal:
                    return None
                self.cursor = self.root
            node = self.cursor
            if not node.children and not node.terminal:
                return node  # (a) expand
            child = uct_select(node, self.config.c, self.rng)  # (b) select
            if child is None:  # every child terminal: the simulation is over
                if not node.terminal:
                    mark_terminal(node)
                self.simulations += 1
                self.cursor = None
            else:
                self.cursor = child

    def _restore(self, node: Node) -> None:
        """Put the env in `node`'s state: restore its snapshot, or reset + replay its actions."""
        if self.use_snapshot:
            self.env.restore(node.state)
            return
        self.env.reset(self.task_id)
        for action in node.action_history:
            take_action(self.env, action, 0.0)

    def expand(self, node: Node, responses: Sequence[str]) -> None:
        if not responses:
            raise ValueError(f"the policy returned no response for task {self.task_id}, node {node.id}; expected n_gen samples")
        self.expansions += 1
        unique = list(dict.fromkeys(responses))  # drop duplicates, keep sampling order
        depth = node.depth + 1
        for response in unique:
            action = parse_action(response)
            if action is not None and action.lower() != REVISION_ACTION:
                self._restore(node)
            # no action / the revision action: the env is not touched and its score stays
            observation, reward, done = take_action(self.env, action, node.reward)
            child = Node(
                id=len(self.nodes), depth=depth, response=response, action=action,
                observation=observation, reward=float(reward), done=bool(done), parent=node,
            )
            child.terminal = bool(done) or reward < 0 or depth >= self.config.max_depth
            if child.terminal:
                backpropagate(child, child.score)
            elif self.use_snapshot:
                if action is None or action.lower() == REVISION_ACTION:  # the state did not change
                    child.state = node.state
                else:
                    child.state = self.env.snapshot()
            node.children.append(child)
            self.nodes.append(child)
        if all(child.terminal for child in node.children):
            mark_terminal(node)

    def finish(self, env_name: str) -> Tree:
        for node in self.nodes:
            node.state = None  # snapshots are only needed while searching
        stats = {
            "env_steps": self.env.steps - self.steps_before,
            "expansions": self.expansions,
            "simulations": self.simulations,
            "seconds": round(time.perf_counter() - self.start, 3),
        }
        return Tree(env_name, self.task_id, self.root, self.nodes, asdict(self.config), stats)


# --------------------------------------------------------------------------------------
# 4. Many trees at once, batched model calls, save/resume
# --------------------------------------------------------------------------------------


@dataclass
class SearchResult:
    """What `search_trees` did: the trees (in task order) and the run's counters."""

    trees: list[Tree]
    searched: list[int] = field(default_factory=list)  # task ids searched in this run
    loaded: list[int] = field(default_factory=list)  # finished trees found on disk (resume)
    corrupt: list[str] = field(default_factory=list)  # files that could not be used (re-searched)
    model_calls: int = 0  # policy.generate calls
    conversations: int = 0  # conversations sent (each sampled n_gen times)
    env_steps: int = 0
    env_resets: int = 0
    seconds: float = 0.0


# Settings that change what a tree looks like (a resumed file searched with others is flagged).
_SEARCH_KEYS = ("simulations", "n_gen", "temperature", "max_depth", "c", "seed", "max_new_tokens")


def tree_path(out_dir: str | Path, env_name: str, task_id: int) -> Path:
    return Path(out_dir) / f"{env_name}-{task_id:06d}.json"


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def search_trees(
    policy: Policy,
    env_factory: Callable[[], Env],
    task_ids: Sequence[int],
    config: MCTSConfig,
    out_dir: str | Path | None = None,
    progress: bool = True,
    env_name: str | None = None,
) -> SearchResult:
    """Search one tree per task; `config.batch_trees` trees at a time, their expansion
    requests sent to the policy together (at most `config.max_batch` conversations per call).

    `env_factory()` builds an environment; at most `batch_trees` are built and each is
    reused for the next task (a ScienceWorld JVM is costly). With `out_dir`, each finished
    tree is written to `<out_dir>/<env>-<task_id>.json` atomically and a rerun loads it
    instead of searching again; a file that cannot be read is reported by name (a warning)
    and searched again, never used. `env_name` (the environment's `name`), when given, spares
    building an environment (a ScienceWorld JVM) just to read its name when every tree resumes.
    """
    start = time.perf_counter()
    result = SearchResult(trees=[])
    envs: list[CountingEnv] = [] if env_name else [CountingEnv(env_factory())]
    env_name = env_name or envs[0].name
    done: dict[int, Tree] = {}
    todo: list[int] = []
    for task_id in task_ids:
        if out_dir is not None and tree_path(out_dir, env_name, task_id).exists():
            path = tree_path(out_dir, env_name, task_id)
            try:
                tree = load_tree(path)
                if tree.task_id != task_id or tree.env != env_name:
                    raise ValueError(f"{path}: holds {tree.env} task {tree.task_id}, expected {env_name} task {task_id}")
                changed = sorted(k for k in _SEARCH_KEYS if k in tree.config and tree.config[k] != asdict(config)[k])
                if changed:
                    settings = ", ".join(f"{key}={tree.config[key]!r}" for key in changed)
                    warnings.warn(f"{path} was searched with other settings ({settings}); using it anyway "
                                  "(resume): pick a new out_dir to search again", stacklevel=2)
                done[task_id] = tree
                result.loaded.append(task_id)
                continue
            except (ValueError, TypeError, KeyError) as err:  # any unreadable file: report, search again
                warnings.warn(f"corrupt tree file {path} ({err}); searching task {task_id} again", stacklevel=2)
                result.corrupt.append(str(path))
        todo.append(task_id)

    bar = tqdm(total=len(task_ids), initial=len(done), desc=f"MCTS {env_name}", unit="tree", disable=not progress)
    pending = list(todo)
    active: list[TreeSearch] = []
    free_envs = list(envs)
    finished_simulations = 0
    try:
        while pending or active:
            while pending and len(active) < config.batch_trees:  # start trees
                if not free_envs:
                    env = CountingEnv(env_factory())
                    envs.append(env)
                    free_envs.append(env)
                active.append(TreeSearch(free_envs.pop(), pending.pop(0), config))
            requests: list[tuple[TreeSearch, Node]] = []
            for search in list(active):  # walk each tree to its next expansion
                node = search.next_request()
                if node is None:
                    tree = search.finish(env_name)
                    if out_dir is not None:
                        atomic_write_json(tree_path(out_dir, env_name, tree.task_id), tree_to_dict(tree))
                    done[tree.task_id] = tree
                    result.searched.append(tree.task_id)
                    finished_simulations += search.simulations
                    active.remove(search)
                    free_envs.append(search.env)
                    bar.update(1)
                else:
                    requests.append((search, node))
            for chunk in _chunks(requests, config.max_batch):  # one model call per chunk
                samples = policy.generate(
                    [node.messages() for _, node in chunk], n=config.n_gen,
                    temperature=config.temperature, max_new_tokens=config.max_new_tokens,
                    seeds=[derive_seed(config.seed, env_name, search.task_id, node.id) for search, node in chunk],
                )
                if len(samples) != len(chunk):
                    raise ValueError(f"policy.generate returned {len(samples)} sample lists for {len(chunk)} conversations")
                result.model_calls += 1
                result.conversations += len(chunk)
                for (search, node), responses in zip(chunk, samples):
                    search.expand(node, responses)
            steps = sum(env.steps for env in envs)
            elapsed = max(time.perf_counter() - start, 1e-9)
            simulations = finished_simulations + sum(s.simulations for s in active)
            bar.set_postfix(sims=simulations, steps_s=f"{steps / elapsed:.0f}", calls=result.model_calls)
    finally:
        bar.close()
        for env in envs:
            env.close()
    result.env_steps = sum(env.steps for env in envs)
    result.env_resets = sum(env.resets for env in envs)
    result.trees = [done[task_id] for task_id in task_ids]
    result.seconds = time.perf_counter() - start
    return result


# --------------------------------------------------------------------------------------
# 5. JSON round trip and summaries
# --------------------------------------------------------------------------------------

_NODE_KEYS = ("id", "parent", "depth", "response", "action", "observation", "reward", "done", "terminal", "N", "W")


def tree_to_dict(tree: Tree) -> dict:
    """A flat node list (parent ids), easy to diff and to load without recursion limits."""
    nodes = []
    for node in tree.nodes:
        record = {key: getattr(node, key) for key in _NODE_KEYS if key != "parent"}
        record["parent"] = node.parent.id if node.parent is not None else None
        nodes.append(record)
    return {
        "format": TREE_FORMAT, "env": tree.env, "task_id": tree.task_id,
        "instruction": tree.root.instruction, "config": tree.config, "stats": tree.stats, "nodes": nodes,
    }


def tree_from_dict(record: dict, source: str = "<dict>") -> Tree:
    """Inverse of `tree_to_dict`; raises ValueError naming `source` and the bad key."""
    if not isinstance(record, dict) or record.get("format") != TREE_FORMAT:
        raise ValueError(f"{source}: not a tree file (expected format {TREE_FORMAT!r})")
    for key in ("env", "task_id", "instruction", "nodes"):
        if key not in record:
            raise ValueError(f"{source}: missing key {key!r}")
    if not isinstance(record["nodes"], list):
        raise ValueError(f"{source}: 'nodes' must be a list, got {type(record['nodes']).__name__}")
    nodes: list[Node] = []
    for index, item in enumerate(record["nodes"]):
        if not isinstance(item, dict):
            raise ValueError(f"{source}: node {index} must be an object, got {item!r:.60}")
        missing = [key for key in _NODE_KEYS if key not in item]
        if missing or item["id"] != index:
            raise ValueError(f"{source}: node {index} is malformed (missing {missing}, id {item.get('id')!r})")
        node = Node(**{key: item[key] for key in _NODE_KEYS if key != "parent"})
        parent_id = item["parent"]
        if index == 0:
            if parent_id is not None:
                raise ValueError(f"{source}: node 0 must be the root (parent null), got {parent_id!r}")
        elif not isinstance(parent_id, int) or not 0 <= parent_id < index:
            raise ValueError(f"{source}: node {index} has parent {parent_id!r}; expected an earlier node id")
        else:
            node.parent = nodes[parent_id]
            nodes[parent_id].children.append(node)
        nodes.append(node)
    if not nodes:
        raise ValueError(f"{source}: empty node list")
    nodes[0].instruction = record["instruction"]
    return Tree(record["env"], int(record["task_id"]), nodes[0], nodes, record.get("config", {}), record.get("stats", {}))


def load_tree(path: str | Path) -> Tree:
    """Read a tree file written by `search_trees` (ValueError naming the file if corrupt)."""
    return tree_from_dict(read_json(path), source=str(path))


def load_trees(out_dir: str | Path, env: str | None = None) -> list[Tree]:
    """Every tree file (`<env>-<task id>.json`) in `out_dir`, in sorted file-name order;
    other JSON files there (summaries, ...) are ignored."""
    pattern = f"{env or '*'}-[0-9][0-9][0-9][0-9][0-9][0-9].json"
    return [load_tree(path) for path in sorted(Path(out_dir).glob(pattern))]


def tree_rows(trees: Sequence[Tree]) -> list[dict]:
    """One row per tree (pandas.DataFrame(rows) in notebooks): leaves, successes, cost."""
    rows = []
    for tree in trees:
        leaves = tree.leaves()
        rows.append({
            "env": tree.env,
            "task_id": tree.task_id,
            "nodes": len(tree.nodes),
            "leaves": len(leaves),
            "success_leaves": sum(leaf.score >= 1.0 for leaf in leaves),
            "best_score": max((leaf.score for leaf in leaves), default=0.0),
            "max_depth": max(node.depth for node in tree.nodes),
            "simulations": tree.stats.get("simulations"),
            "env_steps": tree.stats.get("env_steps"),
            # conversations this tree sent to the policy (each sampled n_gen times); batched
            # trees share generate calls: SearchResult.model_calls counts those
            "model_calls": tree.stats.get("expansions"),
            "seconds": tree.stats.get("seconds"),
        })
    return rows
