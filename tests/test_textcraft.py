"""TextCraft: the expert solves goals, texts are deterministic across processes, bad actions
never raise, snapshots are exact, and the splits match the paper's depth mix."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from agentr_lib.envs import make_env
from agentr_lib.envs.base import Env
from agentr_lib.envs.textcraft import SEARCH_MIX, TEST_MIX, VAL_MIX, TextCraftEnv, default_book
from agentr_lib.splits import load_split

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def env() -> TextCraftEnv:
    return TextCraftEnv(seed=0)


def run_expert(env: TextCraftEnv, task_id: int) -> tuple[float, bool, list[str]]:
    env.reset(task_id)
    reward, done, observations = 0.0, False, []
    for step in env.expert(task_id):
        assert not done, f"task {task_id}: expert keeps acting after done"
        obs, reward, done = env.step(step.action)
        observations.append(obs)
    return reward, done, observations


def test_registry_builds_a_protocol_env():
    env = make_env("textcraft")
    assert isinstance(env, Env) and env.supports_snapshot and env.name == "textcraft"
    assert "Thought:" in env.instruction and "Action:" in env.instruction


def test_recipe_book_matches_the_known_counts():
    book = default_book()
    assert sum(len(rs) for rs in book.recipes.values()) == 613
    assert len(book.recipes) == 544
    assert sum(book.is_base(item) for item in book.items) == 127
    assert book.is_base("minecraft:oak_logs") and book.is_tag("minecraft:planks")
    assert not book.is_base("minecraft:oak_planks")


def test_expert_solves_every_test_goal(env):
    for task_id in env.task_ids("test"):
        reward, done, observations = run_expert(env, task_id)
        assert (reward, done) == (1.0, True), (task_id, observations)


def test_expert_solves_a_seeded_sample_of_train_goals(env):
    sample = random.Random(7).sample(env.task_ids("train"), 100)
    for task_id in sample:
        reward, done, observations = run_expert(env, task_id)
        assert (reward, done) == (1.0, True), (task_id, observations)


def test_every_expert_craft_is_listed_and_the_first_thought_states_the_tree(env):
    for task_id in range(len(env.goals)):
        obs = env.reset(task_id)
        steps = env.expert(task_id)
        goal = obs.rsplit("Goal: craft ", 1)[1].rstrip(".")
        assert steps[0].thought.startswith(f"I need to craft {goal}. {goal} needs ")
        assert steps[-1].action.split(" using ")[0].endswith(f" {goal}")
        assert all(len(step.thought) < 60 for step in steps[1:]), task_id


def test_expert_plan_example(env):
    task_id = env.goals.index("minecraft:yellow_banner")
    steps = env.expert(task_id)
    assert steps[0].thought.startswith(
        "I need to craft yellow banner. yellow banner needs 6 yellow wool, 1 stick. "
        "yellow wool needs 1 yellow dye, 1 white wool.")
    actions = [step.action for step in steps]
    assert "get 24 string" in actions  # 6 white wool x 4 string: totals include output counts
    assert actions[-1] == "craft 1 yellow banner using 6 yellow wool, 1 stick"


def test_reset_observation_format(env):
    obs = env.reset(env.goals.index("minecraft:crafting_table"))
    head, goal = obs.split("\n\n")
    lines = head.split("\n")
    assert lines[0] == "Crafting commands:" and goal == "Goal: craft crafting table."
    assert "craft 1 crafting table using 4 planks" in lines
    assert "craft 4 oak planks using 1 oak logs" in lines  # a tag brings all its members
    assert len(lines) - 1 == len(set(lines[1:]))  # no duplicates
    assert len(env.tree_recipes("minecraft:crafting_table")) + 10 == len(lines) - 1


def test_companions_add_other_goal_trees_without_changing_the_task(env):
    goal, other = env.goals.index("minecraft:crafting_table"), env.goals.index("minecraft:furnace_minecart")
    plain, mixed = env.observation(goal), env.observation(goal, companions=(other,))
    assert mixed.endswith("Goal: craft crafting table.") and mixed != plain
    listed = mixed.split("\n\n")[0].split("\n")[1:]
    assert len(listed) == len(set(listed))
    for recipe in env.tree_recipes("minecraft:crafting_table") + env.tree_recipes("minecraft:furnace_minecart"):
        assert recipe.text in listed
    assert env.observation(goal) == plain == env.reset(goal)  # pure: the default observation is unchanged


def test_observations_depend_on_seed_and_task_only():
    a, b, c = TextCraftEnv(seed=0), TextCraftEnv(seed=0), TextCraftEnv(seed=1)
    a.reset(3)  # history must not matter
    assert [a.reset(t) for t in range(40)] == [b.reset(t) for t in range(40)]
    assert [a.reset(t) for t in range(40, 80)] != [c.reset(t) for t in range(40, 80)]


_DUMP = (
    "import json, sys; sys.path.insert(0, {root!r});"
    "from agentr_lib.envs.textcraft import TextCraftEnv; env = TextCraftEnv(seed=3);"
    "ids = env.task_ids('test')[::5];"
    "print(json.dumps([[env.reset(t), [s.action for s in env.expert(t)]] for t in ids]))"
)


def test_identical_across_processes_with_different_hash_seeds():
    outputs = []
    for hash_seed in ("1", "12345"):
        proc = subprocess.run(
            [sys.executable, "-c", _DUMP.format(root=str(ROOT))],
            env={**os.environ, "PYTHONHASHSEED": hash_seed}, capture_output=True, text=True, check=True,
        )
        outputs.append(json.loads(proc.stdout))
    assert len(outputs[0]) == 20
    assert outputs[0] == outputs[1]


@pytest.mark.parametrize("action", [
    "", "   ", "get", "get x oak logs", "get 0 oak logs", "craft", "craft 1 diamond using 1 dirt",
    "fly", "get 1 nonexistent item", "get 1 oak planks", "get 1 planks", "craft 4 oak planks using",
    "craft 4 oak planks using oak logs", "craft 1 crafting table using 4 planks", "inventory please",
    None, "craft 4 oak planks using 1 oak logs, 1 oak logs",
])
def test_invalid_actions_explain_and_never_raise(env, action):
    env.reset(env.goals.index("minecraft:crafting_table"))
    obs, reward, done = env.step(action)
    assert isinstance(obs, str) and len(obs) > 10
    assert (reward, done) == (0.0, False)
    assert env.inventory == {} and env.num_steps == 1


def test_observation_texts_follow_agentgym(env):
    env.reset(env.goals.index("minecraft:crafting_table"))
    assert env.step("inventory")[0] == "Inventory: You are not carrying anything."
    assert env.step("get 1 oak planks")[0] == "Could not find oak planks"
    assert env.step("craft 4 oak planks using 1 oak logs")[0] == "Could not find enough items to craft minecraft:oak_planks"
    assert env.step("get 2 oak logs")[0] == "Got 2 oak logs"
    assert env.step("craft 4 oak planks using 1 birch logs")[0].startswith("Could not find enough items")
    assert env.step("craft 1 stick using 1 oak logs")[0] == "Could not find a valid recipe for stick"
    assert env.step("craft 8 oak planks using 2 oak logs")[0] == "Crafted 8 minecraft:oak_planks"
    assert env.step("Inventory.")[0] == "Inventory: [oak planks] (8)"
    # the generic "planks" is not an item one holds; a member stands in for the tag
    assert env.step("craft 1 crafting table using 4 planks")[0].startswith("Could not find enough items")
    assert env.step("craft 1 crafting table using 3 oak planks")[0] == "Could not find a valid recipe for crafting table"
    obs, reward, done = env.step("craft 1 crafting table using 4 oak planks")
    assert (obs, reward, done) == ("Crafted 1 minecraft:crafting_table", 1.0, True)
    assert env.step("inventory")[1:] == (0.0, True)


def test_multiples_must_be_whole(env):
    env.reset(env.goals.index("minecraft:crafting_table"))
    env.step("get 3 oak logs")
    assert env.step("craft 4 oak planks using 3 oak logs")[0] == "Crafted 12 minecraft:oak_planks"
    assert env.step("craft 1 crafting table using 6 oak planks")[0].startswith("Could not find a valid recipe")
    assert env.inventory == {"minecraft:oak_planks": 12}


def test_restore_gives_the_same_future_as_replaying(env):
    rng = random.Random(0)
    for task_id in rng.sample(range(len(env.goals)), 15):
        actions = [s.action for s in env.expert(task_id)]
        actions = actions[:1] + ["get 1 nonexistent item", "inventory"] + actions[1:]
        k = rng.randrange(1, len(actions))
        env.reset(task_id)
        for action in actions[:k]:
            env.step(action)
        state = env.snapshot()
        future = [env.step(a) for a in actions[k:]]
        env.reset((task_id + 1) % len(env.goals))
        env.step("get 5 stick")
        env.restore(state)
        assert [env.step(a) for a in actions[k:]] == future
        replay = TextCraftEnv(seed=0)
        replay.reset(task_id)
        for action in actions[:k]:
            replay.step(action)
        assert [replay.step(a) for a in actions[k:]] == future
        assert future[-1][1:] == (1.0, True)


def test_splits_follow_the_paper_depth_mix_and_are_disjoint(env):
    train, test = env.task_ids("train"), env.task_ids("test")
    assert Counter(env.depth(t) for t in test) == Counter(TEST_MIX)
    assert not set(train) & set(test)
    assert sorted(train + env.task_ids("val") + test) == list(range(len(env.goals)))
    assert {env.depth(t) for t in train} == {1, 2, 3, 4}
    with pytest.raises(ValueError, match="'valid'"):
        env.task_ids("valid")
    for bad in (len(env.goals), -1, "3", 2.0):
        with pytest.raises(ValueError, match="out of range"):
            env.reset(bad)


def test_shipped_split_file_matches(env):
    assert load_split("textcraft", "train") == env.task_ids("train")
    assert load_split("textcraft", "test") == env.task_ids("test")
    assert load_split("textcraft", "val") == env.task_ids("val")


def test_benchmark_table_survives_a_failing_environment(monkeypatch):
    from benchmarks import envs as bench

    def broken() -> list[dict[str, str]]:
        raise RuntimeError("no simulator")

    ok = lambda: [{"env": "x", "measure": "reset, mean ms", "value": "1.0", "notes": "a|b"}]  # noqa: E731
    monkeypatch.setattr(bench, "ROWS", [ok, broken])
    table = bench.markdown(bench.collect()).splitlines()
    assert table[0] == "| env | measure | value | notes |" and len(table) == 4
    assert table[2] == "| x | reset, mean ms | 1.0 | a/b |"
    assert "(failed)" in table[3] and "RuntimeError: no simulator" in table[3]


def test_validation_goals_are_carved_from_train_and_never_demonstrated():
    env = TextCraftEnv()
    train, val, test = (set(env.task_ids(split)) for split in ("train", "val", "test"))
    assert len(val) == sum(VAL_MIX.values()) and len(test) == sum(TEST_MIX.values())
    assert not (train & val) and not (train & test) and not (val & test)
    assert len(train | val | test) == len(env.goals)
    depths = [env.book.depth[env.goals[i]] for i in val]
    assert {d: depths.count(d) for d in VAL_MIX} == VAL_MIX
    assert load_split("textcraft", "val") == env.task_ids("val"), "the shipped split file is current"


def test_search_goals_are_a_depth_mixed_third_of_train_and_the_disjoint_model_never_sees_them():
    from agentr_lib.build.demos import demonstrated_ids
    from agentr_lib.models import resolve_spec

    env = TextCraftEnv()
    train, search = env.task_ids("train"), env.task_ids("search")
    assert set(search) < set(train) and len(search) == sum(SEARCH_MIX.values())
    assert Counter(env.depth(t) for t in search) == Counter(SEARCH_MIX)
    assert load_split("textcraft", "search") == search, "the shipped split file is current"
    assert demonstrated_ids(env, resolve_spec("tiny").held_out) == train
    warm = demonstrated_ids(env, resolve_spec("tiny-disjoint").held_out)
    assert sorted(set(warm) | set(search)) == train and not set(warm) & set(search)
