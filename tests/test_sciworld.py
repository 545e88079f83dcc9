"""ScienceWorld wrapper: gold paths, lean vs full step, action mapping, splits, JVM lifecycle.

One env (one JVM) is shared by the module; the crash and close tests run last in file order
and leave it usable (a new JVM starts on demand)."""

from __future__ import annotations

import logging
import os
import signal
import time

import psutil
import pytest

from agentr_lib.envs.base import Env
from agentr_lib.envs.sciworld import (
    EPISODE_OVER,
    NOT_UNDERSTOOD,
    ScienceWorldEnv,
    SciWorldState,
    closest_action,
    normalise_action,
    task_goal,
    thought_for,
)
from agentr_lib.splits import load_split

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def env():
    environment = ScienceWorldEnv()
    yield environment
    environment.close()


def _first_variation(env: ScienceWorldEnv, name: str, split: str = "train") -> int:
    return env.tasks.index((name, env.official_set(name, split)[0]))


def _java_children() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True) if "java" in p.name().lower()]


def test_protocol_and_task_table(env):
    assert isinstance(env, Env)
    assert env.supports_snapshot is False
    assert len(env.task_types) == 23
    for excluded in ("grow-plant", "grow-fruit", "mendelian-genetics-known-plant", "inclined-plane-determine-angle"):
        assert excluded not in env.task_types
    assert len(env.tasks) == 4639  # AgentGym's flattened index over the same 23 types
    assert env.tasks[0] == ("boil", 0)
    assert "Thought:" in env.instruction and "Action:" in env.instruction
    cmdline = psutil.Process(env.java_pid).cmdline()
    assert "-Xmx512m" in cmdline and "-XX:hashCode=2" in cmdline  # heap cap, determinism


def test_gold_path_scores_100_on_every_task_type(env):
    """One variation per type, replayed through the lean step from a fresh reset."""
    failures = []
    for name in env.task_types:
        task_id = _first_variation(env, name)
        steps = env.expert(task_id)
        assert steps and all(s.thought and s.action for s in steps)
        env.reset(task_id)
        reward, done = 0.0, False
        for step in steps:
            _, reward, done = env.step(step.action)
            if done:
                break
        if not (reward == 1.0 and done):
            failures.append((name, reward, done))
    assert not failures, f"gold paths that did not reach score 100: {failures}"
    assert env.stats["mapped"] == 0  # gold actions are understood as typed


def test_lean_and_full_step_agree(env):
    for name in ("use-thermometer", "chemistry-mix-paint-secondary-color"):
        task_id = _first_variation(env, name)
        actions = [s.action for s in env.expert(task_id)]
        runs = []
        for full in (False, True):
            first = env.reset(task_id)
            trace = [(first, 0.0, False)]
            for action in actions:
                trace.append(env.step_full(action) if full else env.step(action))
                if full:
                    assert env.valid_actions, "step_full must leave the valid-action list"
            runs.append(trace)
        assert runs[0] == runs[1]
        assert runs[0][-1][1:] == (1.0, True)


def test_reward_is_current_score_and_negative_score_ends(env):
    task_id = _first_variation(env, "boil")
    env.reset(task_id)
    assert env.step("focus on air")[1:] == (0.0, True)  # wrong focus: score < 0
    assert env.score < 0
    assert env.step("look around") == (EPISODE_OVER, 0.0, True)
    # partial score: reward is the running score / 100 and never decreases on a no-op
    task_id = _first_variation(env, "use-thermometer")
    actions = [s.action for s in env.expert(task_id)]
    env.reset(task_id)
    rewards = [env.step(a)[1] for a in actions]
    assert 0.0 < rewards[len(rewards) // 2] < 1.0 and rewards[-1] == 1.0
    assert rewards == sorted(rewards)


def test_near_miss_is_mapped_and_garbage_never_raises(env):
    task_id = _first_variation(env, "boil")
    first = env.reset(task_id)
    room = "kitchen" if "door to the kitchen" in first else None
    assert room, "boil starts next to the kitchen door in this variation"
    before = env.stats["mapped"]
    observation, reward, done = env.step("open door to kitchn")
    assert env.last_mapping == ("open door to kitchn", "open door to kitchen")
    assert env.stats["mapped"] == before + 1
    assert observation == "The door is now open." and not done
    # garbage: the simulator's own message, reward 0, no move spent, never an exception
    moves_before = len(env.snapshot().inputs)
    for garbage in ("xyzzy plugh", "", "   ", "Action: ???", "pick up thermometer", "1234", "\x00\n\t"):
        observation, reward, done = env.step(garbage)
        assert observation.startswith(NOT_UNDERSTOOD) and reward == 0.0 and not done
        assert observation.startswith(env.failure_prefixes)  # the revision rule "seen" sees it
        assert env.last_mapping is None
    assert len(env.snapshot().inputs) == moves_before
    # formatting noise is normalised, not mapped
    assert env.step("Go to Kitchen.")[0] == "You move to the kitchen." and env.last_mapping is None
    # an ambiguous request (the kitchen has several doors) is resolved to option 0 at once
    before = env.stats["ambiguous"]
    observation, _, _ = env.step("open door")
    assert not observation.startswith("Ambiguous") and env.stats["ambiguous"] == before + 1
    assert not observation.startswith(env.failure_prefixes)
    assert env.last_mapping[0] == "open door" and env.last_mapping[1].startswith("open door")
    assert env.step("look around")[0].startswith("This room is called the kitchen")


def test_closest_action_unit():
    valid = ["open door to kitchen", "open door to hallway", "connect door to kitchen", "pick up picture", "look around"]
    assert closest_action("open door to kitchn", valid)[0] == "open door to kitchen"
    assert closest_action("pick up thermometer", valid)[0] is None  # same verb, different object
    assert closest_action("open kitchen door", valid)[0] == "open door to kitchen"
    assert closest_action("qwerty", valid)[0] is None
    uses = ["use thermometer on thermometer", "use thermometer on solid unknown substance y"]
    assert closest_action("use thermometer on substance", uses)[0] == uses[1]  # covers what was named
    assert normalise_action("  Open   Door to Kitchen. ") == "open door to kitchen"
    assert task_goal("Your task is to boil water. First, focus on the substance.") == "boil water"
    assert thought_for("pick up thermometer") == "I need the thermometer, so I pick it up."


def test_snapshot_restore_replays_exactly(env):
    task_id = _first_variation(env, "use-thermometer")
    actions = [s.action for s in env.expert(task_id)]
    env.reset(task_id)
    half = len(actions) // 2
    for action in actions[:half]:
        env.step(action)
    state = env.snapshot()
    assert isinstance(state, SciWorldState) and state.task_id == task_id
    tail = [env.step(a) for a in actions[half:]]
    env.reset(_first_variation(env, "boil"))  # elsewhere, then back
    env.restore(state)
    assert [env.step(a) for a in actions[half:]] == tail


def test_splits(env):
    test, train = env.task_ids("test"), env.task_ids("train")
    assert len(test) == 200 and len(set(test)) == 200
    assert not set(test) & set(train)
    for task_id in test:
        name, variation = env.task(task_id)
        assert variation in env.official_set(name, "test")
    for task_id in train:
        name, variation = env.task(task_id)
        assert variation in env.official_set(name, "train")
    assert len(train) == sum(len(env.official_set(n, "train")) for n in env.task_types)
    assert {env.task(t)[0] for t in test} == set(env.task_types)  # every type is tested
    assert env.task_ids("test") == test  # deterministic
    assert load_split("sciworld", "test") == test and load_split("sciworld", "train") == train
    with pytest.raises(ValueError):
        env.task_ids("dev")


def test_official_sets_match_a_real_load(env):
    """task_ids() reads the sets without loading each task; check that shortcut on one type."""
    name = "find-plant"
    server = env._sim.server
    server.load(name, 0, "", False)
    assert sorted(int(v) for v in server.getVariationsTest()) == env.official_set(name, "test")
    assert sorted(int(v) for v in server.getVariationsTrain()) == env.official_set(name, "train")


def test_restart_after_jvm_is_killed(env, caplog):
    task_id = _first_variation(env, "use-thermometer")
    actions = [s.action for s in env.expert(task_id)]
    env.reset(task_id)
    for action in actions[:5]:
        env.step(action)
    old_pid = env.java_pid
    os.kill(old_pid, signal.SIGKILL)
    psutil.Process(old_pid).wait(timeout=10) if psutil.pid_exists(old_pid) else None
    restarts = env.stats["restarts"]
    results = [env.step(a) for a in actions[5:]]
    assert env.stats["restarts"] == restarts + 1
    assert env.java_pid != old_pid
    assert results[-1][1:] == (1.0, True)
    env.close()
    noise = [r for r in caplog.records if r.name.startswith("py4j") and r.levelno >= logging.WARNING]
    assert not noise, f"py4j logged {len(noise)} tracebacks for one recovered crash: {noise[0].getMessage()[:200]}"


def test_close_leaves_no_jvm():
    environment = ScienceWorldEnv()
    environment.reset(0)
    pid = environment.java_pid
    assert pid in [p.pid for p in _java_children()]
    environment.close()
    environment.close()  # twice is fine
    deadline = time.time() + 10
    while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE and time.time() < deadline:
        time.sleep(0.1)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert environment.java_pid is None


def test_jvm_dies_with_a_process_that_forgets_close(tmp_path):
    """No close(): the finalizer (at exit) and py4j's die_on_exit still stop the JVM."""
    import subprocess
    import sys

    script = (
        "from agentr_lib.envs.sciworld import ScienceWorldEnv\n"
        "env = ScienceWorldEnv()\nenv.reset(0)\nprint(env.java_pid, flush=True)\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": root})
    assert out.returncode == 0, out.stderr
    pid = int(out.stdout.split()[-1])
    deadline = time.time() + 10
    while psutil.pid_exists(pid) and time.time() < deadline:
        time.sleep(0.2)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
