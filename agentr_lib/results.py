"""Read a pipeline run folder back into tidy DataFrames for the figure and table notebooks,
and write the run's machine-readable summary, `results.json` (`write_results_json`).

Only files the steps themselves wrote are read: `run.json` (the manifest: profile, envs,
methods, data modes, each step's time), each evaluation's `<env>.metrics.json` /
`<env>.revision.metrics.json` and its per-episode `<env>.jsonl` / `<env>.revision.jsonl`
(for the bootstrap intervals over goals, `stats.py`, and the revision turns), each search's
`mcts/summary.json` and each revision step's `summary.json`, found where `layout.py` says
they are. A missing file means that step has not run; it is skipped, and the notebooks say
what is missing."""

from __future__ import annotations

import math
import textwrap
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from . import stats
from .agent import REVISION_ACTION
from .io import atomic_write_json, read_json, read_jsonl
from .layout import RunLayout, variants
from .models import EMBEDDED_MODELS

LOOP_LENGTHS = (1, 2, 3, 4, 5)
#: Scores and intervals are reported x100, rounded to this many decimals in results.json.
DECIMALS = 2


@dataclass
class RunResults:
    meta: dict
    scores: pd.DataFrame  # method, variant, mode (M/S), iteration (0 = base), env, score, success, turns
    revision_scores: pd.DataFrame  # model, method, iteration, env, score
    loops: pd.DataFrame  # model, method, iteration, length, count
    counts: pd.DataFrame  # method, variant, iteration, env, revision, good, direct
    t_prime: pd.DataFrame  # method, iteration, env, t_prime (one row per revision trajectory)
    missing: list[str] = field(default_factory=list)
    #: one row per test episode: labels, env, key, reward, success (0/1), revision_turn (0/1)
    episodes: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: one row per model: the equal-weight mean over envs (the tables' Avg) with its interval
    averages: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: one row per search (method, variant, iteration, env): trees, trees_with_success
    trees: pd.DataFrame = field(default_factory=pd.DataFrame)
    manifest: dict = field(default_factory=dict)
    #: per-episode logs that were absent or inconsistent, so their scores have no interval
    no_intervals: list[str] = field(default_factory=list)
    #: one row per fine-tuning and row kind (train_metrics.json "data.per_kind"): method,
    #: variant, iteration, kind, rows, kept, truncated, dropped, trained_tokens
    sft: pd.DataFrame = field(default_factory=pd.DataFrame)


SCORE_COLUMNS = ["method", "variant", "mode", "iteration", "model", "env", "score", "score_lo", "score_hi",
                 "success", "success_lo", "success_hi", "turns", "n"]
REVISION_COLUMNS = ["method", "variant", "mode", "iteration", "model", "env", "score", "score_lo", "score_hi"]
EPISODE_COLUMNS = ["method", "variant", "mode", "iteration", "model", "env", "key", "reward", "success",
                   "revision_turn"]
LABELS = ["method", "variant", "mode", "iteration", "model"]
SFT_COLUMNS = ["method", "variant", "iteration", "kind", "rows", "kept", "truncated", "dropped", "trained_tokens"]


def has_revision_turn(record: dict) -> bool:
    """Whether the model itself emitted the revision turn (`Action: wait`, agent.REVISION_ACTION)
    in this episode; actions replayed from a given prefix do not count."""
    actions = record.get("actions") or [step.get("action") for step in record.get("steps", [])]
    return any(isinstance(a, str) and a.strip().lower() == REVISION_ACTION
               for a in actions[record.get("prefix_len", 0):])


def _episodes(path: Path, n: int, no_intervals: list[str]) -> dict[str, dict] | None:
    """The episodes of one `<env>[.revision].jsonl` by key (the last record of a key wins, as
    in the evaluation's resume), or None when the file is absent or does not match the
    metrics' episode count (then the score is shown without an interval)."""
    if not path.exists():
        no_intervals.append(f"{path} (absent)")
        return None
    records = {str(record.get("key", record.get("task_id"))): record for record in read_jsonl(path)}
    if len(records) != n:
        warnings.warn(f"{path}: {len(records)} episodes but its metrics count {n}; no interval", stacklevel=3)
        no_intervals.append(f"{path} ({len(records)} episodes, metrics say {n})")
        return None
    return records


def _interval(values: dict[str, float]) -> tuple[float, float]:
    return stats.bootstrap_ci(values, scale=100) if values else (math.nan, math.nan)


def _eval_rows(eval_dir: Path, labels: dict, envs: list[str], missing: list[str], no_intervals: list[str]):
    scores, revision, loops, episodes = [], [], [], []
    for env in envs:
        path = eval_dir / f"{env}.metrics.json"
        if not path.exists():
            missing.append(str(path))
            continue
        metrics = read_json(path)
        records = _episodes(eval_dir / f"{env}.jsonl", metrics["n"], no_intervals) or {}
        rewards = {key: float(r["final_reward"]) for key, r in records.items()}
        successes = {key: float(bool(r["success"])) for key, r in records.items()}
        scores.append({**labels, "env": env, "score": metrics["mean_reward"], "success": metrics["success"],
                       **dict(zip(("score_lo", "score_hi"), _interval(rewards))),
                       **dict(zip(("success_lo", "success_hi"), _interval(successes))),
                       "turns": metrics["mean_turns"], "n": metrics["n"]})
        episodes.extend({**labels, "env": env, "key": key, "reward": rewards[key], "success": successes[key],
                         "revision_turn": float(has_revision_turn(record))} for key, record in records.items())
        for length in LOOP_LENGTHS:
            loops.append({**labels, "env": env, "length": length, "count": metrics["loops"][str(length)],
                          "n": metrics["n"]})
        revision_path = eval_dir / f"{env}.revision.metrics.json"
        if revision_path.exists():
            revision_metrics = read_json(revision_path)
            revision_records = _episodes(eval_dir / f"{env}.revision.jsonl", revision_metrics["n"], no_intervals) or {}
            lo, hi = _interval({key: float(r["final_reward"]) for key, r in revision_records.items()})
            revision.append({**labels, "env": env, "score": revision_metrics["mean_reward"], "score_lo": lo,
                             "score_hi": hi})
    return scores, revision, loops, episodes


def _averages(scores: pd.DataFrame, episodes: pd.DataFrame) -> pd.DataFrame:
    """Per model: the equal-weight mean over its envs of score and success (x100), with
    intervals from a bootstrap stratified by env (NaN where an env has no episode log)."""
    rows = []
    for labels, group in scores.groupby(LABELS, sort=False):
        row = dict(zip(LABELS, labels))
        row.update(score=group["score"].mean(), success=group["success"].mean(), envs=len(group))
        mine = episodes[(episodes[LABELS] == pd.Series(row)[LABELS]).all(axis=1)] if not episodes.empty else episodes
        complete = not mine.empty and set(mine["env"]) == set(group["env"])
        for column, name in (("reward", "score"), ("success", "success")):
            lo, hi = math.nan, math.nan
            if complete:
                values, strata = _goal_values(mine, column)
                lo, hi = stats.bootstrap_ci(values, strata=strata, scale=100)
            row.update({f"{name}_lo": lo, f"{name}_hi": hi})
        rows.append(row)
    return pd.DataFrame(rows, columns=[*LABELS, "envs", "score", "score_lo", "score_hi", "success", "success_lo",
                                       "success_hi"])


def _goal_values(episodes: pd.DataFrame, column: str) -> tuple[dict[str, float], dict[str, str]]:
    """Per-goal values keyed "<env>/<key>" and their strata (the env)."""
    keys = episodes["env"] + "/" + episodes["key"].astype(str)
    return dict(zip(keys, episodes[column].astype(float))), dict(zip(keys, episodes["env"]))


def collect_run(run_dir: str | Path) -> RunResults:
    """Everything the figures and tables need from one run folder."""
    run_dir = Path(run_dir)
    run = RunLayout(run_dir)
    manifest = read_json(run.manifest)
    config = manifest["config"]
    setup = manifest.get("setup", {})
    data_modes = {env: mode for env, mode in setup.get("data_modes", {}).items() if env in config["envs"]}
    meta = {"profile": config["name"], "model": config["model"], "data_modes": data_modes,
            "model_label": f"{config['model']} model" if config["model"] in EMBEDDED_MODELS else config["model"],
            "run": run_dir.name, "envs": list(config["envs"])}
    # the backend that ran (the base evaluation's sampler), not the profile's `auto`
    sampler = run.eval_sampler(run.base)
    meta["backend"] = read_json(sampler).get("backend") if sampler.exists() else config.get("backend")
    missing: list[str] = []
    no_intervals: list[str] = []
    scores, revision, loops, counts, t_prime, episodes, trees = [], [], [], [], [], [], []
    sft: list[dict] = []
    base_labels = {"method": "base", "variant": "base", "mode": "M", "iteration": 0, "model": "base model"}
    rows = _eval_rows(run.eval(run.base), base_labels, meta["envs"], missing, no_intervals)
    for bucket, new in zip((scores, revision, loops, episodes), rows):
        bucket.extend(new)
    for variant, method, envs in variants(config):
        mode = "M" if envs == meta["envs"] else "S"
        for iteration in range(1, config["iterations"] + 1):
            workdir = run.iteration(variant, iteration)
            labels = {"method": method, "variant": variant, "mode": mode, "iteration": iteration,
                      "model": f"{method} iter {iteration}" + ("" if mode == "M" else f" ({envs[0]} only)")}
            rows = _eval_rows(run.eval(workdir), labels, envs, missing, no_intervals)
            for bucket, new in zip((scores, revision, loops, episodes), rows):
                bucket.extend(new)
            shared = run.shares_first_search(envs, meta["envs"], iteration)
            search_path = run.search_summary(run.search_workdir(variant, iteration, shared))
            if search_path.exists():
                for row in [r for r in read_json(search_path).get("per_env", []) if r["env"] in envs]:
                    trees.append({"method": method, "variant": variant, "iteration": iteration, "env": row["env"],
                                  "trees": row["trees"], "trees_with_success": row["trees_with_success"]})
            sft_path = run.train_metrics(workdir)
            if sft_path.exists():
                for kind, row in read_json(sft_path).get("data", {}).get("per_kind", {}).items():
                    sft.append({"method": method, "variant": variant, "iteration": iteration, "kind": kind,
                                **{key: row.get(key, 0) for key in SFT_COLUMNS[4:]}})
            summary_path = run.revision_summary(workdir)
            if not summary_path.exists():
                missing.append(str(summary_path))
                continue
            summary = read_json(summary_path)
            for row in summary["counts"]:
                counts.append({"method": method, "variant": variant, "iteration": iteration, **row})
            for env, values in summary["t_prime"].items():
                t_prime.extend({"method": method, "variant": variant, "iteration": iteration, "env": env,
                                "t_prime": value} for value in values)
    scores_frame = pd.DataFrame(scores, columns=SCORE_COLUMNS)
    episodes_frame = pd.DataFrame(episodes, columns=EPISODE_COLUMNS)
    return RunResults(
        meta=meta,
        scores=scores_frame,
        revision_scores=pd.DataFrame(revision, columns=REVISION_COLUMNS),
        loops=pd.DataFrame(loops, columns=["method", "variant", "mode", "iteration", "model", "env", "length",
                                           "count", "n"]),
        counts=pd.DataFrame(counts, columns=["method", "variant", "iteration", "env", "revision", "good", "direct"]),
        t_prime=pd.DataFrame(t_prime, columns=["method", "variant", "iteration", "env", "t_prime"]),
        missing=missing,
        episodes=episodes_frame,
        averages=_averages(scores_frame, episodes_frame),
        trees=pd.DataFrame(trees, columns=["method", "variant", "iteration", "env", "trees", "trees_with_success"]),
        manifest=manifest,
        no_intervals=no_intervals,
        sft=pd.DataFrame(sft, columns=SFT_COLUMNS),
    )


def loops_per_model(loops: pd.DataFrame) -> pd.DataFrame:
    """Mean repetitions per trajectory by block length, pooled over envs (weighted by episodes),
    one series per model in the paper's order (base, then iterations)."""
    if loops.empty:
        return loops
    weighted = loops.assign(total=loops["count"] * loops["n"])
    pooled = weighted.groupby(["model", "method", "iteration", "length"], as_index=False)[["total", "n"]].sum()
    pooled["count"] = pooled["total"] / pooled["n"]
    return pooled.sort_values(["iteration", "method", "length"])[["model", "method", "iteration", "length", "count"]]


# --------------------------------------------------------------------------------------
# results.json: the one machine-readable summary of a run (the README's tables come from it)
# --------------------------------------------------------------------------------------


def _num(value: Any) -> float | None:
    """Rounded x100 number for JSON; None for missing / NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return round(float(value), DECIMALS)


def _pair(lo: Any, hi: Any) -> list[float] | None:
    lo, hi = _num(lo), _num(hi)
    return None if lo is None or hi is None else [lo, hi]


def step_minutes(steps: dict[str, dict]) -> dict[str, float]:
    """Minutes from the manifest's step records: `build` is the set-up step (notebook 00, which
    builds and scores the embedded model when it is not cached), `search` / `sft` / `eval`
    the steps of those kinds, `total` every recorded step (revision builds and figures
    included; the environment install of `make reproduce` is not a step and not counted)."""
    totals = {"total": 0.0, "build": 0.0, "search": 0.0, "sft": 0.0, "eval": 0.0}
    for key, record in steps.items():
        seconds = record.get("seconds")
        if seconds is None:
            continue
        totals["total"] += seconds
        kind = "build" if key == "setup" else {"mcts": "search", "sft": "sft", "eval": "eval"}.get(key.rsplit("/", 1)[-1])
        if kind:
            totals[kind] += seconds
    return {name: round(seconds / 60, 2) for name, seconds in totals.items()}


def _model_rows(frame: pd.DataFrame, variant: str, iteration: int) -> pd.DataFrame:
    if frame.empty:
        return frame
    return frame[(frame["variant"] == variant) & (frame["iteration"] == iteration)]


def _per_goal(episodes: pd.DataFrame, variant: str, iteration: int, column: str = "success"):
    mine = _model_rows(episodes, variant, iteration)
    return _goal_values(mine, column) if not mine.empty else (None, None)


def results_summary(results: RunResults) -> dict[str, Any]:
    """The schema of issue 16 (success and intervals x100, success = the equal-weight mean
    over the run's envs, intervals over goals stratified by env):

    {"profile", "model", "backend", "test_goals", "base": {"success", "ci95", "revision_ability"},
     "runs": [{"method", "iteration", "success", "ci95", "delta_vs_base", "delta_ci95",
               "revision_ability", "episodes_with_revision_turn", "recovered_after_revision",
               "loops": {"1": ...}, "trees_with_good_leaf", "trees", "revision", "good"}],
     "minutes": {"total", "build", "search", "sft", "eval"}}

    `runs` holds the multi-task models (the single-task ones of Table 6 are not summarised).
    `delta_ci95` is the paired bootstrap interval of (model - base) on the same goals.
    `revision_ability` is the mean final score x100 from the fixed erroneous prefixes
    (Table 3). `revision` counts the revision trajectories trained on: Agent-R's spliced
    ones, or Direct-Revision's direct ones (0 for good-only). A value that the run's logs cannot give (a step not run, no per-episode log)
    is null. Runs on more than one env add "per_env": {env: {"success", "ci95", ...}}."""
    meta, averages = results.meta, results.averages
    multi_env = len(meta["envs"]) > 1

    def average(variant: str, iteration: int) -> dict | None:
        rows = _model_rows(averages, variant, iteration)
        return rows.iloc[0].to_dict() if not rows.empty else None

    def revision_ability(variant: str, iteration: int) -> float | None:
        rows = _model_rows(results.revision_scores, variant, iteration)
        return _num(rows["score"].mean()) if not rows.empty else None

    base_values, strata = _per_goal(results.episodes, "base", 0)
    base_avg = average("base", 0)

    def per_env(variant: str, iteration: int) -> dict:
        out = {}
        for _, row in _model_rows(results.scores, variant, iteration).iterrows():
            entry = {"success": _num(row["success"]), "ci95": _pair(row["success_lo"], row["success_hi"])}
            if variant != "base":
                base_row = _model_rows(results.scores, "base", 0)
                base_row = base_row[base_row["env"] == row["env"]]
                entry["delta_vs_base"] = (_num(row["success"] - base_row["success"].iloc[0])
                                          if not base_row.empty else None)
                mine, _ = _per_goal(results.episodes[results.episodes["env"] == row["env"]], variant, iteration)
                theirs, _ = _per_goal(results.episodes[results.episodes["env"] == row["env"]], "base", 0)
                entry["delta_ci95"] = (_pair(*stats.paired_bootstrap_ci(mine, theirs, scale=100))
                                       if mine and theirs else None)
            out[row["env"]] = entry
        return out

    base = {"success": _num(base_avg["success"]) if base_avg else None,
            "ci95": _pair(base_avg["success_lo"], base_avg["success_hi"]) if base_avg else None,
            "revision_ability": revision_ability("base", 0)}
    if multi_env:
        base["per_env"] = per_env("base", 0)

    runs = []
    multi = results.scores[(results.scores["mode"] == "M") & (results.scores["iteration"] > 0)]
    for (variant, method, iteration), _ in multi.groupby(["variant", "method", "iteration"], sort=False):
        avg = average(variant, iteration)
        values, _ = _per_goal(results.episodes, variant, iteration)
        delta_ci = None
        if values is not None and base_values is not None:
            delta_ci = _pair(*stats.paired_bootstrap_ci(values, base_values, strata=strata, scale=100))
        episodes = _model_rows(results.episodes, variant, iteration)
        revised = episodes[episodes["revision_turn"] > 0] if not episodes.empty else episodes
        loops = loops_per_model(_model_rows(results.loops, variant, iteration))
        trees = _model_rows(results.trees, variant, iteration)
        counts = _model_rows(results.counts, variant, iteration)
        run = {
            "method": method, "iteration": int(iteration),
            "success": _num(avg["success"]), "ci95": _pair(avg["success_lo"], avg["success_hi"]),
            "delta_vs_base": _num(avg["success"] - base_avg["success"]) if base_avg else None,
            "delta_ci95": delta_ci,
            "revision_ability": revision_ability(variant, iteration),
            "episodes_with_revision_turn": int(len(revised)) if not episodes.empty else None,
            "recovered_after_revision": int(revised["success"].sum()) if not episodes.empty else None,
            "loops": {str(int(r["length"])): _num(r["count"]) for _, r in loops.iterrows()},
            "trees_with_good_leaf": int(trees["trees_with_success"].sum()) if not trees.empty else None,
            "trees": int(trees["trees"].sum()) if not trees.empty else None,
            "revision": int(counts["revision"].sum() + counts["direct"].sum()) if not counts.empty else None,
            "good": int(counts["good"].sum()) if not counts.empty else None,
        }
        if multi_env:
            run["per_env"] = per_env(variant, iteration)
        runs.append(run)
    base_scores = _model_rows(results.scores, "base", 0)
    return {
        "profile": meta["profile"], "model": meta["model"], "backend": meta.get("backend"),
        "test_goals": int(base_scores["n"].sum()) if not base_scores.empty else None,
        "base": base, "runs": runs, "minutes": step_minutes(results.manifest.get("steps", {})),
    }


def write_results_json(run_dir: str | Path, figures_dir: str | Path, results: RunResults | None = None) -> Path:
    """Write `<figures_dir>/results.json` (atomically) from the run folder's logs; notebook 14,
    the pipeline's last step, calls this. Returns the path."""
    results = results if results is not None else collect_run(run_dir)
    return atomic_write_json(Path(figures_dir) / "results.json", results_summary(results))


# --------------------------------------------------------------------------------------
# The README's results tables, generated from results.json
# --------------------------------------------------------------------------------------

README_BEGIN = "<!-- results:begin (generated from results.json by python -m agentr_lib.results; do not edit) -->"
README_END = "<!-- results:end -->"
METHOD_NAMES = {"agent_r": "Agent-R (revision + good)", "direct_revision": "Direct-Revision + good",
                "good_only": "good only"}
ENV_NAMES_TITLE = {"textcraft": "TextCraft", "sciworld": "SciWorld", "webshop": "WebShop"}
PAPER_RESULTS_PATH = Path(__file__).resolve().parents[1] / "data" / "paper_results.json"


def _cell(value: float | None, interval: list[float] | None = None, signed: bool = False) -> str:
    if value is None:
        return "-"
    text = f"{value:+.1f}" if signed else f"{value:.1f}"
    return text + (f" [{interval[0]:.1f}, {interval[1]:.1f}]" if interval else "")


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _profile_envs(profile: str | None) -> list[str] | None:
    """A one-env results.json names no env (the schema has none): take the profile's."""
    from .profiles import load_profile

    try:
        return list(load_profile(profile)["envs"]) if profile else None
    except Exception:  # a profile file that is gone or renamed: the tables just say less
        return None


def readme_tables(summary: dict, paper: dict | None = None, envs: list[str] | None = None) -> str:
    """Markdown tables of one results.json: success per method and iteration with its 95%
    interval (and the paper's values for the same env), each model's difference from the
    base model with its paired interval, what each iteration searched, trained on and did at
    test time, and the time per kind of step. Every number is read from `summary`."""
    runs = summary["runs"]
    methods = list(dict.fromkeys(run["method"] for run in runs))
    iterations = sorted({run["iteration"] for run in runs})
    by_key = {(run["method"], run["iteration"]): run for run in runs}
    envs = envs or sorted(summary["base"].get("per_env", {})) or _profile_envs(summary.get("profile"))
    subject = (ENV_NAMES_TITLE.get(envs[0], envs[0]) if envs and len(envs) == 1
               else "mean over environments," if envs else "")
    goals = summary.get("test_goals")
    head = [f"{subject} success (x100) [95% interval over {goals} test goals]".strip(), "base",
            *[f"iter {k}" for k in iterations]]
    lines = [_row(head), _row(["---"] * len(head))]
    base = summary["base"]
    for method in methods:
        lines.append(_row([METHOD_NAMES.get(method, method), _cell(base["success"], base["ci95"]),
                           *[_cell(by_key[(method, k)]["success"], by_key[(method, k)]["ci95"])
                             if (method, k) in by_key else "-" for k in iterations]]))
    if paper and envs:
        column = envs[0] if len(envs) == 1 else "average"
        paper_base = paper["table2_main"].get("Llama-3.1-8B-Instruct", {}).get(column)
        for method in methods:
            values = {row["iteration"]: row.get(column) for row in paper["table6_single_vs_multi"]
                      if row["method"] == method and row["mode"] == "M"}
            if values:
                lines.append(_row([f"paper, Llama-3.1-8B, {METHOD_NAMES.get(method, method)} (multi-task)",
                                   _cell(paper_base), *[_cell(values.get(k)) for k in iterations]]))
    lines += ["", _row(["difference from the base model (x100) [paired 95% interval]",
                        *[f"iter {k}" for k in iterations]]), _row(["---"] * (len(iterations) + 1))]
    for method in methods:
        lines.append(_row([METHOD_NAMES.get(method, method),
                           *[_cell(by_key[(method, k)]["delta_vs_base"], by_key[(method, k)]["delta_ci95"], signed=True)
                             if (method, k) in by_key else "-" for k in iterations]]))

    def per_run(label: str, fmt) -> list[str]:
        out = []
        for method in methods:
            out.append(_row([f"{METHOD_NAMES.get(method, method)}: {label}",
                             *[fmt(by_key[(method, k)]) if (method, k) in by_key else "-" for k in iterations]]))
        return out

    def fraction(a: Any, b: Any) -> str:
        return "-" if a is None or b is None else f"{a} / {b}"

    lines += ["", _row(["per iteration", *[f"iter {k}" for k in iterations]]),
              _row(["---"] * (len(iterations) + 1))]
    lines += per_run("search trees with a successful leaf / trees",
                     lambda r: fraction(r["trees_with_good_leaf"], r["trees"]))
    lines += per_run("revision / good trajectories", lambda r: fraction(r["revision"], r["good"]))
    lines += per_run(f"revision ability (base model {_cell(base['revision_ability'])})",
                     lambda r: _cell(r["revision_ability"]))
    lines += per_run("test episodes with the revision turn / of them successful",
                     lambda r: fraction(r["episodes_with_revision_turn"], r["recovered_after_revision"]))
    lines += per_run("loops of length 1 per trajectory", lambda r: f"{r['loops']['1']:.2f}"
                     if r["loops"].get("1") is not None else "-")
    minutes = summary["minutes"]
    # prose wrapped at 100 characters: the README allows long lines only in tables
    lines += ["", textwrap.fill(
        f"Time from the run's manifest: {minutes['total']:.1f} min over all steps (set-up and model "
        f"build {minutes['build']:.1f}, search {minutes['search']:.1f}, fine-tuning {minutes['sft']:.1f}, "
        f"evaluation {minutes['eval']:.1f}); profile `{summary['profile']}`, model `{summary['model']}`, "
        f"backend `{summary['backend']}`.", width=100, break_long_words=False, break_on_hyphens=False)]
    return "\n".join(lines) + "\n"


def update_readme(readme: str | Path, results_path: str | Path, envs: list[str] | None = None) -> Path:
    """Replace the README's block between README_BEGIN and README_END with the tables of
    `results_path` (so the README's numbers come from one machine-readable file)."""
    readme, text = Path(readme), Path(readme).read_text(encoding="utf-8")
    begin, end = text.find(README_BEGIN), text.find(README_END)
    if begin < 0 or end < begin:
        raise ValueError(f"{readme}: no generated-results block; put the two lines\n{README_BEGIN}\n{README_END}\n"
                         "where the tables go")
    paper = read_json(PAPER_RESULTS_PATH) if PAPER_RESULTS_PATH.exists() else None
    tables = readme_tables(read_json(results_path), paper, envs)
    new = text[:begin + len(README_BEGIN)] + "\n" + tables + text[end:]
    from .io import atomic_write_text

    return atomic_write_text(readme, new)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m agentr_lib.results",
                                     description="Print (or write into the README) the results tables of a "
                                                 "results.json, e.g. figures/tiny/results.json.")
    parser.add_argument("results", help="a results.json written by notebook 14")
    parser.add_argument("--readme", help="rewrite this file's generated-results block instead of printing")
    parser.add_argument("--envs", help="comma list of the run's envs (default: from results.json, or for a "
                                       "one-env run its profile's)")
    args = parser.parse_args(argv)
    envs = args.envs.split(",") if args.envs else None
    if args.readme:
        print("wrote", update_readme(args.readme, args.results, envs))
    else:
        paper = read_json(PAPER_RESULTS_PATH) if PAPER_RESULTS_PATH.exists() else None
        print(readme_tables(read_json(args.results), paper, envs), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
