"""Paired comparison of pipeline runs that differ in one setting (experiments table, experiments/LOG.md):
every model of each variant run against the same model (method, iteration) of a reference
run, on the same goals, with the paired bootstrap 95% interval of the difference. Runs of
one machine share their setup, base model and (where the setting is downstream of it) the
first search, so a difference is the setting's effect, not the sampler's luck.

    python experiments/compare_runs.py data/runs/tiny-val20 data/runs/tiny-val20-pairs1 ...
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from agentr_lib.io import read_jsonl
from agentr_lib.layout import RunLayout
from agentr_lib.results import has_revision_turn
from agentr_lib.stats import bootstrap_ci, paired_bootstrap_ci


def run_models(run_dir: Path) -> dict[str, dict[str, dict]]:
    """'base' and '<method> <iteration>' -> {goal key: greedy TextCraft episode}, for every
    model whose evaluation finished."""
    run = RunLayout(run_dir)
    config = json.loads(run.manifest.read_text())["config"]
    workdirs = {"base": run.base}
    for method in config["methods"]:
        for iteration in range(1, config["iterations"] + 1):
            workdirs[f"{method} {iteration}"] = run.iteration(method, iteration)
    models = {}
    for name, workdir in workdirs.items():
        episodes = run.eval(workdir) / "textcraft.jsonl"
        if episodes.exists():
            models[name] = {e["key"]: e for e in read_jsonl(episodes)}
    return models


def success(episodes: dict[str, dict]) -> dict[str, float]:
    return {goal: float(bool(e["success"])) for goal, e in episodes.items()}


def compare(reference: Path, variants: list[Path]) -> dict:
    ref = run_models(reference)
    out: dict = {"reference": str(reference), "variants": []}
    for variant in [reference, *variants]:
        models = run_models(variant)
        entry: dict = {"run": str(variant), "models": []}
        for name, episodes in models.items():
            values = success(episodes)
            lo, hi = bootstrap_ci(values, scale=100)
            row: dict = {"model": name, "goals": len(values),
                         "success": [round(100 * sum(values.values()) / len(values), 1), round(lo, 1), round(hi, 1)],
                         "revised": sum(has_revision_turn(e) for e in episodes.values()),
                         "recovered": sum(has_revision_turn(e) and bool(e["success"]) for e in episodes.values())}
            if name != "base":
                base = success(models["base"])
                row["vs_base"] = _paired(values, base)
            if variant != reference and name in ref:
                if set(ref[name]) != set(episodes):
                    raise ValueError(f"{variant} and {reference} evaluated {name} on different goals")
                row["vs_reference"] = _paired(values, success(ref[name]))
            entry["models"].append(row)
        out["variants"].append(entry)
    return out


def _paired(a: dict[str, float], b: dict[str, float]) -> list[float]:
    lo, hi = paired_bootstrap_ci(a, b, scale=100)
    diff = 100 * (sum(a.values()) - sum(b[k] for k in a)) / len(a)
    return [round(diff, 1), round(lo, 1), round(hi, 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("reference", type=Path)
    parser.add_argument("variants", type=Path, nargs="*")
    args = parser.parse_args()
    print(json.dumps(compare(args.reference, args.variants), indent=1))


if __name__ == "__main__":
    main()
