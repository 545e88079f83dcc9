"""The experiment scripts behind the experiments table of experiments/LOG.md, on hand-written run folders."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from agentr_lib.layout import RunLayout

ROOT = Path(__file__).resolve().parents[1]


def script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_run(run_dir: Path, outcomes: dict[str, list[int]], revising: dict[str, list[int]] | None = None) -> Path:
    """A run folder with one greedy TextCraft episode per goal for each model ('base',
    'agent_r 1', ...): outcomes[model][i] is goal i's success; revising lists the goals whose
    episode emits the revision turn."""
    run = RunLayout(run_dir)
    iterations = max(int(name.split()[1]) for name in outcomes if name != "base")
    run_dir.mkdir(parents=True)
    run.manifest.write_text(json.dumps({"config": {"methods": ["agent_r"], "iterations": iterations}}))
    for name, values in outcomes.items():
        workdir = run.base if name == "base" else run.iteration("agent_r", int(name.split()[1]))
        run.eval(workdir).mkdir(parents=True)
        with open(run.eval(workdir) / "textcraft.jsonl", "w") as f:
            for goal, success in enumerate(values):
                actions = ["get 1 log", "wait"] if goal in (revising or {}).get(name, []) else ["get 1 log"]
                f.write(json.dumps({"key": f"textcraft/{goal}", "success": bool(success), "actions": actions}) + "\n")
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
