"""Sharded search and evaluation (issue 33 part 2): `python -m agentr_lib.shard run --shard 0/2`
and `1/2` as two concurrent processes on a pipeline run's search and evaluation steps, merged,
equal the unsharded run (one shard of one), and the step's notebook then finds every task
done; a merge that does not add up names what is missing or doubled."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from agentr_lib.shard import (ShardError, find_step, merge_episodes, merge_step, merge_trees, parse_shard,
                              shard_dir, shard_tasks, step_tasks)

ROOT = Path(__file__).resolve().parents[1]
PROFILE = {
    "description": "shard test", "model": "micro-fluent", "backend": "hf", "envs": ["textcraft"],
    "methods": ["agent_r"], "iterations": 1, "revision": {"alpha": [-1.0]},
    "mcts": {"tasks_per_env": 5, "simulations": 2, "n_gen": 2, "temperature": 1.0, "max_depth": 3,
             "batch_trees": 5, "max_new_tokens": 12},
    "eval": {"tasks_per_env": 5, "max_turns": 3, "max_new_tokens": 12, "revision_prefixes": False},
}
STEPS = ("iter1/mcts", "base/eval")


def test_shards_split_the_tasks_once_each_in_order():
    ids = [11, 4, 7, 30, 2, 9, 5]
    shards = [shard_tasks(ids, i, 3) for i in range(3)]
    assert shards == [[11, 30, 5], [4, 2], [7, 9]]
    assert sorted(sum(shards, [])) == sorted(ids)
    assert parse_shard("1/2") == (1, 2)
    for bad in ("2/2", "-1/2", "1", "a/b", "0/0"):
        with pytest.raises(ShardError, match=f"--shard {bad!r}"):
            parse_shard(bad)


def _cli(*args: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen([sys.executable, "-m", "agentr_lib.shard", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        try:
            out, _ = process.communicate(timeout=300)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        assert process.returncode == 0, out[-3000:]


def _tree_files(folder: Path) -> dict[str, dict]:
    """Tree files by name, without the one wall-clock field (stats.seconds)."""
    out = {}
    for path in sorted(folder.glob("*.json")):
        record = json.loads(path.read_text())
        record["stats"].pop("seconds")
        out[path.name] = record
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two runs of the same profile: `sharded` (two shard processes at once per step, merged)
    and `single` (one shard of one, merged)."""
    root = tmp_path_factory.mktemp("shard")
    profile = root / "shardtest.yaml"
    profile.write_text(yaml.safe_dump(PROFILE))
    sharded, single = root / "sharded", root / "single"
    for key in STEPS:
        _finish([_cli("run", "--profile", str(profile), "--run-dir", str(sharded), "--step", key, "--shard", f"{i}/2")
                 for i in range(2)] + [_cli("run", "--profile", str(profile), "--run-dir", str(single), "--step", key,
                                            "--shard", "0/1")])
        _finish([_cli("merge", "--profile", str(profile), "--run-dir", str(sharded), "--step", key, "--shards", "2"),
                 _cli("merge", "--profile", str(profile), "--run-dir", str(single), "--step", key, "--shards", "1")])
    return profile, sharded, single


@pytest.mark.slow
def test_merged_shards_equal_the_unsharded_run(runs):
    profile, sharded, single = runs
    search = {run: Path(find_step(str(profile), run, "iter1/mcts").parameters["OUT_DIR"]) for run in (sharded, single)}
    trees = {run: _tree_files(search[run] / "trees") for run in (sharded, single)}
    assert len(trees[single]) == 5 and trees[sharded] == trees[single]

    evaluation = {run: Path(find_step(str(profile), run, "base/eval").parameters["OUT_DIR"]) for run in (sharded, single)}
    for name in ("textcraft.jsonl", "textcraft.config.json", "textcraft.metrics.json", "metrics.json"):
        assert (evaluation[sharded] / name).read_bytes() == (evaluation[single] / name).read_bytes(), name
    per_shard = [len((shard_dir(evaluation[sharded], i, 2) / "textcraft.jsonl").read_text().splitlines()) for i in range(2)]
    assert per_shard == [3, 2], "each shard ran its own share"


@pytest.mark.slow
def test_the_steps_notebook_finds_every_task_done_after_the_merge(runs):
    """What notebook 01 and 04 call on the merged folder resumes everything and samples nothing."""
    from agentr_lib.evaluate import EvalConfig, Runner, evaluate
    from agentr_lib.mcts import MCTSConfig, search_trees
    from agentr_lib.envs import make_env

    class NoSampling:
        model_id = None

        def generate(self, *args, **kwargs):
            raise AssertionError("a merged step has nothing left to sample")

    profile, sharded, _ = runs
    step = find_step(str(profile), sharded, "iter1/mcts")
    p = step.parameters
    config = MCTSConfig(simulations=p["SIMULATIONS"], n_gen=p["N_GEN"], temperature=p["TEMPERATURE"],
                        max_depth=p["MAX_DEPTH"], c=p["C"], seed=p["SEED"], restore=p["RESTORE"],
                        max_new_tokens=p["MAX_NEW_TOKENS"], batch_trees=p["BATCH_TREES"])
    result = search_trees(NoSampling(), lambda: make_env("textcraft"), step_tasks(step, "textcraft"), config,
                          out_dir=Path(p["OUT_DIR"]) / "trees", env_name="textcraft", progress=False)
    assert len(result.loaded) == 5 and not result.searched

    step = find_step(str(profile), sharded, "base/eval")
    out = Path(step.parameters["OUT_DIR"])
    merged = (out / "textcraft.metrics.json").read_bytes()
    policy = NoSampling()
    policy.model_id = json.loads((out / "textcraft.config.json").read_text())["model"]
    evaluate(policy, "textcraft", step_tasks(step, "textcraft"), out, EvalConfig(max_turns=3, max_new_tokens=12),
             Runner(progress=False), seed=step.parameters["SEED"])
    assert (out / "textcraft.metrics.json").read_bytes() == merged


@pytest.mark.slow
def test_a_merge_that_does_not_add_up_names_the_tasks(runs, tmp_path):
    import shutil

    profile, sharded, _ = runs
    search = Path(find_step(str(profile), sharded, "iter1/mcts").parameters["OUT_DIR"])
    copy = tmp_path / "mcts"
    shutil.copytree(search, copy)
    tasks = step_tasks(find_step(str(profile), sharded, "iter1/mcts"), "textcraft")
    removed = sorted(copy.glob("trees/*.json"))[0]
    removed.unlink()
    with pytest.raises(ShardError, match=rf"trees missing for tasks \[{int(removed.stem.split('-')[1])}\]"):
        merge_trees(copy, "textcraft", tasks)

    evaluation = Path(find_step(str(profile), sharded, "base/eval").parameters["OUT_DIR"])
    copy = tmp_path / "eval"
    shutil.copytree(evaluation, copy)
    eval_tasks = step_tasks(find_step(str(profile), sharded, "base/eval"), "textcraft")
    first = shard_dir(copy, 0, 2) / "textcraft.jsonl"
    line = first.read_text().splitlines()[0]
    with open(shard_dir(copy, 1, 2) / "textcraft.jsonl", "a") as handle:
        handle.write(line + "\n")
    with pytest.raises(ShardError, match=rf"task {json.loads(line)['key']}: in shard 0 and shard 1 of 2"):
        merge_episodes(copy, "textcraft", eval_tasks, 2)
    with pytest.raises(ShardError, match=r"shard 0/3 of textcraft has not run"):
        merge_episodes(copy, "textcraft", eval_tasks, 3)
    with pytest.raises(ShardError, match="which does not shard"):
        merge_step(find_step(str(profile), sharded, "agent_r/iter1/sft"), 2)


@pytest.mark.slow
def test_a_killed_shard_rerun_resumes_and_the_merge_is_unchanged(runs, tmp_path):
    """A shard that died mid-way (one tree and one episode of its share lost) is rerun: it
    searches and evaluates only what is missing, and the merge gives the same files."""
    import shutil

    from agentr_lib.shard import run_shard

    profile, sharded, _ = runs
    copy = tmp_path / "run"
    shutil.copytree(sharded, copy)
    search = find_step(str(profile), copy, "iter1/mcts")
    trees = Path(search.parameters["OUT_DIR"]) / "trees"
    lost_tree = trees / f"textcraft-{shard_tasks(step_tasks(search, 'textcraft'), 1, 2)[-1]:06d}.json"
    lost_tree.unlink()
    evaluation = find_step(str(profile), copy, "base/eval")
    episodes = shard_dir(evaluation.parameters["OUT_DIR"], 1, 2) / "textcraft.jsonl"
    kept = episodes.read_text().splitlines()[:-1]
    episodes.write_text("".join(line + "\n" for line in kept))
    merged = (Path(evaluation.parameters["OUT_DIR"]) / "textcraft.jsonl").read_bytes()

    run_shard(search, 1, 2, progress=False)
    run_shard(evaluation, 1, 2, progress=False)
    assert _tree_files(trees) == _tree_files(Path(find_step(str(profile), sharded, "iter1/mcts").parameters["OUT_DIR"])
                                             / "trees")
    assert len(episodes.read_text().splitlines()) == len(kept) + 1, "only the lost episode ran again"
    merge_step(search, 2)
    merge_step(evaluation, 2)
    assert (Path(evaluation.parameters["OUT_DIR"]) / "textcraft.jsonl").read_bytes() == merged


def test_workers_follow_the_pipelines_step_markers(runs, tmp_path, capsys):
    """A done step is skipped, a stale one refused until `prepare` cleared it (once, before
    its workers), as the pipeline would redo it; the SFT launcher obeys the same markers."""
    import shutil

    from agentr_lib.pipeline import inputs_fingerprint, marker_path, outputs_digest
    from agentr_lib.shard import main
    from agentr_lib.train_cli import main as train_main

    profile, sharded, _ = runs
    run = tmp_path / "run"
    shutil.copytree(sharded, run)
    step = find_step(str(profile), run, "iter1/mcts")
    common = ["--profile", str(profile), "--run-dir", str(run), "--step", "iter1/mcts"]
    for path in step.outputs:  # what notebook 01 writes last
        path.write_text("{}\n")
    marker = marker_path(run, step.key)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"key": step.key, "status": "done", "inputs": inputs_fingerprint(step, run, {}),
                                  "outputs": outputs_digest(step, run)}))
    assert main(["run", *common, "--shard", "0/2"]) == 0
    assert "iter1/mcts: already done, nothing to run" in capsys.readouterr().out

    marker.write_text(json.dumps({"key": step.key, "status": "done", "inputs": "another model"}))
    assert main(["run", *common, "--shard", "0/2"]) == 2
    assert "step iter1/mcts is stale (its inputs changed" in capsys.readouterr().err
    assert main(["prepare", *common]) == 0
    assert "iter1/mcts: stale: its outputs and marker removed" in capsys.readouterr().out
    assert not marker.exists() and not Path(step.parameters["OUT_DIR"]).exists()
    assert main(["prepare", *common]) == 0 and "iter1/mcts: todo" in capsys.readouterr().out

    sft = find_step(str(profile), run, "agent_r/iter1/sft", notebooks=("03_sft_unsloth",))
    sft_marker = marker_path(run, sft.key)
    sft_marker.write_text(json.dumps({"key": sft.key, "status": "done", "inputs": "old data"}))
    assert train_main(["--profile", str(profile), "--run-dir", str(run), "--step", sft.key]) == 2
    assert "step agent_r/iter1/sft is stale" in capsys.readouterr().err


def test_the_pipeline_stops_before_a_step_the_workers_pre_run(tmp_path, capsys):
    """The scale-out loop's `--stop-before KEY`: the pipeline runs (here: plans) only the steps
    before KEY; a plan of setup alone still estimates its time (no division by zero)."""
    from agentr_lib.pipeline import build_plan, estimate_left, run_pipeline
    from agentr_lib.profiles import load_profile

    path = tmp_path / "shardtest.yaml"
    path.write_text(yaml.safe_dump(PROFILE))
    profile = load_profile(path)
    run_pipeline(profile, runs_root=tmp_path / "runs", figures_dir=tmp_path / "figs", dry_run=True,
                 stop_before="iter1/mcts")
    listed = [line.split()[3] for line in capsys.readouterr().out.splitlines() if line.startswith("[")]
    assert listed == ["setup", "base/eval"]
    with pytest.raises(ValueError, match="--stop-before 'iter9/mcts' is not a step of this plan"):
        run_pipeline(profile, runs_root=tmp_path / "runs", dry_run=True, stop_before="iter9/mcts")
    setup = build_plan(profile, tmp_path / "runs" / "x", tmp_path / "figs")[:1]
    assert estimate_left(setup, 1, {}, 5.0) is None  # nothing to estimate


def test_workers_plan_with_the_overrides_the_pipeline_recorded(tmp_path):
    """A run started with `--set` records its overrides in run.json; a worker given only the
    profile and the run folder plans the same step parameters (not the profile's defaults)."""
    path = tmp_path / "shardtest.yaml"
    path.write_text(yaml.safe_dump(PROFILE))
    run = tmp_path / "run"
    assert find_step(str(path), run, "iter1/mcts").parameters["SIMULATIONS"] == 2  # no run.json yet: the profile
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"steps": {}, "overrides": {"mcts.simulations": 3}}))
    assert find_step(str(path), run, "iter1/mcts").parameters["SIMULATIONS"] == 3
