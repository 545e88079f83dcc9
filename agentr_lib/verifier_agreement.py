"""How the `model` verifier's verdicts compare with the value verifier's on the same pairs.

Why: the paper lets the actor judge its own steps; this project's CPU default reads the first
error off the search's values instead. A run with `revision.verifier: model` records each
judged step (revision.model_verifier); replaying the same pair sampling on the same trees with
the value verifier shows whether the two agree on where the bad path went wrong -- per judged
step (Bad vs a mean value below alpha) and per pair (the same t'). The pairs are rebuilt by
`make_pairs` with the settings notebook 02 ran with (read from its executed copy), so they are
exactly the pairs the model judged; each is checked against its row's task id.

    python -m agentr_lib.verifier_agreement data/runs/smol-iter1 [--iteration 1] [--out FILE]
"""

from __future__ import annotations

import argparse
import ast
import json
import random
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from .io import atomic_write_json
from .mcts import load_trees
from .revision import is_good, load_dataset, lost_by_value, make_pairs, value_verifier


def notebook_parameters(notebook: str | Path) -> dict[str, Any]:
    """The parameters papermill injected into an executed notebook (its `injected-parameters` cell)."""
    cells = json.loads(Path(notebook).read_text())["cells"]
    injected = [c for c in cells if "injected-parameters" in c.get("metadata", {}).get("tags", [])]
    if not injected:
        raise ValueError(f"{notebook}: no injected-parameters cell (not a notebook the pipeline ran)")
    values: dict[str, Any] = {}
    for node in ast.parse("".join(injected[0]["source"])).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            values[node.targets[0].id] = ast.literal_eval(node.value)
    return values


def agreement(run_dir: str | Path, iteration: int = 1) -> dict[str, Any]:
    """Per-step and per-pair agreement of the model verifier's verdicts in `agent_r/iter<k>`
    with the value verifier's (rule "mean") on the same pairs of the same trees."""
    step_dir = Path(run_dir) / "agent_r" / f"iter{iteration}"
    params = notebook_parameters(step_dir / "02_revision_construction.ipynb")
    if params.get("VERIFIER") != "model":
        raise ValueError(f"{step_dir}: revision ran with verifier {params.get('VERIFIER')!r}, not 'model'")
    alpha = params["ALPHA"][iteration - 1] if isinstance(params["ALPHA"], list) else params["ALPHA"]
    trees = load_trees(Path(params["TREES_DIR"]))
    # the same rng draws as build_rows: good-row caps are not set in these runs, so pairs come first
    rng = random.Random(params["SEED"])
    pairs = [pair for tree in trees for pair in make_pairs(tree, alpha, params["BETA"], params["MAX_PAIRS_PER_TREE"], rng)]
    rows = [row for row in load_dataset(step_dir / "revision" / "dataset") if row["kind"] == "revision"]
    if len(rows) != len(pairs):
        raise ValueError(f"{step_dir}: {len(rows)} revision rows but {len(pairs)} pairs rebuilt from {params['TREES_DIR']}")
    steps: Counter = Counter()  # (model verdict, value says lost) per judged step, each step once
    seen: set[tuple] = set()
    same_t, t_diffs = 0, []
    for pair, row in zip(pairs, rows):
        if row["task_id"] != pair.tree.task_id:
            raise ValueError(f"{step_dir}: row for task {row['task_id']} matched with a pair of task {pair.tree.task_id}")
        value = value_verifier(pair, alpha, "mean")
        same_t += value.t_prime == row["t_prime"]
        t_diffs.append(row["t_prime"] - value.t_prime)
        for judgment in json.loads(row["judgments"]):
            key = (row["task_id"], judgment["node"])
            if key in seen:
                continue
            seen.add(key)
            node = pair.bad_steps[judgment["step"] - 1]
            verdict = judgment["judgment"] if judgment.get("parsed", True) else "unparsed"
            steps[(verdict, "lost" if lost_by_value(node, alpha) else "not lost")] += 1
    judged_bad_or_good = sum(n for (v, _), n in steps.items() if v in ("Good", "Bad"))
    agreeing = steps[("Bad", "lost")] + steps[("Good", "not lost")]
    return {
        "run": str(run_dir), "iteration": iteration, "alpha": alpha, "pairs": len(pairs),
        "steps": {f"{v} / value {lost}": n for (v, lost), n in sorted(steps.items())},
        "steps_judged": sum(steps.values()),
        "steps_with_a_verdict": judged_bad_or_good,
        "step_agreement": agreeing / judged_bad_or_good if judged_bad_or_good else None,
        "value_says_lost": sum(n for (_, lost), n in steps.items() if lost == "lost"),
        "pairs_same_t_prime": same_t,
        "t_prime_model_minus_value": dict(sorted(Counter(t_diffs).items())),
        "good_leaves_at_alpha": sum(is_good(p.good.score, alpha) for p in pairs),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--iteration", type=int, default=1)
    parser.add_argument("--out", help="write the result as JSON here too")
    args = parser.parse_args(argv)
    try:
        result = agreement(args.run_dir, args.iteration)
    except (OSError, ValueError, KeyError) as error:
        print(f"verifier_agreement: {error}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=1))
    if args.out:
        atomic_write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
