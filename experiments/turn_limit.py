"""Success within 10, 15 and 20 turns of every model of a pipeline run (experiments table, experiments/LOG.md),
read off its greedy TextCraft episodes: a greedy episode's first k turns are those of a k-turn
evaluation, so one run at 20 turns answers "would a longer limit let the revising agent
recover?". Each model is paired against the base model, and every method against every other
at the same iteration, on the same goals.

    python experiments/turn_limit.py data/runs/tiny-val20 > experiments/results/turn_limit.json
"""

from __future__ import annotations

import argparse
import json
from itertools import combinations
from pathlib import Path

from agentr_lib.agent import REVISION_ACTION
from agentr_lib.io import read_jsonl
from agentr_lib.layout import RunLayout
from agentr_lib.results import has_revision_turn
from agentr_lib.stats import bootstrap_ci, paired_bootstrap_ci

LIMITS = (10, 15, 20)


def success_within(episodes: dict[str, dict], turns: int) -> dict[str, float]:
    return {goal: float(bool(e["success"]) and e["num_turns"] <= turns) for goal, e in episodes.items()}


def score(values: dict[str, float]) -> float:
    return round(100 * sum(values.values()) / len(values), 1)


def paired(a: dict[str, float], b: dict[str, float]) -> list[float]:
    lo, hi = paired_bootstrap_ci(a, b, scale=100)
    return [round(score(a) - score(b), 1), round(lo, 1), round(hi, 1)]


def first_revision(episode: dict) -> int:
    return next(i for i, a in enumerate(episode["actions"]) if isinstance(a, str) and a.strip().lower() == REVISION_ACTION)


def turn_limits(run_dir: Path) -> dict:
    """Every model's success within each of LIMITS turns, paired against the base model, and
    every pair of methods at each iteration paired at 10 turns."""
    run = RunLayout(run_dir)
    config = json.loads(run.manifest.read_text())["config"]
    models = {"base": run.base}
    for method in config["methods"]:
        for iteration in range(1, config["iterations"] + 1):
            models[f"{method} {iteration}"] = run.iteration(method, iteration)
    episodes = {name: {e["key"]: e for e in read_jsonl(run.eval(workdir) / "textcraft.jsonl")}
                for name, workdir in models.items()}
    out: dict = {"run": str(run.run_dir), "models": [], "methods_paired": []}
    for name, eps in episodes.items():
        row: dict = {"model": name, "goals": len(eps)}
        for k in LIMITS:
            values = success_within(eps, k)
            lo, hi = bootstrap_ci(values, scale=100)
            row[f"success@{k}"] = [score(values), round(lo, 1), round(hi, 1)]
            if name != "base":
                row[f"vs_base@{k}"] = paired(values, success_within(episodes["base"], k))
        revised = [e for e in eps.values() if has_revision_turn(e)]
        row.update(revised=len(revised), recovered=sum(bool(e["success"]) for e in revised),
                   first_revision_after_turn_10=sum(first_revision(e) >= 10 for e in revised))
        out["models"].append(row)
    for iteration in range(1, config["iterations"] + 1):
        for a, b in combinations(config["methods"], 2):
            out["methods_paired"].append({"iteration": iteration, "a": a, "b": b, "a_minus_b@10": paired(
                success_within(episodes[f"{a} {iteration}"], 10), success_within(episodes[f"{b} {iteration}"], 10))})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path)
    print(json.dumps(turn_limits(parser.parse_args().run_dir), indent=1))


if __name__ == "__main__":
    main()
