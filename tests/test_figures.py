"""Every figure/table notebook runs on a fixture run folder and writes its files; the
collector reads the numbers the steps wrote."""

import json
from pathlib import Path

import papermill
import pytest

from agentr_lib.pipeline import FIGURE_NOTEBOOKS
from agentr_lib.profiles import load_profile
from agentr_lib.results import collect_run, loops_per_model
from notebook_checks import problems

ROOT = Path(__file__).resolve().parents[1]
ENVS = ["textcraft", "webshop"]


def _metrics(score: float, loop1: float) -> dict:
    return {"n": 10, "mean_reward": score, "success": score, "mean_turns": 7.0, "hit_turn_limit": 10.0,
            "parse_failures": 0.1, "loops": {"1": loop1, "2": loop1 / 2, "3": 0.0, "4": 0.0, "5": 0.0}}


def _write(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


@pytest.fixture(scope="module")
def fixture_run(tmp_path_factory) -> Path:
    """A run folder shaped like the pipeline's, with made-up but distinct numbers."""
    run = tmp_path_factory.mktemp("runs") / "fixture"
    config = load_profile("smoke", {"envs": ENVS, "single_task": True})
    _write(run / "run.json", {"config": config, "setup": {"data_modes": {"textcraft": "recipes",
                                                                       "webshop": "synthetic"}}})
    for env in ENVS:
        _write(run / "base" / "eval" / f"{env}.metrics.json", _metrics(10.0, 2.0))
        _write(run / "base" / "eval" / f"{env}.revision.metrics.json", _metrics(5.0, 1.0))
    variants = [("agent_r", ENVS), ("direct_revision", ENVS)] + [
        (f"{m}-{env}", [env]) for m in ("agent_r", "direct_revision") for env in ENVS]
    for variant, envs in variants:
        for k in (1, 2, 3):
            workdir = run / variant / f"iter{k}"
            bonus = 5 if variant.startswith("agent_r") else 0
            for env in envs:
                _write(workdir / "eval" / f"{env}.metrics.json", _metrics(10.0 + 10 * k + bonus, 2.0 / k))
                _write(workdir / "eval" / f"{env}.revision.metrics.json", _metrics(5.0 + 5 * k, 1.0))
            _write(workdir / "sft" / "train_metrics.json", {"data": {"per_kind": {
                "revision": {"rows": 10 * k, "kept": 10 * k - 1, "truncated": 3, "dropped": 1, "trained_tokens": 99},
                "good": {"rows": 3 * k, "kept": 3 * k, "truncated": 0, "dropped": 0, "trained_tokens": 50}}}})
            _write(workdir / "revision" / "summary.json", {
                "counts": [{"env": env, "revision": 10 * k, "good": 3 * k, "direct": 0} for env in envs],
                "t_prime": {env: [4 - k, 5 - k] for env in envs},
            })
    return run


def test_collect_run_reads_every_step(fixture_run):
    results = collect_run(fixture_run)
    assert results.missing == []
    multi = results.scores[(results.scores["mode"] == "M") & (results.scores["method"] == "agent_r")]
    assert sorted(multi["iteration"].unique()) == [1, 2, 3]
    assert multi[multi["iteration"] == 3]["score"].tolist() == [45.0, 45.0]
    single = results.scores[results.scores["mode"] == "S"]
    assert set(single["variant"]) == {"agent_r-textcraft", "agent_r-webshop", "direct_revision-textcraft",
                                      "direct_revision-webshop"}
    assert results.t_prime.groupby("iteration")["t_prime"].mean().tolist() == [3.5, 2.5, 1.5]
    revision = results.sft[(results.sft["variant"] == "agent_r") & (results.sft["kind"] == "revision")]
    assert revision[["iteration", "rows", "kept", "truncated", "dropped"]].values.tolist() == [
        [1, 10, 9, 3, 1], [2, 20, 19, 3, 1], [3, 30, 29, 3, 1]]
    loops = loops_per_model(results.loops)
    base_l1 = loops[(loops["model"] == "base model") & (loops["length"] == 1)]["count"].item()
    assert base_l1 == pytest.approx(2.0)


@pytest.mark.parametrize("notebook", list(FIGURE_NOTEBOOKS))
def test_figure_notebook_writes_its_files(notebook, fixture_run, tmp_path):
    figures_dir = tmp_path / "figures"
    papermill.execute_notebook(
        str(ROOT / "notebooks" / f"{notebook}.ipynb"), str(tmp_path / f"{notebook}.ipynb"),
        parameters={"RUN_DIR": str(fixture_run), "FIGURES_DIR": str(figures_dir)},
        cwd=str(ROOT), progress_bar=False, kernel_name="python3",
    )
    for name in FIGURE_NOTEBOOKS[notebook]:
        path = figures_dir / name
        assert path.exists() and path.stat().st_size > 500, path
    assert problems(tmp_path / f"{notebook}.ipynb") == [], "figure inline, no warning, no stray repr"
    if notebook == "14_tables":
        table2 = (figures_dir / "table2.md").read_text()
        assert "this run" in table2 and "63.91" in table2  # ours beside the paper's Agent-R row
        sft_rows = (figures_dir / "sft_rows.md").read_text()
        header = next(line for line in sft_rows.splitlines() if line.startswith("| training run"))
        assert header.index("revision rows") < header.index("good rows"), header
        assert "| 29 of 30 (3 truncated, 1 dropped) | 9 of 9 (0 truncated, 0 dropped) |" in sft_rows, sft_rows
