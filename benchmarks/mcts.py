"""MCTS cost benchmark on TextCraft with a scripted stochastic policy (no language model):

1. environment steps per simulation, snapshot vs replay restore, at max depth 5 / 10 / 15
   (replay = reset + the whole action prefix before every child: the reference's quadratic
   behaviour; snapshot = one step per child);
2. model calls, trees batched together vs searched one at a time (same trees, same number of
   conversations; only the number of `policy.generate` calls changes).

Usage: `python benchmarks/mcts.py [--tasks 8] [--simulations 8] [--n-gen 4] [--json out.json]`.
The policy follows the expert plan with probability p and otherwise takes a useless or wrong
action, so episodes run long enough for depth to matter.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agentr_lib.agent import parse_action  # noqa: E402
from agentr_lib.envs.textcraft import TextCraftEnv  # noqa: E402
from agentr_lib.mcts import MCTSConfig, search_trees  # noqa: E402

WRONG = (
    "Thought: let me check.\nAction: inventory",
    "Thought: I need sticks.\nAction: get 1 stick",
    "Thought: craft it.\nAction: craft 1 stick using 2 oak planks",
    "Thought: hmm, not sure.",  # no action: an invalid step
)


class NoisyExpertPolicy:
    """Expert's next action with probability `p_expert`, else a wrong/useless response.
    Samples depend only on (seed, sample index, conversation), not on call order, so batched
    and per-tree runs build the same trees."""

    def __init__(self, env: TextCraftEnv, task_ids: list[int], p_expert: float = 0.6, seed: int = 0):
        self.plans = {env.reset(t): [s.action for s in env.expert(t)] for t in task_ids}
        self.p_expert = p_expert
        self.seed = seed
        self.calls = 0

    def generate(self, conversations, n=1, temperature=0.0, max_new_tokens=128, seeds=None):
        self.calls += 1
        return [[self._sample(conv, i) for i in range(n)] for conv in conversations]

    def _sample(self, conversation, index: int) -> str:
        text = json.dumps(conversation, sort_keys=True)
        rng = random.Random(int(hashlib.sha256(f"{self.seed}|{index}|{text}".encode()).hexdigest()[:16], 16))
        plan = self.plans[conversation[2]["content"]]
        position = 0
        for message in conversation[3::2]:
            if position < len(plan) and parse_action(message["content"]) == plan[position]:
                position += 1
        if position < len(plan) and rng.random() < self.p_expert:
            return f"Thought: next step of my plan.\nAction: {plan[position]}"
        return rng.choice(WRONG)


def run(args: argparse.Namespace) -> dict:
    env = TextCraftEnv()
    tasks = env.task_ids("train")[: args.tasks]
    report: dict = {"tasks": len(tasks), "simulations": args.simulations, "n_gen": args.n_gen, "depth": []}
    print(f"TextCraft, {len(tasks)} train tasks, {args.simulations} simulations/tree, n_gen {args.n_gen}, "
          f"scripted policy (expert with p={args.p_expert})")
    print(f"{'depth':>5} {'sims':>6} {'snap steps/sim':>15} {'replay steps/sim':>17} {'ratio':>6} "
          f"{'snap s':>7} {'replay s':>9} {'same trees':>10}")
    for depth in args.depths:
        row = {"max_depth": depth}
        nodes = {}
        for restore in ("snapshot", "replay"):
            config = MCTSConfig(simulations=args.simulations, n_gen=args.n_gen, max_depth=depth, seed=0,
                                restore=restore, batch_trees=len(tasks))
            policy = NoisyExpertPolicy(env, tasks, args.p_expert)
            start = time.perf_counter()
            result = search_trees(policy, TextCraftEnv, tasks, config, progress=False)
            row[f"{restore}_seconds"] = time.perf_counter() - start
            simulations = sum(tree.stats["simulations"] for tree in result.trees)
            row["simulations"] = simulations
            row[f"{restore}_steps"] = result.env_steps
            row[f"{restore}_steps_per_sim"] = result.env_steps / max(simulations, 1)
            nodes[restore] = [[(n.id, n.response, n.observation, n.N, n.W) for n in t.nodes] for t in result.trees]
        row["ratio"] = row["replay_steps"] / max(row["snapshot_steps"], 1)
        row["identical_trees"] = nodes["snapshot"] == nodes["replay"]
        report["depth"].append(row)
        print(f"{depth:>5} {row['simulations']:>6} {row['snapshot_steps_per_sim']:>15.1f} {row['replay_steps_per_sim']:>17.1f} "
              f"{row['ratio']:>5.1f}x {row['snapshot_seconds']:>7.2f} {row['replay_seconds']:>9.2f} {str(row['identical_trees']):>10}")

    print("\nmodel calls (max depth 10, snapshot restore):")
    report["batching"] = []
    for batch_trees in (1, len(tasks)):
        config = MCTSConfig(simulations=args.simulations, n_gen=args.n_gen, max_depth=10, seed=0, batch_trees=batch_trees)
        result = search_trees(NoisyExpertPolicy(env, tasks, args.p_expert), TextCraftEnv, tasks, config, progress=False)
        entry = {"batch_trees": batch_trees, "model_calls": result.model_calls, "conversations": result.conversations,
                 "mean_batch": result.conversations / max(result.model_calls, 1)}
        report["batching"].append(entry)
        print(f"  batch_trees={batch_trees:>3}: {result.model_calls:>5} generate calls for {result.conversations} "
              f"conversations (mean batch {entry['mean_batch']:.1f})")
    first, last = report["batching"]
    print(f"  batched / per-tree calls: {last['model_calls'] / first['model_calls']:.3f} "
          f"({first['model_calls'] / last['model_calls']:.1f}x fewer calls)")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--simulations", type=int, default=8)
    parser.add_argument("--n-gen", type=int, default=4)
    parser.add_argument("--p-expert", type=float, default=0.6)
    parser.add_argument("--depths", type=int, nargs="+", default=[5, 10, 15])
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    report = run(args)
    if args.json is not None:
        from agentr_lib.io import atomic_write_json
        atomic_write_json(args.json, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
