"""Evaluation: loop statistics, logged + resumable evaluation, metrics, revision protocol."""

from __future__ import annotations

import json

import pytest
from fake_env import CounterEnv

from agentr_lib.agent import format_response
from agentr_lib.evaluate import (
    EvalConfig,
    Runner,
    evaluate,
    evaluate_revision,
    load_metrics,
    loop_counts,
    make_error_prefixes,
    summarize,
)
from agentr_lib.io import read_jsonl
from agentr_lib.llm.scripted import ScriptedPolicy


@pytest.mark.parametrize(
    "actions,expected",
    [
        ([], {1: 0, 2: 0, 3: 0, 4: 0, 5: 0}),
        (["a"], {1: 0, 2: 0, 3: 0, 4: 0, 5: 0}),
        (["a", "a", "a"], {1: 2, 2: 0, 3: 0, 4: 0, 5: 0}),
        (["a", "b", "a", "b"], {1: 0, 2: 1, 3: 0, 4: 0, 5: 0}),
        (["a", "b", "a", "b", "a", "b"], {1: 0, 2: 3, 3: 0, 4: 0, 5: 0}),
        (["a", "b", "c", "a", "b", "c"], {1: 0, 2: 0, 3: 1, 4: 0, 5: 0}),
        (["x", "a", "a", "y", "b", "b", "b"], {1: 3, 2: 0, 3: 0, 4: 0, 5: 0}),
        (["a", "a", "a", "a"], {1: 3, 2: 1, 3: 0, 4: 0, 5: 0}),
        (list("abcdeabcde"), {1: 0, 2: 0, 3: 0, 4: 0, 5: 1}),
        ([None, None, "a"], {1: 1, 2: 0, 3: 0, 4: 0, 5: 0}),
        (list("abcdefabcdef"), {1: 0, 2: 0, 3: 0, 4: 0, 5: 0}),  # L=6 is beyond max_len
    ],
)
def test_loop_counts_hand_counted(actions, expected):
    assert loop_counts(actions) == expected


def test_loop_counts_max_len():
    assert loop_counts(["a"] * 5, max_len=2) == {1: 4, 2: 2}


#: the counter env's episodes, without a progress bar; eight turns (a prefix keeps at most four)
COUNTER = Runner(envs=CounterEnv, progress=False)
EIGHT_TURNS = EvalConfig(max_turns=8)


def add_two_policy() -> ScriptedPolicy:
    """Always `add 2`: tasks 2 and 4 succeed, 1/3/5 overshoot (reward 0)."""
    return ScriptedPolicy(lambda conversation, rng: format_response("two at a time", "add 2"))


def test_evaluate_writes_jsonl_and_metrics(tmp_path):
    metrics = evaluate(add_two_policy(), "counter", [1, 2, 3, 4, 5], tmp_path, EvalConfig(max_turns=10), COUNTER)
    assert metrics["n"] == 5
    assert metrics["mean_reward"] == pytest.approx(40.0) and metrics["success"] == pytest.approx(40.0)
    assert metrics["mean_turns"] == pytest.approx((1 + 1 + 2 + 2 + 3) / 5)
    assert metrics["hit_turn_limit"] == 0 and metrics["parse_failures"] == 0
    assert metrics["loops"]["1"] == pytest.approx((0 + 0 + 1 + 1 + 2) / 5)
    records = read_jsonl(tmp_path / "counter.jsonl")
    assert sorted(r["task_id"] for r in records) == [1, 2, 3, 4, 5]
    record = next(r for r in records if r["task_id"] == 5)
    assert record["actions"] == ["add 2"] * 3 and record["final_reward"] == 0.0 and not record["success"]
    assert record["hit_turn_limit"] is False and record["parse_failures"] == 0 and record["loops"]["1"] == 2
    assert [s["observation"] for s in record["steps"]][-1].endswith("Overshot.")
    saved = json.loads((tmp_path / "counter.metrics.json").read_text())
    assert saved == metrics
    summary = json.loads((tmp_path / "metrics.json").read_text())
    assert summary["counter"]["success"] == 40.0 and summary["average"]["success"] == 40.0


def test_rerun_resumes_without_redoing_finished_episodes(tmp_path):
    first = add_two_policy()
    evaluate(first, "counter", [1, 2, 3], tmp_path, EvalConfig(max_turns=10), COUNTER)
    assert first.calls == 2  # task 3 takes two turns; all three in lockstep
    again = add_two_policy()
    evaluate(again, "counter", [1, 2, 3], tmp_path, EvalConfig(max_turns=10), COUNTER)
    assert again.calls == 0
    more = add_two_policy()
    metrics = evaluate(more, "counter", [1, 2, 3, 4, 5], tmp_path, EvalConfig(max_turns=10), COUNTER)
    assert more.calls == 3  # only tasks 4 and 5 ran
    assert metrics["n"] == 5 and len(read_jsonl(tmp_path / "counter.jsonl")) == 5


def test_crash_mid_run_keeps_finished_episodes(tmp_path):
    class Crashing(ScriptedPolicy):
        def generate(self, conversations, **kw):
            if self.calls == 2:
                raise RuntimeError("killed")
            return super().generate(conversations, **kw)

    crashing = Crashing(lambda conversation, rng: format_response("t", "add 1"))
    with pytest.raises(RuntimeError, match="killed"):
        evaluate(crashing, "counter", [1, 2, 5], tmp_path, EvalConfig(max_turns=10), COUNTER)
    assert sorted(r["task_id"] for r in read_jsonl(tmp_path / "counter.jsonl")) == [1, 2]
    resumed = ScriptedPolicy(lambda conversation, rng: format_response("t", "add 1"))
    metrics = evaluate(resumed, "counter", [1, 2, 5], tmp_path, EvalConfig(max_turns=10), COUNTER)
    assert resumed.calls == 5 and metrics["success"] == 100.0 and metrics["n"] == 3


def test_rerun_with_other_settings_is_refused(tmp_path):
    evaluate(add_two_policy(), "counter", [1], tmp_path, EvalConfig(max_turns=10), COUNTER)
    with pytest.raises(ValueError, match="other settings"):
        evaluate(add_two_policy(), "counter", [1], tmp_path, EvalConfig(max_turns=20), COUNTER)


def test_turn_limit_and_parse_failures_are_counted(tmp_path):
    policy = ScriptedPolicy(lambda conversation, rng: "Thought: no idea")
    metrics = evaluate(policy, "counter", [3, 4], tmp_path, EvalConfig(max_turns=4), COUNTER)
    assert metrics["hit_turn_limit"] == 100.0 and metrics["parse_failures"] == 4.0 and metrics["mean_turns"] == 4
    assert metrics["loops"]["1"] == 3.0 and metrics["loops"]["2"] == 1.0


def test_summarize_averages_over_envs():
    summary = summarize({
        "b": {"mean_reward": 50.0, "success": 20.0, "mean_turns": 10.0},
        "a": {"mean_reward": 10.0, "success": 0.0, "mean_turns": 4.0},
    })
    assert list(summary) == ["a", "b", "average"]
    assert summary["average"] == {"mean_reward": 30.0, "success": 10.0, "mean_turns": 7.0, "envs": ["a", "b"]}


def random_policy(seed: int) -> ScriptedPolicy:
    return ScriptedPolicy(lambda conversation, rng: format_response("guess", rng.choice(["add 1", "add 2", "look"])),
                          seed=seed)


def test_revision_protocol_prefixes_are_fixed_and_models_continue_from_them(tmp_path):
    path = tmp_path / "prefixes" / "counter.json"
    data = make_error_prefixes(random_policy(1), "counter", [1, 2, 3, 4, 5], path, EIGHT_TURNS, seed=7, runner=COUNTER)
    assert path.exists() and data["env"] == "counter" and data["max_prefix_turns"] == 4
    assert data["prefixes"], "a random policy fails some of these tasks"
    for prefix in data["prefixes"]:
        assert 1 <= len(prefix["responses"]) <= 4 and prefix["source_reward"] < 1.0
    assert sorted([p["task_id"] for p in data["prefixes"]] + data["no_failure"]) == [1, 2, 3, 4, 5]
    # made once: a second call (another policy, another seed) loads the file and samples nothing
    other = random_policy(99)
    assert make_error_prefixes(other, "counter", [1, 2, 3, 4, 5], path, EIGHT_TURNS, seed=8, runner=COUNTER) == data
    assert other.calls == 0
    # same seed + same base policy seed -> same prefixes (deterministic)
    again = make_error_prefixes(random_policy(1), "counter", [1, 2, 3, 4, 5], tmp_path / "again.json", EIGHT_TURNS,
                                seed=7, runner=COUNTER)
    assert again["prefixes"] == data["prefixes"]

    fixer = ScriptedPolicy(lambda conversation, rng: format_response("one at a time", "add 1"))
    metrics = evaluate_revision(fixer, "counter", path, tmp_path / "eval", EIGHT_TURNS, COUNTER)
    assert metrics["n"] == len(data["prefixes"]) and metrics["mean_reward"] == 100.0
    records = read_jsonl(tmp_path / "eval" / "counter.revision.jsonl")
    by_key = {r["key"]: r for r in records}
    for prefix in data["prefixes"]:
        record = by_key[prefix["key"]]
        assert record["prefix_len"] == len(prefix["responses"])
        assert record["actions"][:record["prefix_len"]] == prefix["actions"]
        assert set(record["actions"][record["prefix_len"]:]) <= {"add 1"}
    # resumable, and the plain metrics summary ignores revision files
    fixer2 = ScriptedPolicy(lambda conversation, rng: format_response("one at a time", "add 1"))
    evaluate_revision(fixer2, "counter", path, tmp_path / "eval", EIGHT_TURNS, COUNTER)
    assert fixer2.calls == 0
    assert load_metrics(tmp_path / "eval")["average"]["envs"] == []
    assert load_metrics(tmp_path / "eval", kind="revision.metrics")["average"]["envs"] == ["counter"]


def test_error_prefixes_need_sampling(tmp_path):
    with pytest.raises(ValueError, match="temperature > 0"):
        make_error_prefixes(random_policy(0), "counter", [1], tmp_path / "p.json",
                            EvalConfig(max_turns=5, prefix_temperature=0.0), runner=COUNTER)


def test_evaluate_suite_on_textcraft_with_revision_protocol(tmp_path):
    """The notebook's one call, on the real TextCraft split: base run makes the prefixes,
    a second model reuses them."""
    from agentr_lib.evaluate import evaluate_suite

    base = ScriptedPolicy(lambda conversation, rng: format_response("?", rng.choice(["inventory", "get 1 oak log"])))
    result = evaluate_suite(base, ["textcraft"], tmp_path / "base", EvalConfig(max_turns=4, tasks_per_env=3), seed=3,
                            prefixes_dir=tmp_path / "prefixes", make_prefixes=True, runner=Runner(progress=False))
    assert result["metrics"]["textcraft"]["n"] == 3 and result["metrics"]["average"]["envs"] == ["textcraft"]
    prefixes = json.loads((tmp_path / "prefixes" / "textcraft.json").read_text())
    assert len(prefixes["prefixes"]) == 3 and result["revision"]["textcraft"]["n"] == 3
    assert json.loads((tmp_path / "base" / "metrics.json").read_text()) == result["metrics"]
    assert json.loads((tmp_path / "base" / "textcraft.config.json").read_text())["seed"] == 3, "the seed reaches the episodes"
    later = ScriptedPolicy(lambda conversation, rng: format_response("?", "inventory"))
    again = evaluate_suite(later, ["textcraft"], tmp_path / "later",
                           EvalConfig(max_turns={"textcraft": 4}, tasks_per_env={"textcraft": 3}), seed=3,
                           prefixes_dir=tmp_path / "prefixes", runner=Runner(progress=False))
    assert json.loads((tmp_path / "prefixes" / "textcraft.json").read_text()) == prefixes
    assert again["revision"]["textcraft"]["n"] == 3
    records = read_jsonl(tmp_path / "later" / "textcraft.revision.jsonl")
    for record, prefix in zip(sorted(records, key=lambda r: r["task_id"]), prefixes["prefixes"]):
        assert record["actions"][:record["prefix_len"]] == prefix["actions"]


def test_evaluate_suite_starts_each_env_once_for_its_three_runs(tmp_path, monkeypatch):
    """The evaluation, the prefixes and the revision protocol share one set of envs (a
    ScienceWorld env is a JVM), closed at the end, and the episodes are those of fresh envs."""
    import agentr_lib.evaluate as evaluate_module
    from agentr_lib.envs import make_env
    from agentr_lib.splits import select_tasks

    made = []

    def counting_make_env(name, **kwargs):
        env = make_env(name, **kwargs)
        closed = env.close
        env.close = lambda: (made.append("closed"), closed())[1]
        made.append("made")
        return env

    monkeypatch.setattr(evaluate_module, "make_env", counting_make_env)
    # replies that depend on the conversation alone, so that both runs can be compared
    policy = ScriptedPolicy(lambda conversation, rng: format_response(
        "?", ["inventory", "get 1 oak log", "craft 1 stick using 2 planks"][len(conversation) % 3]))
    config = EvalConfig(max_turns=4, tasks_per_env=3)
    evaluate_module.evaluate_suite(policy, ["textcraft"], tmp_path / "suite", config, seed=3,
                                   prefixes_dir=tmp_path / "prefixes", make_prefixes=True,
                                   runner=Runner(max_concurrency=2, progress=False))
    assert made == ["made"] * 2 + ["closed"] * 2, made  # min(concurrency, tasks) envs, each closed once
    monkeypatch.setattr(evaluate_module, "make_env", make_env)
    alone = evaluate(policy, "textcraft", select_tasks("textcraft", "test", 3, 3), tmp_path / "alone", config,
                     Runner(progress=False), seed=3)
    suite = json.loads((tmp_path / "suite" / "textcraft.metrics.json").read_text())
    assert suite == alone
    assert read_jsonl(tmp_path / "suite" / "textcraft.jsonl") == read_jsonl(tmp_path / "alone" / "textcraft.jsonl")
