"""Evaluation (docs/design.md "Evaluation"): a model on an environment's test split, batched across tasks.

Files written under `out_dir` (one folder per model/run):
- `<env>.jsonl`           one record per finished episode (Trajectory.to_dict + actions, loops),
                          appended as each episode ends; a rerun skips the task ids already there.
- `<env>.metrics.json`    mean reward x100, success x100, mean turns, n, loop means, ...
- `<env>.config.json`     the settings of the run; a rerun with other settings refuses to mix.
- `metrics.json`          `summarize` over the envs evaluated (per env + "average").
- `<env>.revision.jsonl` / `<env>.revision.metrics.json`: the revision-ability protocol.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .agent import EnvSource, EpisodeSettings, Trajectory, run_episodes
from .checks import boolean, int_at_least, number, one_of, per_env_values, setting
from .envs import make_env, per_env
from .envs.base import Env
from .io import append_jsonl, atomic_write_json, fingerprint, read_json, read_jsonl
from .llm.base import Policy, derive_seed

LOOP_MAX_LEN = 5
#: Default episodes stepped in lockstep per env: each ScienceWorld env is a JVM.
DEFAULT_CONCURRENCY: dict[str, int] = {"textcraft": 32, "webshop": 32, "sciworld": 4}


@dataclass
class EvalConfig:
    """What an evaluation (notebook 04) measures and how it samples. Each field is the profile
    key `eval.<field>`: agentr_lib.profiles reads its default, check and meaning here."""

    split: str = setting("test", one_of("test", "val"), "task split: test, or val (goals carved from train for "
                         "choosing settings; TextCraft only)", "04")
    tasks_per_env: int | Mapping[str, int] = setting(
        50, per_env_values(int_at_least(0)),
        "test tasks per environment, a seeded sample (0: the whole split; or a mapping env -> n)", "04")
    max_turns: int | Mapping[str, int] = setting(20, per_env_values(int_at_least(1)),
                                                 "turn limit per episode (or a mapping env -> n)", "04")
    temperature: float = setting(0.0, number(0), "sampling temperature (0: greedy)", "04")
    max_new_tokens: int = setting(96, int_at_least(1), "tokens per reply", "04")
    revision_prefixes: bool = setting(True, boolean, "also measure revision ability: continue from the base model's "
                                      "fixed erroneous prefixes (Table 3)")
    #: the base model's rollouts the erroneous prefixes are cut from sample at this temperature,
    #: up to `prefix_attempts` times for the tasks without a failure yet; a prefix keeps at most
    #: `max_prefix_turns` steps (default max_turns // 2, so the model has turns left to recover)
    prefix_temperature: float = 1.0
    prefix_attempts: int = 3
    max_prefix_turns: int | None = None

    def turns(self, env_name: str) -> int:
        """The turn limit of `env_name`'s episodes (`max_turns` may be a mapping env -> n)."""
        return int(per_env(self.max_turns, env_name))


# --------------------------------------------------------------------------------------
# Loops (Figure 4)
# --------------------------------------------------------------------------------------


def loop_counts(actions: Sequence[str | None], max_len: int = LOOP_MAX_LEN) -> dict[int, int]:
    """For each block length L = 1..max_len: the number of start positions i such that the
    block actions[i:i+L] is immediately followed by the same block, actions[i+L:i+2L].

    Overlapping occurrences all count: [a,a,a] has 2 for L=1 (positions 0 and 1);
    [a,b,a,b] has 1 for L=2 and 0 for L=1; [a,b,a,b,a,b] has 3 for L=2 (positions 0, 1, 2:
    ab|ab, ba|ba, ab|ab). Hence a run of one action repeated k times adds k-1 to L=1.
    A missing action (None, a parse failure) is compared like any other action, so repeated
    unparseable replies count as a loop."""
    actions = list(actions)
    counts: dict[int, int] = {}
    for length in range(1, max_len + 1):
        counts[length] = sum(
            actions[i:i + length] == actions[i + length:i + 2 * length]
            for i in range(0, len(actions) - 2 * length + 1)
        )
    return counts


# --------------------------------------------------------------------------------------
# Records and metrics
# --------------------------------------------------------------------------------------


def episode_record(trajectory: Trajectory, key: str | None = None, **extra: Any) -> dict[str, Any]:
    """The JSONL record of one episode: Trajectory.to_dict() (steps, final_reward, success,
    num_turns, hit_turn_limit, parse_failures, prefix_len) + `actions`, `loops`, `key`."""
    record = trajectory.to_dict()
    record["key"] = key if key is not None else str(trajectory.task_id)
    record["actions"] = trajectory.actions
    record["loops"] = {str(k): v for k, v in loop_counts(trajectory.actions).items()}
    record.update(extra)
    return record


def _mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values)) if values else 0.0


def metrics_from_records(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Mean final reward x100, success rate x100, mean turns, turn-limit rate x100, mean
    parse failures per episode, mean loop counts per L (over episodes), n."""
    records = list(records)
    return {
        "n": len(records),
        "mean_reward": round(100 * _mean([r["final_reward"] for r in records]), 4),
        "success": round(100 * _mean([float(r["success"]) for r in records]), 4),
        "mean_turns": round(_mean([r["num_turns"] - r.get("prefix_len", 0) for r in records]), 4),
        "hit_turn_limit": round(100 * _mean([float(r["hit_turn_limit"]) for r in records]), 4),
        "parse_failures": round(_mean([r["parse_failures"] for r in records]), 4),
        "loops": {str(k): round(_mean([r["loops"][str(k)] for r in records]), 4)
                  for k in range(1, LOOP_MAX_LEN + 1)},
    }


SUMMARY_KEYS: tuple[str, ...] = ("mean_reward", "success", "mean_turns")


def summarize(metrics_by_env: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Per-env metrics plus "average": the unweighted mean over envs (as the paper's Average
    column) of mean_reward, success and mean_turns. Envs in sorted order."""
    envs = sorted(k for k in metrics_by_env if k != "average")
    summary: dict[str, Any] = {env: dict(metrics_by_env[env]) for env in envs}
    summary["average"] = {key: round(_mean([float(metrics_by_env[e][key]) for e in envs]), 4) for key in SUMMARY_KEYS}
    summary["average"]["envs"] = envs
    return summary


def load_metrics(out_dir: str | Path, kind: str = "metrics") -> dict[str, Any]:
    """Read every `<env>.<kind>.json` of `out_dir` and summarize them."""
    suffix = f".{kind}.json"
    found = {p.name[:-len(suffix)]: read_json(p) for p in sorted(Path(out_dir).glob(f"*{suffix}"))
             if "." not in p.name[:-len(suffix)]}
    return summarize(found)


# --------------------------------------------------------------------------------------
# The logged, resumable runner
# --------------------------------------------------------------------------------------


def _check_config(path: Path, config: dict[str, Any]) -> None:
    """Refuse to resume a JSONL written with other settings (it would mix two experiments)."""
    if path.exists():
        old = read_json(path)
        diff = {k: (old.get(k), v) for k, v in config.items() if k in old and old.get(k) != v}
        if diff:
            raise ValueError(f"{path}: this folder was evaluated with other settings {diff} (old, new); "
                             "use another out_dir or delete its files")
    atomic_write_json(path, config)


@dataclass(frozen=True)
class Runner:
    """How episodes are run, not what is measured: `envs` a factory `() -> Env` or a list of
    envs to reuse (left open), as `run_episodes` takes them (default: `make_env(env_name,
    **env_kwargs[env_name])`), at most `max_concurrency` episodes in lockstep (default: the
    env's DEFAULT_CONCURRENCY), a progress bar or none."""

    max_concurrency: int | None = None
    envs: EnvSource | None = None
    env_kwargs: Mapping[str, Mapping[str, Any]] | None = None  # env name -> make_env's keywords
    progress: bool = True

    def concurrency(self, env_name: str) -> int:
        """Episodes of `env_name` stepped in lockstep at most."""
        return self.max_concurrency or DEFAULT_CONCURRENCY.get(env_name, 16)

    def source(self, env_name: str) -> EnvSource:
        """The envs `run_episodes` runs `env_name`'s episodes in: `envs`, else a factory."""
        if self.envs is not None:
            return self.envs
        kwargs = dict((self.env_kwargs or {}).get(env_name) or {})
        return lambda: make_env(env_name, **kwargs)


def _resumable(
    policy: Policy,
    items: Sequence[tuple[str, int, Sequence[str] | None]],
    out_dir: Path,
    stem: str,
    config: dict[str, Any],
    runner: Runner,
    seed: int,
) -> list[dict[str, Any]]:
    """The one resumable episode loop of the test runs and the revision-ability runs: check
    that `<stem>.config.json` (the settings and the model: `config`) matches what the folder
    was run with, run the (key, task_id, prefix) items not yet in `<stem>.jsonl`, append each
    episode as it ends, and return the records of all requested keys in request order."""
    env_name = config["env"]
    _check_config(out_dir / f"{stem}.config.json", config)
    jsonl_path = out_dir / f"{stem}.jsonl"
    done = {record["key"]: record for record in read_jsonl(jsonl_path)}
    todo = [item for item in items if item[0] not in done]
    if todo:
        def on_finish(index: int, trajectory: Trajectory) -> None:
            record = episode_record(trajectory, key=todo[index][0])
            append_jsonl(jsonl_path, record)
            done[record["key"]] = record

        run_episodes(
            policy, runner.source(env_name), [task for _, task, _ in todo],
            EpisodeSettings(config["max_turns"], config["temperature"], config["max_new_tokens"], seed),
            prefixes=[prefix for _, _, prefix in todo] if any(p is not None for _, _, p in todo) else None,
            max_concurrency=runner.concurrency(env_name), on_finish=on_finish,
            progress=env_name if runner.progress else False,
        )
    return [done[key] for key, _, _ in items]


def evaluate(
    policy: Policy,
    env_name: str,
    task_ids: Sequence[int],
    out_dir: str | Path,
    config: EvalConfig,
    runner: Runner = Runner(),
    seed: int = 0,
) -> dict[str, Any]:
    """Evaluate `policy` on `task_ids` of `env_name` with `config`'s turn limit and sampling
    (its split and task count are the caller's: `task_ids`); writes `<env>.jsonl`,
    `<env>.metrics.json`, refreshes `metrics.json`; returns the env's metrics. A rerun with the
    same out_dir resumes (finished task ids are not run again) only when it evaluates the same
    model (`policy.model_id`, a content hash) with the same settings. `runner`: the envs (by
    default `make_env(env_name, **runner.env_kwargs[env_name])`), how many run in lockstep, the
    progress bar."""
    out_dir = Path(out_dir)
    settings = {"env": env_name, "max_turns": config.turns(env_name), "temperature": config.temperature,
                "max_new_tokens": config.max_new_tokens, "model": getattr(policy, "model_id", None), "seed": seed}
    items = [(str(task_id), int(task_id), None) for task_id in task_ids]
    records = _resumable(policy, items, out_dir, env_name, settings, runner, seed)
    metrics = {"env": env_name, **metrics_from_records(records), **{k: v for k, v in settings.items() if k != "env"}}
    atomic_write_json(out_dir / f"{env_name}.metrics.json", metrics)
    atomic_write_json(out_dir / "metrics.json", load_metrics(out_dir))
    return metrics


# --------------------------------------------------------------------------------------
# Revision ability (Table 3)
# --------------------------------------------------------------------------------------


def _cut(trajectory: Trajectory, rng: random.Random, max_prefix_turns: int) -> int:
    """A seeded cut point: 1..(number of non-terminal steps, capped); 0 = not usable."""
    usable = len(trajectory.steps) - (1 if trajectory.done else 0)
    usable = min(usable, max_prefix_turns)
    return rng.randint(1, usable) if usable >= 1 else 0


def make_error_prefixes(
    policy: Policy,
    env_name: str,
    task_ids: Sequence[int],
    out_path: str | Path,
    config: EvalConfig,
    seed: int = 0,
    runner: Runner = Runner(),
) -> dict[str, Any]:
    """The fixed set of erroneous prefixes for the revision-ability protocol, made ONCE and
    reused by every model (if `out_path` exists it is loaded and returned as is).

    For each task: roll out `policy` (the base model) for `config.turns(env_name)` turns at
    `config.prefix_temperature` > 0, up to `config.prefix_attempts` times for the tasks that
    have no failure yet; from the first failed rollout (final reward < 1) keep its responses up
    to a cut drawn with Random(f"{seed}:{env}:{task}") in 1..min(non-terminal steps,
    `config.max_prefix_turns`) (default max_turns // 2, so the model has turns left to
    recover). Tasks the policy always solves get no prefix (listed in
    "no_failure"). Returns the saved dict: {"env", "seed", "max_turns", ..., "prefixes": [
    {"key", "task_id", "responses", "actions", "source_reward", "source_turns"}]}."""
    out_path = Path(out_path)
    if out_path.exists():
        data = read_json(out_path)
        if data.get("env") != env_name:
            raise ValueError(f"{out_path}: holds prefixes for env {data.get('env')!r}, not {env_name!r}")
        return data
    max_turns, temperature, attempts = config.turns(env_name), config.prefix_temperature, config.prefix_attempts
    if temperature <= 0:
        raise ValueError(f"make_error_prefixes needs temperature > 0 to sample failures, got {temperature}")
    max_prefix_turns = config.max_prefix_turns or max(1, max_turns // 2)
    chosen: dict[int, dict[str, Any]] = {}
    remaining = [int(t) for t in task_ids]
    for attempt in range(attempts):
        if not remaining:
            break
        trajectories = run_episodes(
            policy, runner.source(env_name), remaining,
            EpisodeSettings(max_turns, temperature, config.max_new_tokens,
                            seed=derive_seed(seed, "error-prefixes", attempt)),
            max_concurrency=runner.concurrency(env_name),
            progress=f"{env_name} error prefixes ({attempt + 1}/{attempts})" if runner.progress else False,
        )
        for task_id, trajectory in zip(remaining, trajectories):
            if trajectory.success:
                continue
            cut = _cut(trajectory, random.Random(f"{seed}:{env_name}:{task_id}"), max_prefix_turns)
            if cut:
                steps = trajectory.steps[:cut]
                chosen[task_id] = {
                    "key": str(task_id), "task_id": task_id, "responses": [s.response for s in steps],
                    "actions": [s.action for s in steps], "source_reward": trajectory.final_reward,
                    "source_turns": len(trajectory.steps), "attempt": attempt,
                }
        remaining = [t for t in remaining if t not in chosen]
    data = {
        "env": env_name, "seed": seed, "max_turns": max_turns, "temperature": temperature, "attempts": attempts,
        "max_prefix_turns": max_prefix_turns, "prefixes": [chosen[t] for t in sorted(chosen)],
        "no_failure": sorted(remaining),
    }
    atomic_write_json(out_path, data)
    return data


def evaluate_revision(
    policy: Policy,
    env_name: str,
    prefixes_path: str | Path,
    out_dir: str | Path,
    config: EvalConfig,
    runner: Runner = Runner(),
) -> dict[str, Any]:
    """Continue from every saved erroneous prefix (replayed into the env) and report mean
    final reward x100 (and success x100, mean turns after the prefix), sampling as `config`
    says; its turn limit counts the prefix too. Resumable like `evaluate`; writes
    `<env>.revision.jsonl` and `<env>.revision.metrics.json`."""
    data = read_json(prefixes_path)
    if data.get("env") != env_name:
        raise ValueError(f"{prefixes_path}: holds prefixes for env {data.get('env')!r}, not {env_name!r}")
    out_dir = Path(out_dir)
    max_turns, temperature = config.turns(env_name), config.temperature
    settings = {"env": env_name, "max_turns": max_turns, "temperature": temperature,
                "max_new_tokens": config.max_new_tokens, "prefixes": fingerprint(prefixes_path),
                "seed": data.get("seed"), "model": getattr(policy, "model_id", None)}
    items = [(p["key"], int(p["task_id"]), p["responses"]) for p in data["prefixes"]]
    records = _resumable(policy, items, out_dir, f"{env_name}.revision", settings, runner, data.get("seed") or 0)
    metrics = {"env": env_name, **metrics_from_records(records), "max_turns": max_turns, "temperature": temperature,
               "prefix_source_reward": round(100 * _mean([p["source_reward"] for p in data["prefixes"]]), 4),
               "n_tasks_without_failure": len(data.get("no_failure", []))}
    atomic_write_json(out_dir / f"{env_name}.revision.metrics.json", metrics)
    return metrics


# --------------------------------------------------------------------------------------
# One call for notebook 04
# --------------------------------------------------------------------------------------


def error_prefix_path(prefixes_dir: str | Path, env_name: str) -> Path:
    """Where the fixed erroneous prefixes of `env_name` live (one JSON per env)."""
    return Path(prefixes_dir) / f"{env_name}.json"


def evaluate_suite(
    policy: Policy,
    env_names: Sequence[str],
    out_dir: str | Path,
    config: EvalConfig,
    seed: int = 0,
    prefixes_dir: str | Path | None = None,
    make_prefixes: bool = False,
    runner: Runner = Runner(),
) -> dict[str, Any]:
    """Notebook 04's one call. For each env: a seeded sample of `config.tasks_per_env` tasks of
    `config.split` (splits.select_tasks; one number or a mapping env -> n, as `max_turns`),
    evaluated; then, when `prefixes_dir` is given, the revision-ability protocol: the prefixes
    are made first if `make_prefixes` (the base model's run; a file already there is reused)
    and the model continues from them. Writes what `evaluate` and `evaluate_revision` write;
    returns {"metrics": summary over envs, "revision": the same for revision ability, or None}."""
    from .splits import select_tasks

    out_dir = Path(out_dir)
    for env_name in env_names:
        tasks = select_tasks(env_name, config.split, per_env(config.tasks_per_env, env_name), seed)
        kwargs = dict((runner.env_kwargs or {}).get(env_name, {}))
        # one set of envs for the evaluation, the prefixes and the revision protocol: a
        # ScienceWorld env is a JVM that takes ~3 s to start
        count = max(1, min(runner.concurrency(env_name), len(tasks)))
        envs = [make_env(env_name, **kwargs) for _ in range(count)]
        shared = replace(runner, envs=envs)
        try:
            evaluate(policy, env_name, tasks, out_dir, config, shared, seed=seed)
            if prefixes_dir:
                path = error_prefix_path(prefixes_dir, env_name)
                if make_prefixes:
                    make_error_prefixes(policy, env_name, tasks, path, config, seed=seed, runner=shared)
                if not path.exists():
                    raise FileNotFoundError(f"{path}: no erroneous prefixes for {env_name!r}; run the base model's "
                                            "evaluation with make_prefixes=True first")
                evaluate_revision(policy, env_name, path, out_dir, config, shared)
        finally:
            for env in envs:
                env.close()
    return {"metrics": load_metrics(out_dir),
            "revision": load_metrics(out_dir, kind="revision.metrics") if prefixes_dir else None}
