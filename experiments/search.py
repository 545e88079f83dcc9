"""A search on training goals outside the pipeline, for the README's experiments table:
trees with a successful leaf and time for a search size.

    python experiments/search.py runs/exp/s128x6 --tasks 128 --simulations 6 --batch-trees 64
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from agentr_lib.envs import make_env
from agentr_lib.layout import model_path
from agentr_lib.llm import load_policy
from agentr_lib.mcts import MCTSConfig, search_trees, tree_rows
from agentr_lib.splits import select_tasks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", help="trees go to OUT/trees")
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--tasks", type=int, default=128)
    parser.add_argument("--simulations", type=int, default=6)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--max-depth", type=int, default=8)
    parser.add_argument("--batch-trees", type=int, default=64)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    policy = load_policy("auto", str(model_path(args.model)))
    config = MCTSConfig(simulations=args.simulations, n_gen=4, temperature=args.temperature, max_depth=args.max_depth,
                        c=0.25, seed=args.seed, restore="snapshot", max_new_tokens=96, batch_trees=args.batch_trees)
    started = time.time()
    result = search_trees(policy, lambda: make_env("textcraft"), select_tasks("textcraft", "train", args.tasks, args.seed),
                          config, out_dir=Path(args.out) / "trees", env_name="textcraft")
    rows = tree_rows(result.trees)
    print(json.dumps({**vars(args), "trees_with_good_leaf": sum(r["success_leaves"] > 0 for r in rows),
                      "success_leaves": sum(r["success_leaves"] for r in rows), "leaves": sum(r["leaves"] for r in rows),
                      "model_calls": result.model_calls, "seconds": round(time.time() - started)}))


if __name__ == "__main__":
    main()
