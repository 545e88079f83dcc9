"""The whole loop end to end on the smoke profile (micro model, 3 iterations x 2 methods),
interrupted by a failing cell and resumed: the test behind "make reproduce works"."""

import os

import pytest

from agentr_lib.io import read_json
from agentr_lib.pipeline import FIGURE_NOTEBOOKS, StepFailed, run_pipeline
from agentr_lib.profiles import load_profile

FAILING_STEP = "direct_revision/iter2/sft"


@pytest.mark.slow
def test_smoke_pipeline_fails_clearly_then_resumes_to_every_figure(tmp_path):
    profile = load_profile("smoke")
    runs, figures = tmp_path / "runs", tmp_path / "figures"

    # 1. a bad parameter makes one notebook's cell raise: the run stops and names the notebook
    with pytest.raises(StepFailed) as failure:
        run_pipeline(profile, run_name="smoke", runs_root=runs, figures_dir=figures,
                     overrides_by_step={FAILING_STEP: {"EPOCHS": -1}})
    run_dir = runs / "smoke"
    failed_notebook = run_dir / "direct_revision" / "iter2" / "03_sft_unsloth.ipynb"
    assert str(failed_notebook) in str(failure.value) and "EPOCHS=-1" in str(failure.value)
    manifest = read_json(run_dir / "run.json")
    assert manifest["steps"][FAILING_STEP]["status"] == "failed"
    finished_before = {key for key, record in manifest["steps"].items() if record["status"] == "done"}
    assert {"setup", "base/eval", "iter1/mcts", "agent_r/iter3/eval", "direct_revision/iter2/revision"} <= finished_before
    stamps = {key: os.path.getmtime(manifest["steps"][key]["notebook"]) for key in finished_before}

    # 2. the same command again: finished steps are skipped (their notebooks untouched)
    run_pipeline(profile, run_name="smoke", runs_root=runs, figures_dir=figures)
    manifest = read_json(run_dir / "run.json")
    assert all(record["status"] == "done" for record in manifest["steps"].values())
    for key, stamp in stamps.items():
        assert os.path.getmtime(manifest["steps"][key]["notebook"]) == stamp, f"{key} was executed again"
    assert os.path.getmtime(failed_notebook) > max(stamps.values())
    for files in FIGURE_NOTEBOOKS.values():
        for name in files:
            assert (figures / name).stat().st_size > 500, name
    assert manifest["versions"]["torch"] and manifest["git_commit"]
    assert manifest["setup"]["data_modes"]["textcraft"]
    metrics = read_json(run_dir / "agent_r" / "iter3" / "eval" / "metrics.json")
    assert metrics["textcraft"]["n"] == profile["eval"]["tasks_per_env"]
