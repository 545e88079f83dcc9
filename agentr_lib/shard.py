"""Sharded search and evaluation: one pipeline step's tasks split over N workers (processes,
GPUs, nodes), each writing through the stage's own atomic, resumable writers, then merged.

Why it is a pre-run and not a second pipeline: a shard runs exactly what the step's notebook
runs on its share of the tasks, with the step's own parameters (read from the pipeline's plan,
so model, seed and settings cannot drift), into the folder the notebook resumes from. After
`merge`, the pipeline runs the notebook as usual and finds every task done: the search loads
every tree, the evaluation every episode, and the notebook writes its summary, tables and
figures. Seeds are per task (derive_seed of the run's seed, env, task id and node or turn),
so the split changes nothing a batch-invariant sampler draws.

- Split: shard i of N takes the i-th of every N task ids in the step's order (the seeded
  sample `splits.select_tasks` gives every shard alike): deterministic, balanced to one task.
- Search (`01_mcts_collection` steps): trees are one file per task already
  (`<OUT_DIR>/trees/<env>-<id>.json`, written atomically), so the shards share the folder.
- Evaluation (`04_evaluation` steps): each shard evaluates into `<OUT_DIR>/shards/<i>-of-<N>/`
  (an appended JSONL is one writer's); `merge` checks every task is there exactly once, with
  one configuration, and writes `<env>.jsonl` (task order), `<env>.config.json`,
  `<env>.metrics.json` and `metrics.json` as `evaluate` does. The revision-ability episodes
  and the base model's erroneous prefixes are not sharded: the notebook runs them.
- A shard killed and rerun resumes like a single run (the trees and episodes it finished
  are kept).

    python -m agentr_lib.shard steps   --profile P --run-dir D [--all]     # the steps that shard (--all: every step)
    python -m agentr_lib.shard prepare --profile P --run-dir D --step KEY  # once, before a step's workers
    python -m agentr_lib.shard run     --profile P --run-dir D --step KEY --shard 0/2
    python -m agentr_lib.shard merge   --profile P --run-dir D --step KEY --shards 2

The pipeline's step markers decide what a worker does, as they decide what the pipeline does:
a done step is skipped (`run` says so and exits 0); a stale one (its inputs changed since it
finished) is refused until `prepare` removed its outputs and marker, as the pipeline's redo
removes them (once, in one process: N workers doing it would delete each other's files).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: The notebooks whose steps shard: search and evaluation.
SHARDED_NOTEBOOKS: tuple[str, ...] = ("01_mcts_collection", "04_evaluation")
#: What each notebook's step is, in `steps --all`'s listing.
STEP_KINDS: dict[str, str] = {"01_mcts_collection": "search", "04_evaluation": "eval", "03_sft_unsloth": "sft"}


class ShardError(ValueError):
    """A shard specification or a merge that does not add up; the message names what."""


def parse_shard(text: str) -> tuple[int, int]:
    """"i/N" -> (i, N) with 0 <= i < N."""
    try:
        index, count = (int(part) for part in str(text).split("/"))
    except ValueError:
        raise ShardError(f"--shard {text!r}: expected i/N, e.g. 0/2 (shard 0 of 2)") from None
    if count < 1 or not 0 <= index < count:
        raise ShardError(f"--shard {text!r}: expected 0 <= i < N")
    return index, count


def shard_tasks(task_ids: Sequence[int], index: int, count: int) -> list[int]:
    """Shard `index` of `count`: the index-th of every `count` task ids, in their order."""
    if count < 1 or not 0 <= index < count:
        raise ShardError(f"shard {index}/{count}: expected 0 <= i < N")
    return list(task_ids)[index::count]


def shard_dir(out_dir: str | Path, index: int, count: int) -> Path:
    """Where evaluation shard `index` of `count` writes its episodes."""
    return Path(out_dir) / "shards" / f"{index}-of-{count}"


# ---- the step's parameters ---------------------------------------------------------


def find_step(profile: str, run_dir: str | Path, key: str, figures_dir: str | Path | None = None,
              notebooks: tuple[str, ...] = SHARDED_NOTEBOOKS) -> Any:
    """The pipeline step `key` of this profile's run in `run_dir` (pipeline.build_plan), which
    must run one of `notebooks` (default: a search or an evaluation step)."""
    from .pipeline import build_plan
    from .run_config import recorded_run_config

    loaded = recorded_run_config(profile, run_dir).settings
    plan = build_plan(loaded, Path(run_dir), Path(figures_dir or Path(run_dir) / "figures"))
    steps = {step.key: step for step in plan}
    if key not in steps:
        raise ShardError(f"--step {key!r}: not a step of profile {loaded['name']!r}; its steps are {list(steps)}")
    if steps[key].notebook not in notebooks:
        shardable = [k for k, s in steps.items() if s.notebook in notebooks]
        raise ShardError(f"--step {key!r} runs {steps[key].notebook}, which does not shard; these do: {shardable}")
    return steps[key]


def step_status(profile: str, run_dir: str | Path, key: str, figures_dir: str | Path | None = None) -> tuple[str, str]:
    """(state, why) of step `key` as the pipeline judges it from its marker and the markers of
    the steps before it: "done", "stale", "resume" or "todo" (pipeline.step_state)."""
    from .pipeline import build_plan, read_marker, step_state
    from .run_config import recorded_run_config

    run_dir = Path(run_dir)
    upstream: dict[str, dict] = {}
    for step in build_plan(recorded_run_config(profile, run_dir).settings, run_dir, Path(figures_dir or run_dir / "figures")):
        if step.key == key:
            return step_state(step, run_dir, upstream)
        marker, _ = read_marker(run_dir, step.key)
        if marker is not None:
            upstream[step.key] = marker
    raise ShardError(f"--step {key!r}: not a step of profile {profile!r}")


def check_runnable(profile: str, run_dir: str | Path, key: str, figures_dir: str | Path | None = None) -> bool:
    """False when the step is done (nothing to run); raises for a stale step (`prepare` it
    first); True otherwise."""
    state, why = step_status(profile, run_dir, key, figures_dir)
    if state == "stale":
        raise ShardError(f"step {key} is stale ({why}): run `python -m agentr_lib.shard prepare --profile {profile} "
                         f"--run-dir {run_dir} --step {key}` once, then its workers")
    return state != "done"


def prepare_step(step: Any, profile: str, run_dir: str | Path, figures_dir: str | Path | None = None) -> str:
    """Make a stale step's folders fresh as the pipeline's redo does (its output folders and
    marker removed), so that the pipeline resumes from what the workers write instead of
    deleting it; any other state is left as it is. Returns the state found."""
    import shutil

    from .pipeline import marker_path

    state, _ = step_status(profile, run_dir, step.key, figures_dir)
    if state == "stale":
        for folder in step.output_dirs:
            shutil.rmtree(folder, ignore_errors=True)
        marker_path(Path(run_dir), step.key).unlink(missing_ok=True)
    return state


def step_tasks(step: Any, env_name: str) -> list[int]:
    """The task ids the step's notebook runs for `env_name` (its own select_tasks call)."""
    from .profiles import per_env
    from .splits import select_tasks

    p = step.parameters
    if step.notebook == "01_mcts_collection":
        return select_tasks(env_name, p["TASK_SPLIT"], per_env(p["TASKS_PER_ENV"], env_name), p["SEED"])
    return select_tasks(env_name, p["SPLIT"], per_env(p["TASKS_PER_ENV"], env_name), p["SEED"])


def _policy(step: Any) -> Any:
    from .layout import model_path
    from .llm import load_policy

    p = step.parameters
    return load_policy(p["BACKEND"], model_path(p["MODEL"]), endpoints=p.get("ENDPOINTS") or None)


# ---- run one shard -----------------------------------------------------------------


def run_shard(step: Any, index: int, count: int, policy: Any = None, progress: bool = True) -> dict[str, list[int]]:
    """Run shard `index` of `count` of a search or evaluation step (see the module docstring);
    returns {env: the task ids this shard ran}. `policy`: the sampler (default: the step's
    backend on the step's model, as its notebook loads it)."""
    from .envs import make_env
    from .profiles import per_env

    p = step.parameters
    policy = policy if policy is not None else _policy(step)
    ran: dict[str, list[int]] = {}
    for env_name in p["ENVS"]:
        mine = shard_tasks(step_tasks(step, env_name), index, count)
        ran[env_name] = mine
        if step.notebook == "01_mcts_collection":
            from .mcts import MCTSConfig, search_trees

            config = MCTSConfig(simulations=p["SIMULATIONS"], n_gen=p["N_GEN"], temperature=p["TEMPERATURE"],
                                max_depth=p["MAX_DEPTH"], c=p["C"], seed=p["SEED"], restore=p["RESTORE"],
                                max_new_tokens=p["MAX_NEW_TOKENS"], batch_trees=p["BATCH_TREES"])
            search_trees(policy, lambda: make_env(env_name), mine, config, out_dir=Path(p["OUT_DIR"]) / "trees",
                         env_name=env_name, progress=progress)
        else:
            from .evaluate import EvalConfig, Runner, evaluate

            config = EvalConfig(max_turns=p["MAX_TURNS"], temperature=p["TEMPERATURE"],
                                max_new_tokens=p["MAX_NEW_TOKENS"])
            evaluate(policy, env_name, mine, shard_dir(p["OUT_DIR"], index, count), config, Runner(progress=progress),
                     seed=p["SEED"])
    return ran


# ---- merge -------------------------------------------------------------------------


def merge_trees(out_dir: str | Path, env_name: str, task_ids: Sequence[int]) -> list[Path]:
    """Check the search folder holds exactly one readable tree per task of the step (and no
    tree of another task: a different split or N was mixed in); returns their paths."""
    from .mcts import load_tree, tree_path

    trees = Path(out_dir) / "trees"
    wanted = {tree_path(Path(out_dir) / "trees", env_name, int(t)).name: int(t) for t in task_ids}
    missing = [task for name, task in wanted.items() if not (trees / name).exists()]
    extra = sorted(p.name for p in trees.glob(f"{env_name}-*.json") if p.name not in wanted)
    if missing or extra:
        raise ShardError(f"{trees}: {env_name} trees missing for tasks {missing} (rerun their shards), "
                         f"unexpected files {extra} (another task sample or split)")
    paths = []
    for name, task in wanted.items():
        tree = load_tree(trees / name)  # a corrupt file raises, naming it
        if tree.task_id != task or tree.env != env_name:
            raise ShardError(f"{trees / name}: holds {tree.env} task {tree.task_id}, expected {env_name} task {task}")
        paths.append(trees / name)
    return paths


def merge_episodes(out_dir: str | Path, env_name: str, task_ids: Sequence[int], count: int) -> dict[str, Any]:
    """Combine the `count` evaluation shards of `env_name` into `out_dir` (see the module
    docstring): every task exactly once, one configuration; returns the env's metrics."""
    from .evaluate import load_metrics, metrics_from_records
    from .io import atomic_write_json, read_json, read_jsonl, write_jsonl

    out_dir = Path(out_dir)
    configs: dict[str, Any] = {}
    found: dict[str, tuple[int, dict]] = {}
    for index in range(count):
        folder = shard_dir(out_dir, index, count)
        config_path = folder / f"{env_name}.config.json"
        if not config_path.exists():
            raise ShardError(f"{config_path}: shard {index}/{count} of {env_name} has not run (no config file)")
        configs[str(config_path)] = read_json(config_path)
        for record in read_jsonl(folder / f"{env_name}.jsonl"):
            key = record["key"]
            if key in found:
                raise ShardError(f"{env_name} task {key}: in shard {found[key][0]} and shard {index} of {count}")
            found[key] = (index, record)
    if len({str(sorted(c.items())) for c in configs.values()}) > 1:
        raise ShardError(f"{env_name}: the shards ran with different settings: {configs}")
    wanted = [str(int(t)) for t in task_ids]
    missing = [key for key in wanted if key not in found]
    extra = sorted(set(found) - set(wanted))
    if missing or extra:
        raise ShardError(f"{env_name}: episodes missing for tasks {missing} (rerun their shards to resume them), "
                         f"episodes of tasks not in the step {extra}")
    records = [found[key][1] for key in wanted]
    config = next(iter(configs.values()))
    atomic_write_json(out_dir / f"{env_name}.config.json", config)
    write_jsonl(out_dir / f"{env_name}.jsonl", records)
    metrics = {"env": env_name, **metrics_from_records(records), **{k: v for k, v in config.items() if k != "env"}}
    atomic_write_json(out_dir / f"{env_name}.metrics.json", metrics)
    atomic_write_json(out_dir / "metrics.json", load_metrics(out_dir))
    return metrics


def merge_step(step: Any, count: int) -> dict[str, int]:
    """Merge a step's `count` shards, env by env; returns {env: tasks merged}."""
    p = step.parameters
    merged = {}
    for env_name in p["ENVS"]:
        tasks = step_tasks(step, env_name)
        if step.notebook == "01_mcts_collection":
            merge_trees(p["OUT_DIR"], env_name, tasks)
        else:
            merge_episodes(p["OUT_DIR"], env_name, tasks, count)
        merged[env_name] = len(tasks)
    return merged


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agentr_lib.shard", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("steps", "prepare", "run", "merge"))
    parser.add_argument("--profile", required=True, help="a profile name or YAML path (as the pipeline takes it)")
    parser.add_argument("--run-dir", required=True, help="the run folder (shared by every worker)")
    parser.add_argument("--figures-dir", default=None, help="as the pipeline's (only the plan's paths read it)")
    parser.add_argument("--step", help="the step key, e.g. iter1/mcts or agent_r/iter1/eval")
    parser.add_argument("--shard", help="run: i/N")
    parser.add_argument("--shards", type=int, help="merge: N")
    parser.add_argument("--all", action="store_true", help="steps: every step with its kind (search, eval, sft, other)")
    args = parser.parse_args(argv)
    try:
        if args.command == "steps":
            from .pipeline import build_plan
            from .run_config import recorded_run_config

            plan = build_plan(recorded_run_config(args.profile, args.run_dir).settings, Path(args.run_dir),
                              Path(args.figures_dir or Path(args.run_dir) / "figures"))
            for s in plan:
                if args.all:
                    print(s.key, STEP_KINDS.get(s.notebook, "other"))
                elif s.notebook in SHARDED_NOTEBOOKS:
                    print(s.key)
            return 0
        if not args.step:
            raise ShardError(f"{args.command}: --step is required")
        step = find_step(args.profile, args.run_dir, args.step, args.figures_dir,
                         tuple(STEP_KINDS) if args.command == "prepare" else SHARDED_NOTEBOOKS)
        if args.command == "prepare":
            state = prepare_step(step, args.profile, args.run_dir, args.figures_dir)
            print(f"{args.step}: {state}" + (": its outputs and marker removed, ready for its workers"
                                              if state == "stale" else ""))
        elif args.command == "run" and not check_runnable(args.profile, args.run_dir, args.step, args.figures_dir):
            print(f"{args.step}: already done, nothing to run")
        elif args.command == "run":
            if not args.shard:
                raise ShardError("run: --shard i/N is required")
            index, count = parse_shard(args.shard)
            ran = run_shard(step, index, count)
            print(f"{args.step} shard {index}/{count}: " + ", ".join(f"{env} {len(ids)} tasks" for env, ids in ran.items()))
        else:
            if not args.shards or args.shards < 1:
                raise ShardError("merge: --shards N (N >= 1) is required")
            merged = merge_step(step, args.shards)
            print(f"{args.step}: merged {args.shards} shards: " + ", ".join(f"{e} {n} tasks" for e, n in merged.items()))
    except ShardError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
