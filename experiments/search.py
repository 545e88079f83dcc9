"""A search on training goals outside the pipeline, for the experiments table of experiments/LOG.md:
trees with a successful leaf and time for a search size. Every setting not given on the
command line is the `tiny` profile's `mcts` section.

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
from agentr_lib.profiles import load_profile
from agentr_lib.splits import select_tasks

SEARCH = load_profile("tiny")["mcts"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", help="trees go to OUT/trees")
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--tasks", type=int, default=SEARCH["tasks_per_env"])
    parser.add_argument("--simulations", type=int, default=SEARCH["simulations"])
    parser.add_argument("--temperature", type=float, default=SEARCH["temperature"])
    parser.add_argument("--max-depth", type=int, default=SEARCH["max_depth"])
    parser.add_argument("--batch-trees", type=int, default=SEARCH["batch_trees"])
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    policy = load_policy("auto", str(model_path(args.model)))
    config = MCTSConfig(simulations=args.simulations, n_gen=SEARCH["n_gen"], temperature=args.temperature,
                        max_depth=args.max_depth, c=SEARCH["c"], seed=args.seed, restore=SEARCH["restore"],
                        max_new_tokens=SEARCH["max_new_tokens"], batch_trees=args.batch_trees)
    started = time.time()
    result = search_trees(policy, lambda: make_env("textcraft"), select_tasks("textcraft", "train", args.tasks, args.seed),
                          config, out_dir=Path(args.out) / "trees", env_name="textcraft")
    rows = tree_rows(result.trees)
    print(json.dumps({**vars(args), "trees_with_good_leaf": sum(r["success_leaves"] > 0 for r in rows),
                      "success_leaves": sum(r["success_leaves"] for r in rows), "leaves": sum(r["leaves"] for r in rows),
                      "model_calls": result.model_calls, "seconds": round(time.time() - started)}))


if __name__ == "__main__":
    main()
