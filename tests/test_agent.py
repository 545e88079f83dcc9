"""The agent: action parsing, context truncation, the (batched) episode runner."""

from __future__ import annotations

import importlib
import re

import pytest
from fake_env import CounterEnv

from agentr_lib.agent import (
    NO_ACTION_OBSERVATION,
    EpisodeSettings,
    Trajectory,
    format_response,
    opening_messages,
    parse_action,
    run_episode,
    run_episodes,
)
from agentr_lib.conversation import ACK, truncate_messages
from agentr_lib.llm.scripted import ScriptedPolicy

LONG_THOUGHT = "I am thinking about the recipe. " * 2000

PARSER_TABLE = [
    # well-formed
    ("Thought: I need a log.\nAction: get 1 oak log", "get 1 oak log"),
    ("Thought: x\nAction: craft 4 oak planks using 1 oak log.", "craft 4 oak planks using 1 oak log"),
    ("Action: inventory", "inventory"),
    ("Thought: buy it\nAction: click[buy now]", "click[buy now]"),
    ("Action: click[Next >]", "click[Next >]"),
    ("Thought: x\r\nAction: look around\r\n", "look around"),
    # several Action: lines -> the last one
    ("Thought: a\nAction: get 1 stick\nThought: b\nAction: inventory", "inventory"),
    ("Action: search[red shoes]\nAction: search[blue shoes]", "search[blue shoes]"),
    # an "action:" inside a sentence loses to a line-start Action:
    ("Thought: the next action: craft sticks\nAction: craft 4 stick using 2 oak planks", "craft 4 stick using 2 oak planks"),
    ("Action: get 1 oak log\nThought: that action: was fine", "get 1 oak log"),
    ("Thought: my next action: open door to kitchen", "open door to kitchen"),
    # numbering, bullets, formatting, case
    ("Action: 1. get 2 cobblestone", "get 2 cobblestone"),
    ("Action: (2) inventory", "inventory"),
    ("Action:\n- search[wool socks]", "search[wool socks]"),
    ("2. Action: open door to kitchen", "open door to kitchen"),
    ("**Action:** search[shoes]", "search[shoes]"),
    ("action: look around", "look around"),
    ("ACTION : focus on water", "focus on water"),
    ("Action: `click[buy now]`", "click[buy now]"),
    ('Action: "search[blue jeans]"', "search[blue jeans]"),
    ("Action: get 1 oak log!!!", "get 1 oak log"),
    ("Action: craft 1 stick using 2 oak planks, ", "craft 1 stick using 2 oak planks"),
    ("Action: get 1 oak log\nObservation: Got 1 oak log", "get 1 oak log"),
    ("Thought: revise.\nAction: wait", "wait"),
    # missing / empty
    ("Thought: I am not sure what to do.", None),
    ("", None),
    ("   \n  ", None),
    ("Action:", None),
    ("Thought: done.\nAction: .", None),
    # very long, unicode
    (f"Thought: {LONG_THOUGHT}\nAction: get 1 oak log", "get 1 oak log"),
    ("Action: " + "x" * 5000, "x" * 5000),
    ("Thought: café\nAction: search[crème brûlée pan]", "search[crème brûlée pan]"),
    ("思考: 需要木头\nAction: 获取 1 橡木", "获取 1 橡木"),
    ("Thought: 🙂\nAction: click[item 🙂]", "click[item 🙂]"),
]


@pytest.mark.parametrize("response,expected", PARSER_TABLE)
def test_parse_action_table(response, expected):
    assert parse_action(response) == expected


def test_parser_table_is_large_enough():
    assert len(PARSER_TABLE) >= 20


def _conversation(turns: int) -> list[dict]:
    messages = opening_messages("INSTRUCTION " * 20, "TASK first observation")
    for i in range(turns):
        messages.append({"role": "assistant", "content": f"Thought: t{i}\nAction: a{i}"})
        messages.append({"role": "user", "content": f"observation {i}"})
    return messages


def _words(messages: list[dict]) -> int:
    return sum(len(m["content"].split()) for m in messages)


def test_truncation_keeps_opening_and_latest_turns():
    messages = _conversation(10)
    budget = _words(messages[:3]) + 4 * 4  # room for about two (assistant, observation) pairs
    kept = truncate_messages(messages, _words, budget)
    assert kept[:3] == messages[:3]
    assert kept[1]["content"] == ACK
    assert kept[-2:] == messages[-2:]
    assert _words(kept) <= budget
    assert len(kept) == 3 + 2 * 2 and kept[3]["content"].endswith("a8")
    assert len(messages) == 23  # not modified


def test_truncation_is_a_noop_within_budget_and_keeps_last_pair_when_over():
    messages = _conversation(3)
    assert truncate_messages(messages, _words, 10_000) == messages
    assert truncate_messages(messages, _words, None) == messages
    tiny = truncate_messages(messages, _words, 1)
    assert tiny == messages[:3] + messages[-2:]


def counter_policy(extra_calls: list | None = None) -> ScriptedPolicy:
    """Adds 1 while the last observation says the counter is below the task target."""

    def respond(conversation, rng):
        return format_response("keep adding", "add 1")

    return ScriptedPolicy(respond)


def test_run_episode_success_and_serialisation():
    env = CounterEnv()
    trajectory = run_episode(counter_policy(), env, 3, max_turns=10)
    assert trajectory.success and trajectory.done and not trajectory.hit_turn_limit
    assert trajectory.actions == ["add 1"] * 3
    assert trajectory.messages()[:3] == opening_messages(CounterEnv.instruction, env.reset(3))
    again = Trajectory.from_dict(trajectory.to_dict())
    assert again == trajectory


def test_missing_action_is_an_invalid_step_and_turn_limit_is_recorded():
    policy = ScriptedPolicy(lambda conv, rng: "Thought: hmm, no idea")
    trajectory = run_episode(policy, CounterEnv(), 4, max_turns=3)
    assert [s.observation for s in trajectory.steps] == [NO_ACTION_OBSERVATION] * 3
    assert trajectory.parse_failures == 3 and trajectory.final_reward == 0.0
    assert trajectory.hit_turn_limit and not trajectory.done


def test_run_episodes_lockstep_one_generate_call_per_turn():
    batch_sizes: list[int] = []

    class Recording(ScriptedPolicy):
        def generate(self, conversations, **kw):
            batch_sizes.append(len(conversations))
            return super().generate(conversations, **kw)

    policy = Recording(lambda conv, rng: format_response("add", "add 1"))
    tasks = [1, 2, 3, 4, 5]
    CounterEnv.instances = 0
    trajectories = run_episodes(policy, CounterEnv, tasks, EpisodeSettings(10), progress=False)
    assert [t.task_id for t in trajectories] == tasks
    assert all(t.success for t in trajectories)
    assert [len(t.steps) for t in trajectories] == tasks
    assert policy.calls == 5  # the longest episode's turns, not the sum (15)
    assert batch_sizes == [5, 4, 3, 2, 1]
    assert CounterEnv.instances == 5


def test_run_episodes_concurrency_limit_reuses_envs_and_closes_owned_ones():
    built: list[CounterEnv] = []

    def factory():
        built.append(CounterEnv())
        return built[-1]

    policy = ScriptedPolicy(lambda conv, rng: format_response("add", "add 1"))
    finished: list[int] = []
    trajectories = run_episodes(policy, factory, [2, 1, 3, 1], EpisodeSettings(10), max_concurrency=2,
                                on_finish=lambda i, t: finished.append(i), progress=False)
    assert len(built) == 2 and all(env.closed for env in built)
    assert [t.final_reward for t in trajectories] == [1.0] * 4
    assert sorted(finished) == [0, 1, 2, 3] and finished[0] == 1  # task 1 ends first


def test_prefix_is_replayed_then_the_policy_continues():
    policy = ScriptedPolicy(lambda conv, rng: format_response("add", "add 1"))
    prefix = [format_response("try", "look"), "no action here", format_response("go", "add 2")]
    trajectory = run_episode(policy, CounterEnv(), 4, max_turns=10, prefix=prefix)
    assert trajectory.prefix_len == 3
    assert trajectory.actions == ["look", None, "add 2", "add 1", "add 1"]
    assert trajectory.steps[1].observation == NO_ACTION_OBSERVATION
    assert trajectory.success and policy.calls == 2
    # a prefix that already ends the episode needs no model call
    policy2 = ScriptedPolicy(lambda conv, rng: format_response("add", "add 1"))
    done = run_episode(policy2, CounterEnv(), 2, max_turns=10, prefix=[format_response("big", "add 5")])
    assert done.done and done.final_reward == 0.0 and policy2.calls == 0


# ----------------------------------------------------------------------------------
# Expert replay on the real environments
# ----------------------------------------------------------------------------------


def _expert_policy(experts_by_first_observation: dict[str, list]) -> ScriptedPolicy:
    def respond(conversation, rng):
        steps = experts_by_first_observation[conversation[2]["content"]]
        k = sum(m["role"] == "assistant" for m in conversation) - 1  # minus the "Ok."
        return format_response(steps[k].thought, steps[k].action) if k < len(steps) else "Thought: finished"

    return ScriptedPolicy(respond)


def _check_expert_replay(name: str, n_tasks: int) -> None:
    from agentr_lib.envs import make_env

    env = make_env(name)
    try:
        tasks = env.task_ids("test")[:n_tasks]
        experts, reference = {}, {}
        for task in tasks:
            first = env.reset(task)
            steps = env.expert(task)
            experts[first] = steps
            reward, done = 0.0, False
            for step in steps:
                _, reward, done = env.step(step.action)
                if done:
                    break
            reference[task] = (reward, done)
        max_turns = max(len(s) for s in experts.values()) + 2
        trajectories = run_episodes(_expert_policy(experts), [env], tasks, EpisodeSettings(max_turns), progress=False)
    finally:
        env.close()
    for task, trajectory in zip(tasks, trajectories):
        assert trajectory.parse_failures == 0, (name, task)
        assert (trajectory.final_reward, trajectory.done) == pytest.approx(reference[task]), (name, task)
        assert trajectory.success, f"{name} task {task}: expert replay reached {trajectory.final_reward}"


@pytest.mark.parametrize("name", ["textcraft", "webshop"])
def test_expert_replay_reproduces_expert_success(name):
    _check_expert_replay(name, n_tasks=5)


@pytest.mark.slow
def test_expert_replay_reproduces_expert_success_sciworld():
    _check_expert_replay("sciworld", n_tasks=2)


# ----------------------------------------------------------------------------------
# Prompts
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["textcraft", "sciworld", "webshop"])
def test_instruction_for_reexports_the_env_instruction(name):
    from agentr_lib.envs import REGISTRY
    from agentr_lib.prompts import instruction_for

    module_name, class_name = REGISTRY[name].split(":")
    text = instruction_for(name)
    assert text == getattr(importlib.import_module(module_name), class_name).instruction
    assert "Action" in text and "Thought" in text


def test_instruction_for_unknown_env():
    from agentr_lib.prompts import instruction_for

    with pytest.raises(ValueError, match="unknown environment"):
        instruction_for("minecraft")


def test_verifier_messages_show_task_history_and_the_step_to_judge():
    from agentr_lib.agent import Turn
    from agentr_lib.prompts import verifier_messages

    history = [Turn("Thought: a\nAction: get 1 oak log", "get 1 oak log", "Got 1 oak log", 0.0, False),
               Turn("Thought: ???", None, NO_ACTION_OBSERVATION, 0.0, False)]
    current = Turn("Thought: b\nAction: craft 4 oak planks using 1 oak log", "craft 4 oak planks using 1 oak log",
                   "Crafted 4 minecraft:oak_planks", 0.0, False)
    messages = verifier_messages("THE INSTRUCTION", "Goal: craft stick.", history, current)
    assert [m["role"] for m in messages] == ["user"]
    text = messages[0]["content"]
    for part in ("THE INSTRUCTION", "Goal: craft stick.", "Step 1\nAction: get 1 oak log\nObservation: Got 1 oak log",
                 "Step 2\nAction: (no valid action)", "Step 3\nAction: craft 4 oak planks using 1 oak log",
                 "Crafted 4 minecraft:oak_planks", "Judgment: Good", "Judgment: Bad", "Judgment: Uncertain"):
        assert part in text, part
    assert text.index("Got 1 oak log") < text.index("Crafted 4")
    empty = verifier_messages("I", "T", [], current)[0]["content"]
    assert "(no steps yet)" in empty and "Step 1\nAction: craft" in empty


@pytest.mark.parametrize("reply,expected", [
    ("The log was needed.\nJudgment: Good", "Good"),
    ("judgment: bad", "Bad"),
    ("Judgement: Uncertain", "Uncertain"),
    ("**Judgment:** Bad", "Bad"),
    ("Judgment: Good\n...on reflection\nJudgment: Bad", "Bad"),
    ("It looks fine to me.", "Uncertain"),
    ("", "Uncertain"),
    ("Judgment: goodish", "Uncertain"),
])
def test_parse_judgment(reply, expected):
    from agentr_lib.prompts import parse_judgment

    assert parse_judgment(reply) == expected


def test_revision_signals_pool():
    from agentr_lib.prompts import REVISION_SIGNALS

    assert isinstance(REVISION_SIGNALS, tuple) and 8 <= len(REVISION_SIGNALS) <= 12
    assert len(set(REVISION_SIGNALS)) == len(REVISION_SIGNALS)
    for signal in REVISION_SIGNALS:
        assert re.search(r"\b(I|my|me|My)\b", signal) and len(signal) < 100 and "\n" not in signal
        assert parse_action(format_response(signal, "wait")) == "wait"


def test_invalid_step_keeps_the_partial_score():
    replies = iter([format_response("one", "add 1"), "Thought: lost"])
    trajectory = run_episode(ScriptedPolicy(lambda conv, rng: next(replies)), CounterEnv(), 4, max_turns=2)
    # the step without an action does not touch the env: the score it reports stays 0.25
    assert [s.reward for s in trajectory.steps] == [0.25, 0.25]
    assert trajectory.final_reward == 0.25 and trajectory.hit_turn_limit


def test_revision_action_is_answered_ok_without_touching_the_env():
    from agentr_lib.agent import REVISION_OBSERVATION

    env = CounterEnv()
    replies = iter([format_response("one", "add 1"), format_response("I was wrong. I will fix it.", "wait"),
                    format_response("two", "add 1")])
    trajectory = run_episode(ScriptedPolicy(lambda conv, rng: next(replies)), env, 4, max_turns=3)
    assert [s.observation == REVISION_OBSERVATION for s in trajectory.steps] == [False, True, False]
    assert [s.reward for s in trajectory.steps] == [0.25, 0.25, 0.5]
    assert trajectory.messages()[6] == {"role": "user", "content": REVISION_OBSERVATION} and env.steps == 2
