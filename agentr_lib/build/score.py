"""Greedy test scores of a built embedded model, written into its model_card.json: the
number each build row of docs/embedded-model.md reports, measured with the pipeline's own
evaluator so that a card's score and a run's base score are the same measurement."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from ..io import atomic_write_json, read_json
from .demos import make_env


def measure_test_scores(model_dir: str | Path, envs: Sequence[str] | None = None, n_tasks: int | None = None,
                        max_turns: int | None = None, progress: bool = True, threads: int | None = None) -> dict:
    """Greedy scores on held-out TEST ids with the project's evaluator (per-episode JSONL under
    <model_dir>/eval/, so an interrupted scoring resumes), written into
    model_card.json["test_scores"]; the card's spec gives what is not passed."""
    from ..evaluate import EvalConfig, Runner, evaluate
    from ..llm import load_policy

    model_dir = Path(model_dir)
    card = read_json(model_dir / "model_card.json")
    spec = card["spec"]
    envs = list(envs or spec["envs"])
    n_tasks = n_tasks if n_tasks is not None else spec["eval_tasks"]
    max_turns = max_turns or spec["eval_max_turns"]
    # vllm where it runs (greedy replies equal hf's on 100/100 prompts of this model, 5x faster), else hf
    policy = load_policy("auto", str(model_dir), threads=threads or spec.get("threads"), seed=spec.get("seed", 0))
    for name in envs:
        env = make_env(name)
        try:
            ids = list(env.task_ids("test"))
        finally:
            env.close()
        if n_tasks is not None:
            ids = ids[:n_tasks]
        started = time.time()
        result = dict(evaluate(policy, name, ids, model_dir / "eval",
                               EvalConfig(max_turns=max_turns, max_new_tokens=96), Runner(progress=progress)))
        result.update(evaluator=f"agentr_lib.evaluate ({policy.backend_name} backend, batched)", tasks=result.get("n", len(ids)),
                      backend=policy.backend_name,
                      seconds=round(time.time() - started, 1), max_turns=max_turns)
        card = read_json(model_dir / "model_card.json")
        card.setdefault("test_scores", {})[name] = result
        atomic_write_json(model_dir / "model_card.json", card)
    return card["test_scores"]
