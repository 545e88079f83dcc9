"""The whole loop end to end on the smoke profile (micro model, 3 iterations x 2 methods),
killed twice (SIGKILL: no clean-up runs), stopped once by a failing cell, and resumed: its
outputs must equal an uninterrupted run's. The test behind "make reproduce works" and
behind the README's "reproducible"."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from agentr_lib.io import fingerprint, read_json, read_jsonl
from agentr_lib.pipeline import FIGURE_NOTEBOOKS, ROOT, RunLocked, StepFailed, run_pipeline
from agentr_lib.profiles import load_profile

FAILING_STEP = "direct_revision/iter2/sft"
#: fields that hold wall-clock times, not results
TIMING_KEYS = {"seconds", "tokens_per_s", "started", "finished", "elapsed", "samples_per_s", "build_minutes"}


def _cli(run_dir: Path, figures: Path, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "agentr_lib.pipeline", "--profile", "smoke", "--run-name", run_dir.name,
               "--runs-root", str(run_dir.parent), "--figures-dir", str(figures), *extra]
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    log = (run_dir.parent / "cli.log").open("a")
    process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    process.log_path = log.name  # type: ignore[attr-defined]
    return process


def _wait_for(process: subprocess.Popen, ready, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            _kill(process)
            tail = Path(process.log_path).read_text()[-3000:]  # type: ignore[attr-defined]
            pytest.fail(f"the pipeline ended (or stalled) before the kill point; its output ends:\n{tail}")
        time.sleep(0.05)


def _kill(process: subprocess.Popen) -> None:
    """SIGKILL the pipeline and its notebook kernel (no clean-up code runs; the kernel runs in
    a session of its own, so it is killed by pid, not by process group)."""
    try:
        tree = psutil.Process(process.pid).children(recursive=True) + [psutil.Process(process.pid)]
    except psutil.NoSuchProcess:
        tree = []
    for member in tree:
        try:
            member.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(tree, timeout=30)
    process.wait(timeout=30)


def _results(value):
    """A result file's content without its timings."""
    if isinstance(value, dict):
        return {k: _results(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [_results(v) for v in value]
    return value


def _iteration1_outputs(run_dir: Path) -> dict:
    """What the base evaluation and Agent-R's first iteration computed."""
    trees = run_dir / "iter1-mcts" / "mcts" / "trees"
    out = {f"trees/{p.name}": _results(read_json(p)) for p in sorted(trees.glob("*.json"))}
    for name in ("base/eval", "agent_r/iter1/eval"):
        folder = run_dir / name
        for path in sorted(folder.glob("*.jsonl")):
            out[f"{name}/{path.name}"] = _results(read_jsonl(path))
        for path in sorted(folder.glob("*metrics.json")):
            out[f"{name}/{path.name}"] = _results(read_json(path))
    out["prefixes"] = read_json(run_dir / "base" / "eval" / "error_prefixes" / "textcraft.json")
    out["dataset"] = read_jsonl(run_dir / "agent_r" / "iter1" / "revision" / "dataset" / "data.jsonl")
    out["model"] = fingerprint(run_dir / "agent_r" / "iter1" / "sft" / "merged")
    return out


@pytest.fixture(scope="module")
def interrupted_run(tmp_path_factory) -> tuple[Path, Path, dict]:
    """The full smoke plan, killed mid-search and mid-evaluation, failed by a cell, resumed."""
    root = tmp_path_factory.mktemp("interrupted")
    run_dir, figures = root / "runs" / "smoke", root / "figures"
    profile = load_profile("smoke")

    # 1. killed while searching, once a tree is written; meanwhile a second pipeline on the
    #    same run folder is refused
    first = _cli(run_dir, figures)
    _wait_for(first, lambda: (run_dir / "steps").exists())  # the lock is taken before any marker
    with pytest.raises(RunLocked, match="in use by another pipeline"):
        run_pipeline(profile, run_name="smoke", runs_root=run_dir.parent, figures_dir=figures)
    _wait_for(first, lambda: any((run_dir / "iter1-mcts" / "mcts" / "trees").glob("*.json")))
    _kill(first)
    # 2. killed inside Agent-R's first evaluation, after its metrics.json but before the step ended
    #    (regression: that file alone marked the step done and the revision-ability part was skipped)
    second = _cli(run_dir, figures)
    _wait_for(second, lambda: (run_dir / "agent_r" / "iter1" / "eval" / "metrics.json").exists())
    _kill(second)
    # 3. a bad parameter makes a cell raise: the run stops and names the notebook
    with pytest.raises(StepFailed) as failure:
        run_pipeline(profile, run_name="smoke", runs_root=run_dir.parent, figures_dir=figures,
                     overrides_by_step={FAILING_STEP: {"EPOCHS": -1}})
    failed_notebook = run_dir / "direct_revision" / "iter2" / "03_sft_unsloth.ipynb"
    assert str(failed_notebook) in str(failure.value)
    assert "ParameterError: notebooks/03_sft_unsloth.ipynb: EPOCHS = -1: expected a number > 0" in str(failure.value)
    manifest = read_json(run_dir / "run.json")
    assert manifest["steps"][FAILING_STEP]["status"] == "failed"
    finished = {key for key, record in manifest["steps"].items() if record["status"] == "done"}
    stamps = {key: os.path.getmtime(run_dir / manifest["steps"][key]["notebook"].replace("<run>/", ""))
              for key in finished}
    # 4. the same command again finishes the run
    run_pipeline(profile, run_name="smoke", runs_root=run_dir.parent, figures_dir=figures)
    return run_dir, figures, {"before_failure": manifest, "stamps": stamps, "failed_notebook": failed_notebook}


@pytest.mark.slow
def test_interrupted_smoke_run_resumes_to_every_figure(interrupted_run):
    run_dir, figures, before = interrupted_run
    manifest = read_json(run_dir / "run.json")
    assert all(record["status"] == "done" for record in manifest["steps"].values())
    interrupted = [item["step"] for item in manifest["interruptions"]]
    assert interrupted == ["iter1/mcts", "agent_r/iter1/eval"], "both kills are on record"
    assert {"setup", "base/eval", "iter1/mcts", "agent_r/iter3/eval"} <= set(before["stamps"])
    for key, stamp in before["stamps"].items():  # finished steps were not executed again
        notebook = run_dir / manifest["steps"][key]["notebook"].replace("<run>/", "")
        assert os.path.getmtime(notebook) == stamp, f"{key} was executed again"
    assert os.path.getmtime(before["failed_notebook"]) > max(before["stamps"].values())
    for files in FIGURE_NOTEBOOKS.values():
        for name in files:
            assert (figures / name).stat().st_size > 500, name
    assert manifest["versions"]["torch"] and manifest["git_commit"]
    assert manifest["setup"]["data_modes"]["textcraft"]
    metrics = read_json(run_dir / "agent_r" / "iter3" / "eval" / "metrics.json")
    assert metrics["textcraft"]["n"] == load_profile("smoke")["eval"]["tasks_per_env"]
    assert (run_dir / "agent_r" / "iter1" / "eval" / "textcraft.revision.metrics.json").exists(), \
        "the evaluation killed after metrics.json still ran its revision-ability part"


@pytest.mark.slow
def test_every_executed_notebook_renders_clean(interrupted_run):
    """What a researcher opens (issue 15): every executed notebook of the run renders with its
    figures inline, without an error output, a warning on stderr or a stray repr; the console
    shows no kernel TCP warning; SFT trained revision and good rows (none dropped entirely)."""
    from notebook_checks import problems

    run_dir, _, _ = interrupted_run
    manifest = read_json(run_dir / "run.json")
    notebooks = [run_dir / record["notebook"].replace("<run>/", "") for record in manifest["steps"].values()]
    noisy = [line for notebook in notebooks for line in problems(notebook)]
    assert noisy == [], "\n".join(noisy)
    assert "without encryption" not in (run_dir.parent / "cli.log").read_text()
    per_kind = read_json(run_dir / "agent_r" / "iter1" / "sft" / "train_metrics.json")["data"]["per_kind"]
    assert per_kind["revision"]["kept"] >= 1 and per_kind["good"]["kept"] >= 1, per_kind


@pytest.mark.slow
def test_interrupted_run_equals_an_uninterrupted_one(interrupted_run, tmp_path):
    """Same command, same machine: identical trees, prefixes, datasets, episodes, metrics and
    model weights, however often the run was killed and resumed."""
    run_dir, _, _ = interrupted_run
    profile = load_profile("smoke", {"iterations": 1, "methods": ["agent_r"], "revision": {"alpha": [-1.0]}})
    clean = run_pipeline(profile, run_name="clean", runs_root=tmp_path, figures_dir=tmp_path / "figures")
    expected, actual = _iteration1_outputs(clean), _iteration1_outputs(run_dir)
    assert sorted(actual) == sorted(expected)
    for name in expected:
        assert json.dumps(actual[name], sort_keys=True) == json.dumps(expected[name], sort_keys=True), name
