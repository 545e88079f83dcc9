"""Issue 32's size sweep: one row per embedded model of what its greedy evaluation on the 50
validation goals says about its capacity to revise:

    python experiments/size_sweep.py tiny-disjoint tiny-disjoint-5m --out-dir data/runs/size-sweep \
        --results experiments/results/size_sweep.json

Each model is evaluated with the `tiny` profile's eval settings on `eval.split=val` (stages.evaluate:
resumable, episodes under OUT_DIR/<model>/); the FIRST model's evaluation also samples the erroneous
prefixes of the revision-ability protocol, and every model continues from those same prefixes.
Per model: greedy success with its 95% interval over goals; how often the first thought names the
goal right (the expert's first thought starts "I need to craft <goal>.": a model that cannot read
the goal has no recipe to revise to); malformed replies and loops of length 1 per episode; revision
ability (success from the shared prefixes); parameters and build minutes from the model's card.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agentr_lib import stages, stats  # noqa: E402
from agentr_lib.evaluate import EvalConfig  # noqa: E402
from agentr_lib.io import atomic_write_json, read_json, read_jsonl  # noqa: E402
from agentr_lib.layout import model_path  # noqa: E402
from agentr_lib.run_config import load_run_config  # noqa: E402

ENV = "textcraft"
GOAL = re.compile(r"Goal: craft (.+?)\.\s*$", re.M)


def episodes(path: Path) -> list[dict]:
    """The JSONL's episodes, one per goal (keyed as the evaluator keys them)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no episodes; run the base evaluation first (see this script's docstring)")
    return read_jsonl(path)


def names_goal(episode: dict) -> bool:
    """Whether the first reply's thought names the episode's goal as the expert's does."""
    goal = GOAL.search(episode["first_observation"])
    if goal is None:
        raise ValueError(f"episode {episode['key']}: no 'Goal: craft ...' line in its first observation")
    first = episode["steps"][0]["response"] if episode["steps"] else ""
    return f"I need to craft {goal.group(1)}." in first


def percent_with_ci(values: dict[str, float]) -> dict:
    lo, hi = stats.bootstrap_ci(values, scale=100.0)
    return {"value": round(stats.mean(values, scale=100.0), 1), "ci95": [round(lo, 1), round(hi, 1)], "n": len(values)}


#: the per-goal measurements the sweep compares across sizes, paired on the same goals / prefixes
PAIRED = ("val_success", "goal_named_first_thought", "revision_ability")


def per_goal(evaluated: Path) -> dict[str, dict[str, float]]:
    """Each PAIRED measurement of one evaluation folder, goal (or prefix) key -> 0/1."""
    test = episodes(evaluated / f"{ENV}.jsonl")
    revised = episodes(evaluated / f"{ENV}.revision.jsonl")
    return {"val_success": {e["key"]: float(e["success"]) for e in test},
            "goal_named_first_thought": {e["key"]: float(names_goal(e)) for e in test},
            "revision_ability": {e["key"]: float(e["success"]) for e in revised}}


def row(model: str, evaluated: Path, reference: Path | None = None) -> dict:
    """The sweep's measurements of one model's evaluation folder; with `reference` (the first
    model's folder), each PAIRED measurement minus the reference's, with its paired interval."""
    test = episodes(evaluated / f"{ENV}.jsonl")
    card_path = Path(model_path(model)) / "model_card.json"
    card = read_json(card_path) if card_path.is_file() else {}
    values = per_goal(evaluated)
    result = {"model": model, "params": card.get("params"), "build_minutes": card.get("build_minutes"),
              **{name: percent_with_ci(values[name]) for name in PAIRED},
              "malformed_per_episode": round(sum(e["parse_failures"] for e in test) / len(test), 2),
              "loops_1_per_episode": round(sum(e["loops"]["1"] for e in test) / len(test), 2)}
    if reference is not None:
        base = per_goal(reference)
        result["minus_reference"] = {
            name: {"value": round(stats.mean(values[name], scale=100.0) - stats.mean(base[name], scale=100.0), 1),
                   "ci95": [round(x, 1) for x in stats.paired_bootstrap_ci(values[name], base[name], scale=100.0)]}
            for name in PAIRED}
    return result


def evaluate_model(model: str, out_dir: Path, prefixes: Path, make_prefixes: bool) -> Path:
    """The tiny profile's evaluation of `model` on the validation goals, with the shared prefixes."""
    config = load_run_config("tiny", {"eval.split": "val"})
    evaluated = out_dir / model
    stages.evaluate(config.stage(EvalConfig), stages.PolicySpec(model, config.value("backend")), [ENV], evaluated,
                    seed=config.value("seed"), prefixes_dir=prefixes, make_prefixes=make_prefixes)
    return evaluated


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", help="embedded model names; the first one's evaluation makes the prefixes")
    parser.add_argument("--out-dir", type=Path, required=True, help="evaluation folders, one per model (resumable)")
    parser.add_argument("--results", type=Path, required=True, help="results JSON to write (atomically)")
    args = parser.parse_args(argv)
    prefixes = args.out_dir / args.models[0] / "error_prefixes"
    folders = [evaluate_model(model, args.out_dir, prefixes, make_prefixes=i == 0) for i, model in enumerate(args.models)]
    rows = [row(model, folder, None if i == 0 else folders[0]) for i, (model, folder) in enumerate(zip(args.models, folders))]
    atomic_write_json(args.results, {"env": ENV, "split": "val", "prefixes_from": args.models[0],
                                     "profile_eval": "tiny", "rows": rows})
    print("| model | params | val success % [95% CI] | goal named in 1st thought % | malformed / ep. | "
          "loops of 1 / ep. | revision ability % [95% CI] | build min |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        s, g, v = r["val_success"], r["goal_named_first_thought"], r["revision_ability"]
        print(f"| {r['model']} | {r['params'] or '?'} | {s['value']} {s['ci95']} | {g['value']} {g['ci95']} | "
              f"{r['malformed_per_episode']} | {r['loops_1_per_episode']} | {v['value']} {v['ci95']} (n {v['n']}) | "
              f"{r['build_minutes']} |")
    for r in rows[1:]:
        print(f"{r['model']} minus {rows[0]['model']} (paired): " + "; ".join(
            f"{name} {d['value']:+} {d['ci95']}" for name, d in r["minus_reference"].items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
