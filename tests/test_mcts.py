"""MCTS: tree arithmetic on hand-built trees, searches on a tiny fake environment, and on
TextCraft with a scripted stochastic policy (no language model)."""

from __future__ import annotations

import hashlib
import json
import math
import random

import pytest

from agentr_lib.agent import NO_ACTION_OBSERVATION
from agentr_lib.mcts import (
    MCTSConfig, Node, backpropagate, load_tree, load_trees, mark_terminal, search_trees, tree_rows, tree_to_dict, uct_select,
)
from fake_env import NumberLine


# ---------------------------------------------------------------------- helpers


class HashPolicy:
    """A stochastic scripted policy whose samples depend only on the conversation text and
    the sample index (not on call order), so batched and sequential searches, and a resumed
    run, see the same responses. `choose(conversation, rng)` returns one response."""

    def __init__(self, choose, seed: int = 0):
        self.choose = choose
        self.seed = seed
        self.calls = 0
        self.seen_first_observations: list[str] = []

    def generate(self, conversations, n=1, temperature=0.0, max_new_tokens=128, seeds=None):
        self.calls += 1
        out = []
        for conversation in conversations:
            self.seen_first_observations.append(conversation[2]["content"])
            text = json.dumps(conversation, sort_keys=True)
            samples = []
            for index in range(n):
                digest = hashlib.sha256(f"{self.seed}|{index}|{text}".encode()).hexdigest()
                samples.append(self.choose(conversation, random.Random(int(digest[:16], 16))))
            out.append(samples)
        return out


def numberline_choice(conversation, rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.55:
        return "Thought: go on.\nAction: right"
    if roll < 0.8:
        return "Thought: back.\nAction: left"
    if roll < 0.9:
        return "I am not sure what to do."  # no action: an invalid step
    return "Thought: hmm.\nAction: fall"


def nodes_only(tree) -> list[dict]:
    return tree_to_dict(tree)["nodes"]


def chain(*values: tuple[float, int]) -> tuple[Node, list[Node]]:
    """A root with one child per (W, N)."""
    root = Node(id=0, depth=0, N=sum(n for _, n in values), W=sum(w for w, _ in values))
    children = []
    for i, (w, n) in enumerate(values, start=1):
        child = Node(id=i, depth=1, W=w, N=n, parent=root)
        root.children.append(child)
        children.append(child)
    return root, children


# ---------------------------------------------------------------------- tree arithmetic


def test_uct_picks_the_argmax_of_mean_plus_exploration():
    root, (a, b, c) = chain((3.0, 5), (1.0, 1), (4.0, 4))
    # by hand: ln 10 = 2.3026 -> a 0.6 + 0.25*0.6786 = 0.770; b 1 + 0.25*1.517 = 1.379; c 1 + 0.25*0.759 = 1.190
    assert uct_select(root, 0.25, random.Random(0)) is b
    # with no exploration the means decide: b and c tie at 1.0, a never wins
    picks = {uct_select(root, 0.0, random.Random(seed)).id for seed in range(20)}
    assert picks == {b.id, c.id}
    # a large c favours the least visited child
    assert uct_select(root, 100.0, random.Random(0)) is b


def test_uct_unvisited_first_and_terminal_skipping():
    root, (a, b, c) = chain((3.0, 5), (1.0, 1), (4.0, 4))
    fresh = Node(id=9, depth=1, parent=root)
    root.children.append(fresh)
    assert uct_select(root, 0.25, random.Random(0)) is fresh
    fresh.terminal = True  # a terminal unvisited child is skipped
    b.terminal = True
    assert uct_select(root, 0.25, random.Random(0)) is c
    a.terminal = c.terminal = True
    assert uct_select(root, 0.25, random.Random(0)) is None


def test_uct_tie_break_is_seeded():
    root, _ = chain((1.0, 2), (1.0, 2), (1.0, 2))
    first = [uct_select(root, 0.25, random.Random(7)).id for _ in range(5)]
    again = [uct_select(root, 0.25, random.Random(7)).id for _ in range(5)]
    assert first == again
    assert len({uct_select(root, 0.25, random.Random(seed)).id for seed in range(30)}) == 3


def test_backpropagation_sums_on_every_ancestor():
    root = Node(id=0, depth=0)
    a = Node(id=1, depth=1, parent=root)
    b = Node(id=2, depth=1, parent=root)
    a1 = Node(id=3, depth=2, parent=a)
    a2 = Node(id=4, depth=2, parent=a)
    root.children = [a, b]
    a.children = [a1, a2]
    backpropagate(a1, 1.0)
    backpropagate(a2, 0.0)
    backpropagate(b, 0.5)
    assert (a1.N, a1.W, a2.N, a2.W) == (1, 1.0, 1, 0.0)
    assert (a.N, a.W) == (2, 1.0) and a.value == 0.5
    assert (root.N, root.W) == (3, 1.5) and b.value == 0.5


def test_all_terminal_children_propagate_upwards():
    root = Node(id=0, depth=0)
    a = Node(id=1, depth=1, parent=root)
    b = Node(id=2, depth=1, parent=root)
    a1 = Node(id=3, depth=2, parent=a)
    a2 = Node(id=4, depth=2, parent=a)
    root.children, a.children = [a, b], [a1, a2]
    mark_terminal(a1)
    assert not a.terminal
    mark_terminal(a2)
    assert a.terminal and not root.terminal  # b is still open
    mark_terminal(b)
    assert root.terminal


def test_node_messages_and_action_history():
    root = Node(id=0, depth=0, observation="start", instruction="how to act")
    a = Node(id=1, depth=1, response="Thought: x\nAction: right", action="right", observation="at 1", parent=root)
    b = Node(id=2, depth=2, response="no action", action=None, observation=NO_ACTION_OBSERVATION, parent=a)
    assert b.action_history == ["right", None]
    assert b.messages() == [
        {"role": "user", "content": "how to act"},
        {"role": "assistant", "content": "Ok."},
        {"role": "user", "content": "start"},
        {"role": "assistant", "content": "Thought: x\nAction: right"},
        {"role": "user", "content": "at 1"},
        {"role": "assistant", "content": "no action"},
        {"role": "user", "content": NO_ACTION_OBSERVATION},
    ]


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="restore"):
        MCTSConfig(restore="rewind")
    with pytest.raises(ValueError, match="n_gen"):
        MCTSConfig(n_gen=0)


# ---------------------------------------------------------------------- search on a fake env


def check_invariants(tree, config: MCTSConfig) -> None:
    """Every node's N counts the terminal leaves below it and W sums their scores."""
    for node in tree.nodes:
        below = [leaf for leaf in tree.leaves() if node in leaf.path()]
        assert node.N == len(below), node
        assert math.isclose(node.W, sum(leaf.score for leaf in below)), node
        assert node.depth <= config.max_depth
        if node.children and all(child.terminal for child in node.children):
            assert node.terminal
        responses = [child.response for child in node.children]
        assert len(responses) == len(set(responses))  # duplicates dropped


def test_search_on_fake_env_builds_consistent_trees(tmp_path):
    config = MCTSConfig(simulations=6, n_gen=4, temperature=1.0, max_depth=5, seed=1, batch_trees=2)
    result = search_trees(HashPolicy(numberline_choice), NumberLine, [1, 2, 3], config, tmp_path, progress=False)
    assert [tree.task_id for tree in result.trees] == [1, 2, 3]
    assert sorted(p.name for p in tmp_path.glob("*.json")) == [
        "numberline-000001.json", "numberline-000002.json", "numberline-000003.json"]
    for tree in result.trees:
        check_invariants(tree, config)
        assert tree.stats["simulations"] <= config.simulations
    leaves = [leaf for tree in result.trees for leaf in tree.leaves()]
    assert any(leaf.score == 1.0 for leaf in leaves)
    fell = [leaf for leaf in leaves if leaf.action == "fall"]
    assert fell and all(leaf.reward < 0 and leaf.score == 0.0 and leaf.terminal for leaf in fell)
    invalid = [n for tree in result.trees for n in tree.nodes if n.response and n.action is None]
    assert invalid and all(n.observation == NO_ACTION_OBSERVATION and n.reward == 0.0 for n in invalid)
    # with a running score, an invalid step keeps the score it had; leaves score their reward
    partial = search_trees(HashPolicy(numberline_choice), lambda: NumberLine(partial=True), [3, 4], config, progress=False)
    invalid = [n for tree in partial.trees for n in tree.nodes if n.response and n.action is None]
    assert any(n.reward > 0 for n in invalid) and all(n.reward == n.parent.reward for n in invalid)
    for tree in partial.trees:
        check_invariants(tree, config)
    capped = [leaf for leaf in leaves if not leaf.done]
    assert capped and all(leaf.depth == config.max_depth for leaf in capped)
    rows = tree_rows(result.trees)
    assert [row["leaves"] for row in rows] == [len(t.leaves()) for t in result.trees]
    # round trip
    (tmp_path / "summary.json").write_text("{}", encoding="utf-8")  # not a tree: ignored
    assert [t.task_id for t in load_trees(tmp_path)] == [1, 2, 3] == [t.task_id for t in load_trees(tmp_path, "numberline")]
    loaded = load_tree(tmp_path / "numberline-000002.json")
    assert nodes_only(loaded) == nodes_only(result.trees[1])
    assert loaded.root.instruction == NumberLine.instruction
    deepest = max(loaded.nodes, key=lambda n: n.depth)
    assert deepest.messages() == next(n for n in result.trees[1].nodes if n.id == deepest.id).messages()


def test_fake_env_snapshot_and_replay_give_identical_trees():
    trees = {}
    counts = {}
    for restore in ("snapshot", "replay"):
        config = MCTSConfig(simulations=5, n_gen=3, max_depth=6, seed=3, restore=restore, batch_trees=3)
        result = search_trees(HashPolicy(numberline_choice), NumberLine, [2, 3, 4], config, progress=False)
        trees[restore] = [nodes_only(tree) for tree in result.trees]
        counts[restore] = result.env_steps
    assert trees["snapshot"] == trees["replay"]
    assert counts["snapshot"] < counts["replay"]
    stepped = sum(1 for tree in trees["snapshot"] for node in tree if node["action"] is not None)
    assert counts["snapshot"] == stepped  # one env step per child that has an action
    # without env snapshot support, "snapshot" falls back to replay
    config = MCTSConfig(simulations=5, n_gen=3, max_depth=6, seed=3, restore="snapshot", batch_trees=3)
    fallback = search_trees(HashPolicy(numberline_choice), lambda: NumberLine(supports_snapshot=False), [2, 3, 4], config, progress=False)
    assert [nodes_only(t) for t in fallback.trees] == trees["replay"] and fallback.env_steps == counts["replay"]


def test_policy_without_responses_is_an_error():
    class Silent:
        def generate(self, conversations, n=1, temperature=0.0, max_new_tokens=128, seeds=None):
            return [[] for _ in conversations]

    with pytest.raises(ValueError, match="no response for task 2"):
        search_trees(Silent(), NumberLine, [2], MCTSConfig(simulations=1), progress=False)


def test_batched_search_makes_fewer_model_calls_and_same_trees():
    config = dict(simulations=4, n_gen=3, max_depth=5, seed=0)
    per_tree_policy, batched_policy = HashPolicy(numberline_choice), HashPolicy(numberline_choice)
    per_tree = search_trees(per_tree_policy, NumberLine, [1, 2, 3, 4], MCTSConfig(batch_trees=1, **config), progress=False)
    batched = search_trees(batched_policy, NumberLine, [1, 2, 3, 4], MCTSConfig(batch_trees=4, **config), progress=False)
    assert [nodes_only(t) for t in per_tree.trees] == [nodes_only(t) for t in batched.trees]
    assert per_tree.conversations == batched.conversations
    assert batched.model_calls < per_tree.model_calls == per_tree.conversations
    assert batched_policy.calls == batched.model_calls
    small = search_trees(HashPolicy(numberline_choice), NumberLine, [1, 2, 3, 4], MCTSConfig(batch_trees=4, max_batch=2, **config), progress=False)
    assert small.model_calls > batched.model_calls


class Crash(RuntimeError):
    pass


def test_resume_after_crash_skips_finished_trees(tmp_path):
    config = MCTSConfig(simulations=4, n_gen=3, max_depth=5, seed=2, batch_trees=1)
    full = search_trees(HashPolicy(numberline_choice), NumberLine, [1, 2, 3, 4], config, tmp_path / "full", progress=False)

    def crash_on_task_3(conversation, rng):
        if "Goal: 3." in conversation[2]["content"]:
            raise Crash("simulated crash")
        return numberline_choice(conversation, rng)

    with pytest.raises(Crash):
        search_trees(HashPolicy(crash_on_task_3), NumberLine, [1, 2, 3, 4], config, tmp_path / "run", progress=False)
    assert sorted(p.name for p in (tmp_path / "run").glob("*.json")) == ["numberline-000001.json", "numberline-000002.json"]
    second_policy = HashPolicy(numberline_choice)
    resumed = search_trees(second_policy, NumberLine, [1, 2, 3, 4], config, tmp_path / "run", progress=False)
    assert resumed.loaded == [1, 2] and resumed.searched == [3, 4]
    assert not any("Goal: 1." in obs or "Goal: 2." in obs for obs in second_policy.seen_first_observations)
    assert [nodes_only(t) for t in resumed.trees] == [nodes_only(t) for t in full.trees]
    for name in ("numberline-000001.json", "numberline-000004.json"):
        assert json.loads((tmp_path / "run" / name).read_text())["nodes"] == json.loads((tmp_path / "full" / name).read_text())["nodes"]


def test_a_named_search_builds_no_environment_until_a_tree_needs_one(tmp_path):
    """Resuming finished ScienceWorld trees must not start a JVM just to learn the env's name."""
    config = MCTSConfig(simulations=3, n_gen=2, max_depth=4, seed=0)
    search_trees(HashPolicy(numberline_choice), NumberLine, [1, 2], config, tmp_path, progress=False)
    built: list[NumberLine] = []

    def counting_factory() -> NumberLine:
        built.append(NumberLine())
        return built[-1]

    resumed = search_trees(HashPolicy(numberline_choice), counting_factory, [1, 2], config, tmp_path,
                           progress=False, env_name="numberline")
    assert resumed.loaded == [1, 2] and built == []
    more = search_trees(HashPolicy(numberline_choice), counting_factory, [1, 2, 3], config, tmp_path,
                        progress=False, env_name="numberline")
    assert more.searched == [3] and len(built) == 1 and (tmp_path / "numberline-000003.json").exists()


def test_corrupt_tree_file_is_reported_and_searched_again(tmp_path):
    config = MCTSConfig(simulations=3, n_gen=2, max_depth=4, seed=0)
    first = search_trees(HashPolicy(numberline_choice), NumberLine, [1, 2], config, tmp_path, progress=False)
    bad = tmp_path / "numberline-000002.json"
    bad.write_text('{"format": "agentr-mcts-tree/1", "nodes": [', encoding="utf-8")
    with pytest.warns(UserWarning, match="numberline-000002.json"):
        again = search_trees(HashPolicy(numberline_choice), NumberLine, [1, 2], config, tmp_path, progress=False)
    assert again.loaded == [1] and again.searched == [2] and again.corrupt == [str(bad)]
    assert nodes_only(load_tree(bad)) == nodes_only(first.trees[1])
    with pytest.warns(UserWarning, match=r"numberline-000001.json was searched with other settings \(simulations=3\)"):
        other = search_trees(HashPolicy(numberline_choice), NumberLine, [1], MCTSConfig(simulations=5, n_gen=2, max_depth=4),
                             tmp_path, progress=False)
    assert other.loaded == [1]
    for text in ("[]", '{"format": "agentr-mcts-tree/1", "env": "numberline", "task_id": 2, "instruction": "", "nodes": [1]}'):
        bad.write_text(text, encoding="utf-8")
        with pytest.raises(ValueError, match="numberline-000002.json"):
            load_tree(bad)
        with pytest.warns(UserWarning, match="corrupt tree file .*numberline-000002.json"):
            search_trees(HashPolicy(numberline_choice), NumberLine, [2], config, tmp_path, progress=False)


# ---------------------------------------------------------------------- TextCraft


@pytest.fixture(scope="module")
def textcraft():
    """The TextCraft module."""
    import agentr_lib.envs.textcraft

    return agentr_lib.envs.textcraft


def expert_noise_policy(env, task_ids, p_expert: float = 0.7, seed: int = 0) -> HashPolicy:
    """Follows the expert plan with probability p_expert, otherwise says something useless
    or wrong; the plan position is the number of expert actions already taken in order."""
    plans = {}
    for task_id in task_ids:
        plans[env.reset(task_id)] = [step.action for step in env.expert(task_id)]

    def choose(conversation, rng):
        plan = plans[conversation[2]["content"]]
        position = 0
        from agentr_lib.agent import parse_action
        for message in conversation[3::2]:
            if position < len(plan) and parse_action(message["content"]) == plan[position]:
                position += 1
        if rng.random() < p_expert and position < len(plan):
            return f"Thought: next step of the plan.\nAction: {plan[position]}"
        return rng.choice([
            "Thought: check.\nAction: inventory",
            "Thought: try.\nAction: get 1 stick",
            "Thought: craft something.\nAction: craft 1 stick using 2 oak planks",
            "I do not know.",
        ])

    return HashPolicy(choose, seed=seed)


def easy_textcraft_tasks(env, count: int) -> list[int]:
    """Train tasks with the shortest expert plans (sorted by plan length, then id)."""
    ids = env.task_ids("train")[:200]
    return sorted(sorted(ids, key=lambda t: (len(env.expert(t)), t))[:count])


def test_textcraft_search_finds_the_goal_on_easy_tasks(textcraft, tmp_path):
    env = textcraft.TextCraftEnv()
    tasks = easy_textcraft_tasks(env, 4)
    config = MCTSConfig(simulations=6, n_gen=3, max_depth=8, seed=0, batch_trees=4)
    result = search_trees(expert_noise_policy(env, tasks), textcraft.TextCraftEnv, tasks, config, tmp_path, progress=False)
    for tree in result.trees:
        check_invariants(tree, config)
        assert any(leaf.score == 1.0 for leaf in tree.leaves()), f"no success on task {tree.task_id}"
    assert len(list(tmp_path.glob("textcraft-*.json"))) == len(tasks)


def test_textcraft_snapshot_and_replay_identical_trees_fewer_steps(textcraft):
    env = textcraft.TextCraftEnv()
    assert env.supports_snapshot
    tasks = easy_textcraft_tasks(env, 3)
    out = {}
    for restore in ("snapshot", "replay"):
        config = MCTSConfig(simulations=4, n_gen=3, max_depth=8, seed=5, restore=restore, batch_trees=3)
        out[restore] = search_trees(expert_noise_policy(env, tasks), textcraft.TextCraftEnv, tasks, config, progress=False)
    snapshot, replay = out["snapshot"], out["replay"]
    assert [nodes_only(t) for t in snapshot.trees] == [nodes_only(t) for t in replay.trees]
    assert snapshot.env_steps == sum(t.stats["env_steps"] for t in snapshot.trees)
    stepped = [node for tree in snapshot.trees for node in tree.nodes if node.action is not None]
    # snapshot: one step per child with an action; replay: its whole (valid) action prefix again
    assert snapshot.env_steps == len(stepped)
    assert replay.env_steps == sum(sum(a is not None for a in node.action_history) for node in stepped)
    assert replay.env_steps > snapshot.env_steps
    expansions = sum(t.stats["expansions"] for t in snapshot.trees)
    assert snapshot.env_resets == len(tasks) and replay.env_resets == len(tasks) + len(stepped)
    assert snapshot.conversations == expansions
