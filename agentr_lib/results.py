"""Read a pipeline run folder back into tidy DataFrames for the figure and table notebooks.

Only files the steps themselves wrote are read: `run.json` (the manifest: profile, envs,
methods, data modes), each evaluation's `<env>.metrics.json` / `<env>.revision.metrics.json`,
and each revision step's `summary.json`. A missing file means that step has not run; it is
skipped, and the notebooks say what is missing."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .io import read_json
from .pipeline import variants

LOOP_LENGTHS = (1, 2, 3, 4, 5)


@dataclass
class RunResults:
    meta: dict
    scores: pd.DataFrame  # method, variant, mode (M/S), iteration (0 = base), env, score, success, turns
    revision_scores: pd.DataFrame  # model, method, iteration, env, score
    loops: pd.DataFrame  # model, method, iteration, length, count
    counts: pd.DataFrame  # method, variant, iteration, env, revision, good, direct
    t_prime: pd.DataFrame  # method, iteration, env, t_prime (one row per revision trajectory)
    missing: list[str] = field(default_factory=list)


def _eval_rows(eval_dir: Path, labels: dict, envs: list[str], missing: list[str]):
    scores, revision, loops = [], [], []
    for env in envs:
        path = eval_dir / f"{env}.metrics.json"
        if not path.exists():
            missing.append(str(path))
            continue
        metrics = read_json(path)
        scores.append({**labels, "env": env, "score": metrics["mean_reward"], "success": metrics["success"],
                       "turns": metrics["mean_turns"], "n": metrics["n"]})
        for length in LOOP_LENGTHS:
            loops.append({**labels, "env": env, "length": length, "count": metrics["loops"][str(length)],
                          "n": metrics["n"]})
        revision_path = eval_dir / f"{env}.revision.metrics.json"
        if revision_path.exists():
            revision.append({**labels, "env": env, "score": read_json(revision_path)["mean_reward"]})
    return scores, revision, loops


def collect_run(run_dir: str | Path) -> RunResults:
    """Everything the figures and tables need from one run folder."""
    run_dir = Path(run_dir)
    manifest = read_json(run_dir / "run.json")
    config = manifest["config"]
    setup = manifest.get("setup", {})
    data_modes = {env: mode for env, mode in setup.get("data_modes", {}).items() if env in config["envs"]}
    meta = {"profile": config["name"], "model": config["model"], "data_modes": data_modes,
            "model_label": f"{config['model']} model" if config["model"] in ("tiny", "micro") else config["model"],
            "run": run_dir.name, "envs": list(config["envs"])}
    missing: list[str] = []
    scores, revision, loops, counts, t_prime = [], [], [], [], []
    base_labels = {"method": "base", "variant": "base", "mode": "M", "iteration": 0, "model": "base model"}
    rows = _eval_rows(run_dir / "base" / "eval", base_labels, meta["envs"], missing)
    for bucket, new in zip((scores, revision, loops), rows):
        bucket.extend(new)
    for variant, method, envs in variants(config):
        mode = "M" if envs == meta["envs"] else "S"
        for iteration in range(1, config["iterations"] + 1):
            workdir = run_dir / variant / f"iter{iteration}"
            labels = {"method": method, "variant": variant, "mode": mode, "iteration": iteration,
                      "model": f"{method} iter {iteration}" + ("" if mode == "M" else f" ({envs[0]} only)")}
            rows = _eval_rows(workdir / "eval", labels, envs, missing)
            for bucket, new in zip((scores, revision, loops), rows):
                bucket.extend(new)
            summary_path = workdir / "revision" / "summary.json"
            if not summary_path.exists():
                missing.append(str(summary_path))
                continue
            summary = read_json(summary_path)
            for row in summary["counts"]:
                counts.append({"method": method, "variant": variant, "iteration": iteration, **row})
            for env, values in summary["t_prime"].items():
                t_prime.extend({"method": method, "variant": variant, "iteration": iteration, "env": env,
                                "t_prime": value} for value in values)
    return RunResults(
        meta=meta,
        scores=pd.DataFrame(scores, columns=["method", "variant", "mode", "iteration", "model", "env", "score",
                                             "success", "turns", "n"]),
        revision_scores=pd.DataFrame(revision, columns=["method", "variant", "mode", "iteration", "model", "env",
                                                        "score"]),
        loops=pd.DataFrame(loops, columns=["method", "variant", "mode", "iteration", "model", "env", "length",
                                           "count", "n"]),
        counts=pd.DataFrame(counts, columns=["method", "variant", "iteration", "env", "revision", "good", "direct"]),
        t_prime=pd.DataFrame(t_prime, columns=["method", "variant", "iteration", "env", "t_prime"]),
        missing=missing,
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
