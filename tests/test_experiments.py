"""The experiment scripts behind the experiments table of experiments/LOG.md, on hand-written run folders."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from agentr_lib.layout import RunLayout
from agentr_lib.profiles import load_profile

ROOT = Path(__file__).resolve().parents[1]


def script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_run(run_dir: Path, outcomes: dict[str, list[int]], revising: dict[str, list[int]] | None = None,
              turns: dict[str, list[int]] | None = None) -> Path:
    """A run folder with one greedy TextCraft episode per goal for each model ('base',
    'agent_r 1', ...): outcomes[model][i] is goal i's success; revising lists the goals whose
    episode emits the revision turn (at turn 12: `wait` after eleven gets); turns[model][i] is
    goal i's number of turns (default: its actions)."""
    run = RunLayout(run_dir)
    iterations = max(int(name.split()[1]) for name in outcomes if name != "base")
    run_dir.mkdir(parents=True)
    run.manifest.write_text(json.dumps({"config": {"methods": ["agent_r"], "iterations": iterations}}))
    for name, values in outcomes.items():
        workdir = run.base if name == "base" else run.iteration("agent_r", int(name.split()[1]))
        run.eval(workdir).mkdir(parents=True)
        with open(run.eval(workdir) / "textcraft.jsonl", "w") as f:
            for goal, success in enumerate(values):
                actions = ["get 1 log"] * 11 + ["wait"] if goal in (revising or {}).get(name, []) else ["get 1 log"]
                num_turns = (turns or {}).get(name, [len(actions)] * len(values))[goal]
                f.write(json.dumps({"key": f"textcraft/{goal}", "success": bool(success), "actions": actions,
                                    "num_turns": num_turns}) + "\n")
    return run_dir


def test_compare_runs_pairs_each_model_with_the_reference_on_the_same_goals(tmp_path):
    compare = script("compare_runs").compare
    base = [1, 1, 0, 0, 0, 0, 0, 0, 0, 0]
    reference = write_run(tmp_path / "ref", {"base": base, "agent_r 1": [1, 0, 0, 0, 0, 0, 0, 0, 0, 0]})
    variant = write_run(tmp_path / "var", {"base": base, "agent_r 1": [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]},
                        revising={"agent_r 1": [2, 3, 9]})
    out = compare(reference, [variant])
    ref_model, var_model = out["variants"][0]["models"][1], out["variants"][1]["models"][1]
    assert ref_model["success"][0] == 10.0 and ref_model["vs_base"][0] == -10.0 and "vs_reference" not in ref_model
    assert var_model["success"][0] == 40.0 and var_model["vs_base"][0] == 20.0
    lo, hi = var_model["vs_reference"][1:]
    assert var_model["vs_reference"][0] == 30.0 and 0 <= lo <= 30.0 <= hi  # 3 goals gained, none lost
    assert (var_model["revised"], var_model["recovered"]) == (3, 2)
    other = write_run(tmp_path / "other", {"base": base[:9], "agent_r 1": base[:9]})
    with pytest.raises(ValueError, match="different goals"):
        compare(reference, [other])


def test_turn_limit_counts_a_success_only_within_the_limit(tmp_path):
    base = [1, 1, 0, 0, 0, 0, 0, 0, 0, 0]
    run = write_run(tmp_path / "run", {"base": base, "agent_r 1": [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]},
                    revising={"agent_r 1": [3, 4]},
                    turns={"base": [3] * 10, "agent_r 1": [3, 12, 16, 20, 20, 20, 20, 20, 20, 20]})
    out = script("turn_limit").turn_limits(run)
    base_row, trained = out["models"]
    assert [base_row[f"success@{k}"][0] for k in (10, 15, 20)] == [20.0, 20.0, 20.0]
    assert [trained[f"success@{k}"][0] for k in (10, 15, 20)] == [10.0, 20.0, 40.0], "goal 1 at 12 turns, 2 at 16, 3 at 20"
    assert [trained[f"vs_base@{k}"][0] for k in (10, 15, 20)] == [-10.0, 0.0, 20.0]
    assert (trained["revised"], trained["recovered"], trained["first_revision_after_turn_10"]) == (2, 1, 2)
    assert out["methods_paired"] == [], "one method: nothing to pair"


def test_revision_sft_takes_every_setting_from_the_profile_and_set(tmp_path, monkeypatch, capsys):
    """The script is a thin caller: the stages get the configs RunConfig builds from the
    profile and --set (evaluation on the validation goals unless told), and it reports their
    results."""
    module = script("revision_sft")
    calls: dict = {}
    turns = [("user", "goal", False), ("assistant", "x", False), ("assistant", "Thought: I realize ...\nAction: wait", True)]
    rows = [{"kind": "revision", "messages": [{"role": role, "content": text, "loss": loss} for role, text, loss in turns]},
            {"kind": "good", "messages": []}]

    def revise(settings, trees, out, envs, replay_check):
        calls["revise"] = settings
        return SimpleNamespace(summary={"counts": [{"env": "textcraft", "revision": 1, "good": 1, "direct": 0}]},
                               dataset=rows)

    def train(config, base, data, out, backend):
        calls["train"] = (config, base, data)
        return SimpleNamespace(metrics={"steps": 3, "final_loss": 0.5})

    def evaluate(config, policy, envs, out_dir):
        calls["evaluate"] = (config, policy)
        out_dir.mkdir(parents=True)
        (out_dir / "textcraft.jsonl").write_text("".join(json.dumps(e) + "\n" for e in [
            {"key": "0", "success": True, "actions": ["wait"]}, {"key": "1", "success": False, "actions": ["get"]}]))
        return SimpleNamespace(metrics={"textcraft": {"success": 0.5, "loops": {"1": 0.2}}})

    monkeypatch.setattr(module.stages, "revise", revise)
    monkeypatch.setattr(module.stages, "train", train)
    monkeypatch.setattr(module.stages, "evaluate", evaluate)
    monkeypatch.setattr(module, "emitted_revision_turn", lambda policy, prefixes, n: [len(prefixes), len(prefixes)])
    module.main([str(tmp_path / "exp"), "--trees", str(tmp_path / "trees"), "--method", "good_only",
                 "--set", "sft.epochs=3", "--set", "revision.beta=0.1"])
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    tiny = load_profile("tiny")
    settings, (sft, base, data), (evaluation, policy) = calls["revise"], calls["train"], calls["evaluate"]
    assert (settings.method, settings.beta, settings.verifier) == ("good_only", 0.1, tiny["revision"]["verifier"])
    assert settings.alpha == tiny["revision"]["alpha"][0] and settings.seed == 1
    assert (sft.epochs, sft.learning_rate, sft.progress, base) == (3, tiny["sft"]["learning_rate"], False, "tiny")
    assert Path(data.dataset_dir) == tmp_path / "exp" / "revision" / "dataset"
    assert evaluation.split == "val" and evaluation.max_turns == tiny["eval"]["max_turns"]
    assert policy.model == str(tmp_path / "exp" / "sft" / "merged")
    assert record["success"] == 0.5 and record["emitted_on_training_prefixes"] == [1, 1]
    assert (record["episodes_with_revision_turn"], record["recovered_after_revision"], record["goals"]) == (1, 1, 2)
    assert record["overrides"] == {"eval.split": "val", "sft.epochs": 3, "revision.beta": 0.1}
    assert [m["content"] for m in module.revision_prefixes(rows)[0]] == ["goal", "x"], "up to the revision turn"


def test_size_sweep_reads_goal_naming_malformed_replies_and_revision_ability(tmp_path):
    """A row from hand-written episodes: the first thought names the goal only when it says the
    expert's "I need to craft <goal>." for that episode's goal (a memorised neighbour does not count)."""
    sweep = script("size_sweep")
    evaluated = tmp_path / "m"
    evaluated.mkdir()

    def episode(key: str, goal: str, first: str, success: bool, malformed: int) -> dict:
        return {"key": key, "first_observation": f"Crafting commands:\ncraft 1 x using 1 y\n\nGoal: craft {goal}.",
                "steps": [{"response": f"Thought: {first} First I get the base items.\nAction: get 1 y"}],
                "success": success, "parse_failures": malformed, "loops": {"1": 2 * malformed}}

    test = [episode("1", "oak planks", "I need to craft oak planks.", True, 0),
            episode("2", "dark oak planks", "I need to craft oak planks.", False, 2),
            episode("3", "stick", "I need to craft stick.", False, 1),
            episode("4", "torch", "I need to craft torches.", False, 1)]
    revised = [episode("1", "oak planks", "", False, 0), episode("2", "stick", "", True, 0)]
    for name, rows in (("textcraft.jsonl", test), ("textcraft.revision.jsonl", revised)):
        (evaluated / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    row = sweep.row("no-such-model", evaluated)
    assert row["val_success"]["value"] == 25.0 and row["val_success"]["n"] == 4
    assert row["goal_named_first_thought"]["value"] == 50.0
    assert row["malformed_per_episode"] == 1.0 and row["loops_1_per_episode"] == 2.0
    assert row["revision_ability"]["value"] == 50.0 and row["params"] is None
    assert row["val_success"]["ci95"][0] <= 25.0 <= row["val_success"]["ci95"][1]
    assert "minus_reference" not in row
    paired = sweep.row("no-such-model", evaluated, reference=evaluated)["minus_reference"]
    assert all(d == {"value": 0.0, "ci95": [0.0, 0.0]} for d in paired.values()), "against itself: 0 [0, 0]"
