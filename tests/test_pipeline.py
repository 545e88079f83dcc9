"""The pipeline's plan, resume and failure reporting (the end-to-end smoke run is in
test_pipeline_smoke.py)."""

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from agentr_lib import pipeline
from agentr_lib.io import read_json
from agentr_lib.pipeline import Selection, build_plan, main, run_pipeline, step_state, variants
from agentr_lib.profiles import load_profile
from agentr_lib.run_config import RunConfig, load_run_config


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
    assert [by_key[f"agent_r/iter{k}/revision"].parameters["ALPHA"] for k in (1, 2, 3)] == profile["revision"]["alpha"]
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
    assert "todo   setup" in out and "agent_r/iter3/eval" in out
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
    assert all(step_state(step, tmp_path / "run", {})[0] != "done" for step in figure_steps)
    run_pipeline(load_profile("smoke"), run_name="run", dry_run=True, runs_root=tmp_path, figures_dir=figures)
    out = capsys.readouterr().out
    assert not any(f"done   {step.key}" in out for step in figure_steps)


def test_from_step_must_name_a_step(tmp_path):
    with pytest.raises(ValueError, match="base/eval"):
        run_pipeline(load_profile("smoke"), select=Selection(from_step="agent_r/iter9/sft"), dry_run=True,
                     runs_root=tmp_path)


def test_cli_rejects_unknown_method(capsys):
    assert main(["--profile", "smoke", "--methods", "agent_r,eto", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "methods = ['agent_r', 'eto']" in err and "Traceback" not in err


# ---- resume, staleness, locking: the pipeline's state machine with a stand-in executor ----


class FakeExecutor:
    """Writes each step's outputs from its settings and its inputs' content, like a
    deterministic notebook would; `fail_at` raises KeyboardInterrupt (a Ctrl-C) there."""

    def __init__(self, fail_at: str | None = None):
        self.ran: list[str] = []
        self.fail_at = fail_at
        self.trainings = 0  # SFT is the one step whose rerun gives other bytes (a new model)

    def __call__(self, step, lock=None):
        from agentr_lib.io import fingerprint

        self.ran.append(step.key)
        if step.key == self.fail_at:
            (step.output_dirs[0] if step.output_dirs else step.workdir).mkdir(parents=True, exist_ok=True)
            raise KeyboardInterrupt
        seen = {name: fingerprint(step.parameters[name]) for name in step.inputs if step.parameters.get(name)}
        seen["settings"] = sorted((name, repr(value)) for name, value in step.parameters.items()
                                  if name.isupper() and not name.endswith("_DIR"))  # what it computes with
        if step.kind == "03":
            self.trainings += 1
            seen["training"] = self.trainings
        for folder in step.output_dirs:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "part.jsonl").open("a").write(json.dumps(seen) + "\n")
            read_next = {"01": "trees", "02": "dataset"}.get(step.kind)  # the folder the next step reads
            if read_next:
                (folder / read_next).mkdir(exist_ok=True)
                (folder / read_next / "part.jsonl").write_text(json.dumps(seen) + "\n")
        for path in step.outputs:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"step": step.key, "inputs": seen}))


@pytest.fixture
def fake(monkeypatch, tmp_path):
    """A one-iteration smoke plan run with FakeExecutor; the base model is a folder in tmp."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"base")
    one_iteration = {"iterations": 1, "methods": ["agent_r"], "model": str(model), "revision.alpha": [-1.0]}
    executor = FakeExecutor()
    monkeypatch.setattr(pipeline, "execute_step", executor)

    def run(sets: dict | None = None, only: list[str] | None = None, from_step: str | None = None):
        """The plan of smoke with `sets` as the command line's --set on top of one iteration's,
        `only` and `from_step` as --only and --from-step."""
        executor.ran.clear()
        config = load_run_config("smoke", {**one_iteration, **(sets or {})})
        run_pipeline(config, run_name="r", runs_root=tmp_path / "runs", figures_dir=tmp_path / "fig",
                     select=Selection(tuple(only or ()), from_step))
        return list(executor.ran)

    return run, executor, tmp_path / "runs" / "r"


def test_finished_steps_are_skipped_and_run_json_says_done(fake):
    run, _, run_dir = fake
    first = run()
    assert first[:3] == ["setup", "base/eval", "iter1/mcts"] and len(first) == 11
    assert run() == []
    manifest = read_json(run_dir / "run.json")
    assert {record["status"] for record in manifest["steps"].values()} == {"done"}
    assert manifest["finished"] and not manifest.get("interruptions")
    assert manifest["machine"]["cpu"] and set(manifest["machine"]["vector_isa"]) <= set(pipeline.VECTOR_ISA), \
        "what decides the kernels (and so the bits) is recorded"
    assert {"omp_num_threads", "mkl_num_threads"} <= set(manifest["machine"]), "and the thread counts that round"
    assert not str(run_dir) in json.dumps(read_json(pipeline.marker_path(run_dir, "agent_r/iter1/sft"))), \
        "markers hold paths relative to the run folder"


def test_a_changed_set_makes_stale_exactly_the_steps_it_reaches_and_is_recorded(fake):
    """--set mcts.simulations changes the search's parameters: the search and what reads its
    trees rerun, set-up and the base evaluation stay done, and run.json records the override."""
    run, _, run_dir = fake
    run()
    redone = run({"mcts.simulations": 1})
    assert redone[0] == "iter1/mcts" and "setup" not in redone and "base/eval" not in redone
    assert {"agent_r/iter1/revision", "agent_r/iter1/sft", "agent_r/iter1/eval"} <= set(redone)
    manifest = read_json(run_dir / "run.json")
    assert manifest["overrides"]["mcts.simulations"] == 1 and manifest["config"]["mcts"]["simulations"] == 1
    assert run({"mcts.simulations": 1}) == [], "the same --set again: every step done"
    assert run()[0] == "iter1/mcts", "dropping the --set is a change too"


def test_only_runs_one_kind_of_step_once_what_it_reads_is_done(fake):
    run, _, run_dir = fake
    with pytest.raises(ValueError, match=r"step iter1/mcts reads what setup writes.*run --only setup first"):
        run(only=["mcts"])
    assert run(only=["setup", "mcts"]) == ["setup", "iter1/mcts"]
    with pytest.raises(ValueError, match=r"agent_r/iter1/sft reads what agent_r/iter1/revision writes, and "
                                         r"agent_r/iter1/revision is not done \(todo\); run --only revision first"):
        run(only=["sft"])
    with pytest.raises(ValueError, match=r"run --only eval first"):  # the prefixes of the base evaluation
        run(only=["revision", "sft", "figures"])
    with pytest.raises(ValueError, match=r"agent_r/iter1/eval reads what agent_r/iter1/sft writes.*run --only "
                                         r"revision first \(step agent_r/iter1/revision, the earliest"):
        run(only=["eval"])
    assert run(only=["revision", "sft"]) == ["agent_r/iter1/revision", "agent_r/iter1/sft"]
    assert run(only=["eval"]) == ["base/eval", "agent_r/iter1/eval"]
    assert run() == [f"figures/{name}" for name in pipeline.FIGURE_NOTEBOOKS]
    assert run({"eval.max_turns": 3}, only=["eval"]) == ["base/eval", "agent_r/iter1/eval"]
    assert run({"eval.max_turns": 3}) == [f"figures/{name}" for name in pipeline.FIGURE_NOTEBOOKS], \
        "they read every evaluation"
    with pytest.raises(ValueError, match="'evals' is not a kind of step; choose from setup, eval, mcts"):
        run(only=["evals"])
    with pytest.raises(ValueError, match=r"step agent_r/iter1/sft reads what agent_r/iter1/revision writes, which "
                                         r"is out of date once iter1/mcts runs again; add revision to --only"):
        run({"eval.max_turns": 3, "mcts.simulations": 1}, only=["mcts", "sft"])
    assert run({"eval.max_turns": 3, "mcts.simulations": 1}, only=["mcts", "revision", "sft"]) == [
        "iter1/mcts", "agent_r/iter1/revision", "agent_r/iter1/sft"]


def test_only_with_dry_run_prints_the_selected_steps_then_what_to_run_first(tmp_path, capsys):
    with pytest.raises(ValueError, match="agent_r/iter1/sft reads what agent_r/iter1/revision writes.*run --only "
                                         "mcts first \\(step iter1/mcts, the earliest"):
        run_pipeline(load_profile("smoke"), dry_run=True, runs_root=tmp_path, select=Selection(("setup", "sft")))
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[3] for line in lines] == ["setup"] + [f"{m}/iter{k}/sft" for m in ("agent_r", "direct_revision")
                                                               for k in (1, 2, 3)]
    assert not (tmp_path / "smoke").exists()


def test_cli_set_and_its_sugar(capsys, tmp_path):
    root = ["--profile", "smoke", "--dry-run", "--runs-root", str(tmp_path)]
    assert main(root + ["--set", "iterations=1", "--set", "methods=[good_only]"]) == 0
    out = capsys.readouterr().out
    assert "good_only/iter1/sft" in out and "agent_r" not in out and "alpha cut to its first values [-1.0]" in out
    assert main(root + ["--methods", "good_only", "--iterations", "1", "--only", "setup,mcts"]) == 0
    assert [line.split()[3] for line in capsys.readouterr().out.splitlines()[1:]] == ["setup", "iter1/mcts"]
    assert main(root + ["--iterations", "1", "--set", "iterations=2"]) == 2
    assert "--iterations and --set iterations=2 disagree" in capsys.readouterr().err
    assert main(root + ["--set", "mcts.simulatons=2"]) == 2
    err = capsys.readouterr().err
    assert "--set mcts.simulatons: unknown key; nearest valid keys: mcts.simulations" in err and "Traceback" not in err
    assert main(root + ["--set", "eval.split=dev"]) == 2
    assert "eval.split = 'dev': expected one of ['test', 'val']" in capsys.readouterr().err


def test_a_retrained_model_makes_its_evaluation_stale(fake):
    """Regression: after retraining, the evaluation kept the old model's files and scores."""
    run, _, run_dir = fake
    run()
    merged = run_dir / "agent_r" / "iter1" / "sft" / "merged"
    (merged / "config.json").write_text('{"retrained": true}')
    (run_dir / "agent_r" / "iter1" / "eval" / "old-model-episode.jsonl").write_text("{}\n")
    redone = run()
    assert redone[0] == "agent_r/iter1/sft", "its own outputs changed: it is rerun (and resumes)"
    assert "agent_r/iter1/eval" in redone
    assert not (run_dir / "agent_r" / "iter1" / "eval" / "old-model-episode.jsonl").exists()


def test_from_step_removes_the_old_outputs_of_every_later_step(fake):
    run, _, run_dir = fake
    run()
    sentinel = run_dir / "agent_r" / "iter1" / "eval" / "stale.jsonl"
    sentinel.write_text("{}\n")
    redone = run(from_step="agent_r/iter1/sft")
    assert redone[0] == "agent_r/iter1/sft" and "agent_r/iter1/eval" in redone and "iter1/mcts" not in redone
    assert not sentinel.exists()


def test_a_damaged_output_is_not_taken_as_done(fake):
    """Regression: a truncated tree JSON was silently skipped on a plain rerun."""
    run, _, run_dir = fake
    run()
    part = run_dir / "iter1-mcts" / "mcts" / "part.jsonl"
    part.write_text(part.read_text()[:5])
    redone = run()
    assert redone[0] == "iter1/mcts"
    assert "setup" not in redone and "base/eval" not in redone


def test_an_interrupted_step_is_recorded_and_resumed_not_cleared(fake):
    run, executor, run_dir = fake
    executor.fail_at = "agent_r/iter1/revision"
    with pytest.raises(KeyboardInterrupt):
        run()
    manifest = read_json(run_dir / "run.json")
    assert manifest["steps"]["agent_r/iter1/revision"]["status"] == "interrupted"
    assert [i["step"] for i in manifest["interruptions"]] == ["agent_r/iter1/revision"]
    assert read_json(pipeline.marker_path(run_dir, "agent_r/iter1/revision"))["status"] == "running"
    partial = run_dir / "agent_r" / "iter1" / "revision" / "partial.jsonl"
    partial.write_text("{}\n")
    executor.fail_at = None
    resumed = run()
    assert resumed[0] == "agent_r/iter1/revision" and partial.exists(), "resumed from what it had written"
    assert read_json(run_dir / "run.json")["steps"]["agent_r/iter1/revision"]["status"] == "done"


def test_a_step_left_running_by_a_killed_process_is_marked_interrupted(fake):
    """Regression: run.json kept "running" for ever for a step a kill -9 cut short."""
    run, _, run_dir = fake
    run()
    manifest = read_json(run_dir / "run.json")
    manifest["steps"]["agent_r/iter1/eval"]["status"] = "running"
    (run_dir / "run.json").write_text(json.dumps(manifest))
    run()
    manifest = read_json(run_dir / "run.json")
    assert manifest["steps"]["agent_r/iter1/eval"]["status"] == "done"
    assert [i["step"] for i in manifest["interruptions"]] == ["agent_r/iter1/eval"]


def test_a_second_pipeline_on_the_same_run_folder_is_refused(fake):
    run, executor, run_dir = fake
    with pipeline.RunLock(run_dir):
        with pytest.raises(pipeline.RunLocked, match=rf"in use by another pipeline \(pid {os.getpid()}"):
            run()
    assert executor.ran == []
    assert run()[0] == "setup", "the lock is released with its holder"


def test_time_left_comes_from_the_profile_then_from_measured_steps():
    profile = load_profile("smoke")
    plan = build_plan(profile, Path("/r"), Path("/f"))
    expected = pipeline.expected_per_weight(RunConfig.from_settings(profile), Path("/r"), Path("/f"))
    after_setup = pipeline.estimate_left(plan, 1, {"00": [600.0]}, expected)
    assert after_setup == pytest.approx(profile["expected_minutes"] * 60), \
        "set-up time says nothing about the other steps (it was 'about 996m left')"
    assert pipeline.expected_per_weight(RunConfig.from_settings({**profile, "expected_minutes": None}),
                                        Path("/r"), Path("/f")) is None
    assert pipeline.estimate_left(plan, 1, {}, None) is None
    measured = pipeline.estimate_left(plan, 3, {"00": [600.0], "base": [140.0], "01": [50.0]}, expected)
    per_weight = (140.0 + 50.0) / (pipeline.STEP_WEIGHTS["base"] + pipeline.STEP_WEIGHTS["01"])
    searches_left = sum(step.kind == "01" for step in plan[3:])
    others = sum(pipeline.STEP_WEIGHTS[step.cost_kind] for step in plan[3:] if step.kind != "01")
    assert measured == pytest.approx(searches_left * 50.0 + others * per_weight)


def _weight(plan) -> float:
    return sum(pipeline.STEP_WEIGHTS[step.cost_kind] for step in plan if step.kind != "00")


def test_a_run_of_part_of_a_profile_is_given_its_part_of_the_expected_minutes():
    """Regression: smol's `--iterations 1` (86 minutes) said "about 300m0s left" after set-up:
    the profile's expected minutes are for its three iterations and were spread over the
    one-iteration plan. They are spread over the profile's own plan; the run gets its share."""
    minutes = load_profile("tiny")["expected_minutes"]
    whole = build_plan(load_profile("tiny"), Path("/r"), Path("/f"))

    def after_setup(sets: dict, only: tuple[str, ...] = ()) -> float | None:
        config = load_run_config("tiny", sets)
        plan = pipeline.select_stages(build_plan(config.settings, Path("/r"), Path("/f")), list(only))
        expected = pipeline.expected_per_weight(config, Path("/r"), Path("/f"))
        return pipeline.estimate_left(plan, 1, {"00": [60.0]}, expected)

    assert after_setup({}) == pytest.approx(minutes * 60), "the profile as written: its own figure, as before"
    one = build_plan(load_run_config("tiny", {"iterations": 1}).settings, Path("/r"), Path("/f"))
    assert after_setup({"iterations": 1}) == pytest.approx(minutes * 60 * _weight(one[1:]) / _weight(whole))
    assert after_setup({"iterations": 1}) < 0.5 * minutes * 60
    evaluations = [step for step in whole if step.stage == "eval"]
    assert after_setup({}, ("setup", "eval")) == pytest.approx(minutes * 60 * _weight(evaluations) / _weight(whole))
    assert after_setup({"mcts.simulations": 4}) is None, "a search of another size: the figure is not for it"
    assert after_setup({"iterations": 1, "expected_minutes": 10}) == pytest.approx(600.0), "a --set figure is the run's"


def test_the_console_prices_one_iteration_of_a_three_iteration_profile(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(pipeline, "execute_step", FakeExecutor())
    config = load_run_config("tiny", {"iterations": 1})
    run_pipeline(config, run_name="r", runs_root=tmp_path / "runs", figures_dir=tmp_path / "fig")
    first = next(line for line in capsys.readouterr().out.splitlines() if "setup: done" in line)
    minutes = int(first.split("about ")[1].split("m")[0])
    whole = build_plan(load_profile("tiny"), tmp_path / "runs" / "r", tmp_path / "fig")
    one = build_plan(config.settings, tmp_path / "runs" / "r", tmp_path / "fig")
    assert minutes == int(config.settings["expected_minutes"] * _weight(one) / _weight(whole)), first


def test_the_base_evaluation_is_its_own_kind():
    """Regression: the base step (which also samples the revision prefixes) was averaged into
    every later evaluation: "about 90m19s left" after it, for a run that took ~35."""
    plan = build_plan(load_profile("tiny"), Path("/r"), Path("/f"))
    kinds = [step.cost_kind for step in plan]
    assert kinds[:3] == ["00", "base", "01"] and kinds.count("base") == 1 and kinds[-5:] == ["figures"] * 5
    assert {kind for kind in kinds if kind != "00"} == set(pipeline.STEP_WEIGHTS)


@pytest.mark.parametrize("machine_speed", [1.0, 2.5])
def test_time_left_after_the_first_search_is_within_30_percent_on_tiny(machine_speed):
    """A `tiny` run whose steps cost what the reference run measured (STEP_WEIGHTS), on this
    machine or one 2.5x slower, with the later iterations' searches 30% slower than the first
    (a trained model's replies) and each evaluation +-20%: after the first search the estimate
    is within 30% of what is really left, and after every later step too."""
    profile = load_profile("tiny")
    plan = build_plan(profile, Path("/r"), Path("/f"))
    truth = []
    for index, step in enumerate(plan):
        seconds = pipeline.STEP_WEIGHTS.get(step.cost_kind, 10.0) * machine_speed
        if step.kind == "01" and step.key != "iter1/mcts":
            seconds *= 1.3
        if step.kind == "04":
            seconds *= 0.8 if index % 2 else 1.2
        truth.append(seconds)
    durations: dict[str, list[float]] = {}
    first_search = [step.key for step in plan].index("iter1/mcts") + 1
    for number, (step, seconds) in enumerate(zip(plan, truth), start=1):
        durations.setdefault(step.cost_kind, []).append(seconds)
        left, really = pipeline.estimate_left(plan, number, durations), sum(truth[number:])
        if number >= first_search and really > 0:
            assert abs(left - really) <= 0.3 * really, (step.key, round(left), round(really))


def test_cli_iterations_are_validated_and_cut_the_alpha_list(capsys):
    assert main(["--profile", "smoke", "--iterations", "0", "--dry-run"]) == 2
    assert "iterations = 0" in capsys.readouterr().err
    assert main(["--profile", "smoke", "--iterations", "1", "--dry-run", "--run-name", "cli-iter1"]) == 0
    out = capsys.readouterr().out
    assert "alpha cut to its first values [-1.0]" in out and "iter2" not in out


def test_lora_iterations_chain_adapters_and_single_task_variants_share_the_first_search(tmp_path):
    """With LoRA an iteration's model is its adapter (what the next search, SFT and evaluation
    load); iteration 1's trees are searched once for every variant, single-task ones included
    (same base model and seed), and each revision step reads only its own envs' trees."""
    plan = build_plan(load_profile("gpu-rehearsal"), tmp_path / "run", tmp_path / "fig")
    by_key = {step.key: step for step in plan}
    keys = [step.key for step in plan]
    assert [k for k in keys if k.endswith("/mcts")] == [
        "iter1/mcts", "agent_r/iter2/mcts", "agent_r-textcraft/iter2/mcts", "agent_r-sciworld/iter2/mcts",
        "agent_r-webshop/iter2/mcts"]
    shared = by_key["iter1/mcts"]
    assert shared.parameters["ENVS"] == ["textcraft", "sciworld", "webshop"]
    trees = str(Path(shared.parameters["OUT_DIR"]) / "trees")
    single = by_key["agent_r-sciworld/iter1/revision"]
    assert single.parameters["TREES_DIR"] == trees and single.parameters["ENVS"] == ["sciworld"]
    assert by_key["agent_r/iter1/revision"].parameters["ENVS"] == ["textcraft", "sciworld", "webshop"]
    for variant in ("agent_r", "agent_r-webshop"):
        adapter = str(tmp_path / "run" / variant / "iter1" / "sft" / "adapter")
        assert by_key[f"{variant}/iter1/sft"].outputs[-1] == Path(adapter) / "adapter_config.json"
        assert by_key[f"{variant}/iter2/mcts"].parameters["MODEL"] == adapter
        assert by_key[f"{variant}/iter2/revision"].parameters["MODEL"] == adapter  # the model verifier's actor
        assert by_key[f"{variant}/iter2/sft"].parameters["INIT_MODEL"] == adapter
        assert by_key[f"{variant}/iter1/eval"].parameters["MODEL"] == adapter
    assert by_key["agent_r/iter1/revision"].inputs == ("TREES_DIR", "MODEL")


@pytest.mark.parametrize("junk", [b"{not json", b"\xff\xfe\x00garbage", b"[1, 2]"])
def test_a_damaged_step_marker_is_treated_like_a_missing_one(fake, capsys, junk):
    """Regression: junk in a finished run's marker stopped the next run (and --dry-run) with
    `not valid JSON` and no hint; like a missing marker, the step reruns, said on one line."""
    run, _, run_dir = fake
    run()
    marker = pipeline.marker_path(run_dir, "agent_r/iter1/eval")
    marker.write_bytes(junk)
    capsys.readouterr()
    profile = read_json(run_dir / "run.json")["config"]  # the fixture's profile, as the run recorded it
    run_pipeline(profile, run_name="r", dry_run=True, runs_root=run_dir.parent, figures_dir=run_dir.parent.parent / "fig")
    dry = [line for line in capsys.readouterr().out.splitlines() if "agent_r/iter1/eval" in line]
    assert len(dry) == 1 and "resume" in dry[0] and f"{marker.name} is damaged" in dry[0], dry
    redone = run()
    assert redone[0] == "agent_r/iter1/eval" and "agent_r/iter1/sft" not in redone
    said = [line for line in capsys.readouterr().out.splitlines() if "damaged" in line]
    assert len(said) == 1 and "agent_r/iter1/eval: resuming" in said[0] and "reruns" in said[0], said
    assert read_json(marker)["status"] == "done"


def test_a_damaged_run_json_is_kept_aside_and_the_run_goes_on(fake, capsys):
    run, _, run_dir = fake
    run()
    (run_dir / "run.json").write_bytes(b"\x00{torn")
    capsys.readouterr()
    assert run() == []
    said = [line for line in capsys.readouterr().out.splitlines() if "damaged" in line]
    assert len(said) == 1 and "kept as run.json.damaged" in said[0], said
    assert (run_dir / "run.json.damaged").read_bytes() == b"\x00{torn"
    assert read_json(run_dir / "run.json")["finished"]


def test_relative_replaces_whole_path_components_only(tmp_path):
    """Regression: `/x/repo-logs/...` was recorded as `<root>-logs/...` (a text prefix)."""
    run_dir = tmp_path / "run"
    sibling = f"{pipeline.ROOT}-logs/a.json"
    assert pipeline._relative(sibling, run_dir) == sibling
    assert pipeline._relative(f"{run_dir}2/x", run_dir) == f"{run_dir}2/x"
    assert pipeline._relative(str(run_dir / "steps" / "a.json"), run_dir) == "<run>/steps/a.json"
    assert pipeline._relative(str(run_dir), run_dir) == "<run>"
    assert pipeline._relative(f"{pipeline.ROOT}/data/x", run_dir) == "<root>/data/x"
    assert pipeline._relative({"k": [str(run_dir / "a")], "n": 3}, run_dir) == {"k": ["<run>/a"], "n": 3}


_KILLED_PIPELINE = """
import sys
from pathlib import Path
from agentr_lib import pipeline

pipeline.NOTEBOOKS = Path(sys.argv[1])
run_dir = Path(sys.argv[2])
with pipeline.RunLock(run_dir) as lock:
    pipeline.execute_step(pipeline.Step("sleeper", "sleeper", run_dir / "work", {}), lock)
"""


def test_a_kernel_that_outlives_a_killed_pipeline_keeps_the_run_locked(tmp_path):
    """Regression: after a SIGKILL of the pipeline its notebook kernel ran on for ~1 s (until it
    noticed its parent was gone) and could still write into a run a new pipeline had locked.
    The kernel holds the run's lock too, so the run stays locked while any writer lives."""
    import signal
    import time

    notebooks, run_dir, kernel_pid = tmp_path / "notebooks", tmp_path / "run", tmp_path / "kernel.pid"
    notebooks.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        f"import os, time\nopen({str(kernel_pid)!r}, 'w').write(str(os.getpid()))\ntime.sleep(60)")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, notebooks / "sleeper.ipynb")
    pipeline_process = subprocess.Popen([sys.executable, "-c", _KILLED_PIPELINE, str(notebooks), str(run_dir)],
                                        cwd=pipeline.ROOT)
    try:
        deadline = time.monotonic() + 120
        while not (kernel_pid.exists() and kernel_pid.read_text()):
            assert pipeline_process.poll() is None and time.monotonic() < deadline, "the kernel never started"
            time.sleep(0.1)
        kernel = int(kernel_pid.read_text())
        pipeline_process.send_signal(signal.SIGKILL)
        pipeline_process.wait()
        with pytest.raises(pipeline.RunLocked, match="kernel"):
            pipeline.RunLock(run_dir).__enter__()
    finally:
        if pipeline_process.poll() is None:
            pipeline_process.kill()
    with contextlib.suppress(ProcessLookupError):  # it may have noticed its parent is gone and ended
        os.kill(kernel, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while True:  # free once the last writer is gone (its threads end after its main one shows as ended)
        try:
            with pipeline.RunLock(run_dir):
                break
        except pipeline.RunLocked:
            assert time.monotonic() < deadline, "the lock outlived every process that held it"
            time.sleep(0.05)
