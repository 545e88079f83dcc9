"""The pipeline's plan, resume and failure reporting (the end-to-end smoke run is in
test_pipeline_smoke.py)."""

from pathlib import Path

import pytest

from agentr_lib.pipeline import build_plan, main, run_pipeline, variants
from agentr_lib.profiles import load_profile


def test_plan_order_and_model_chaining(tmp_path):
    profile = load_profile("smoke")
    plan = build_plan(profile, tmp_path / "run", tmp_path / "fig")
    keys = [step.key for step in plan]
    assert keys[:3] == ["setup", "base/eval", "iter1/mcts"]
    # iteration-1 trees are shared by both methods (same base model, same seed)
    assert keys.count("iter1/mcts") == 1
    assert "direct_revision/iter1/mcts" not in keys and "direct_revision/iter2/mcts" in keys
    for method in ("agent_r", "direct_revision"):
        for k in (1, 2, 3):
            for kind in ("revision", "sft", "eval"):
                assert f"{method}/iter{k}/{kind}" in keys
    by_key = {step.key: step for step in plan}
    # iteration k+1 samples with the model trained at iteration k
    trained = by_key["agent_r/iter1/sft"].workdir / "sft" / "merged"
    assert by_key["agent_r/iter2/mcts"].parameters["MODEL"] == str(trained)
    assert by_key["agent_r/iter2/sft"].parameters["INIT_MODEL"] == str(trained)
    assert by_key["agent_r/iter1/eval"].parameters["MODEL"] == str(trained)
    # the revision step reads the trees its iteration searched
    trees = Path(by_key["iter1/mcts"].parameters["OUT_DIR"]) / "trees"
    assert by_key["direct_revision/iter1/revision"].parameters["TREES_DIR"] == str(trees)
    assert [by_key[f"agent_r/iter{k}/revision"].parameters["ALPHA"] for k in (1, 2, 3)] == [-1.0, -1.0, -1.0]
    assert keys[-5:] == [f"figures/{name}" for name in (
        "10_figure3_training_trajectories", "11_figure4_loops", "12_figure5_revision_length",
        "13_figure6_training_methods", "14_tables")]


def test_single_task_adds_one_model_per_env_and_method():
    profile = load_profile("smoke", {"envs": ["textcraft", "webshop"], "single_task": True})
    names = [name for name, _, _ in variants(profile)]
    assert names == ["agent_r", "direct_revision", "agent_r-textcraft", "agent_r-webshop",
                     "direct_revision-textcraft", "direct_revision-webshop"]


def test_dry_run_prints_the_plan_without_running_anything(tmp_path, capsys):
    run_pipeline(load_profile("smoke"), run_name="dry", dry_run=True, runs_root=tmp_path)
    out = capsys.readouterr().out
    assert "todo setup" in out and "agent_r/iter3/eval" in out
    assert not (tmp_path / "dry").exists()


def test_committed_figures_do_not_count_as_this_runs_figures(tmp_path, capsys):
    """Regression: on a fresh clone figures/<profile>/ already holds the committed files of an
    older run; the figure steps were skipped as done and the new run's figures never drawn."""
    figures = tmp_path / "fig"
    plan = build_plan(load_profile("smoke"), tmp_path / "run", figures)
    figure_steps = [step for step in plan if step.key.startswith("figures/")]
    for step in figure_steps:
        for path in step.outputs:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("from an older run")
    assert all(not step.finished({}) for step in figure_steps)
    assert all(step.finished({"status": "done"}) for step in figure_steps)
    run_pipeline(load_profile("smoke"), run_name="run", dry_run=True, runs_root=tmp_path, figures_dir=figures)
    out = capsys.readouterr().out
    assert all(f"todo {step.key}" in out for step in figure_steps)


def test_from_step_must_name_a_step(tmp_path):
    with pytest.raises(ValueError, match="base/eval"):
        run_pipeline(load_profile("smoke"), from_step="agent_r/iter9/sft", dry_run=True, runs_root=tmp_path)


def test_cli_rejects_unknown_method(capsys):
    with pytest.raises(SystemExit):
        main(["--profile", "smoke", "--methods", "agent_r,eto", "--dry-run"])
    assert "eto" in capsys.readouterr().err
