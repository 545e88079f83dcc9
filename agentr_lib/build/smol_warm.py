"""Warm starts of SmolLM2-135M-Instruct: behaviour cloning on expert TextCraft episodes.

Why: zero-shot, the instruct model never wrote a parseable action on the validation goals (0 of
240 turns), so, as AgentGym's AgentEvol and ETO do before self-improvement, the loop's base is
the model after BC on expert trajectories of training goals disjoint from the search,
validation and test goals (the 266 goals `tiny-disjoint` is built on). A warm start is a full
model folder (LoRA BC is merged), so the loop's own LoRA adapters sit on it as on any base.

    python -m agentr_lib.build.smol_warm build --recipe lora-32    # resumable; card in the folder
    python -m agentr_lib.build.smol_warm eval --model smollm2-135m-bc-lora-32 --tasks 20

A build keeps its steps under `data/models/.build-<name>/` (demos.jsonl, sft/) and reuses each
one present, so an interrupted build resumes; the finished folder appears by one rename.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from ..io import atomic_write_json, read_json, read_jsonl, write_jsonl
from ..smol import MODELS_DIR, NAME, SmolError, convert, run_cli, sha256
from .demos import demonstrated_ids, expert_episode

#: The goals never demonstrated (as tiny-disjoint): the loop's search goals, validation, test.
HELD_OUT: tuple[str, ...] = ("test", "val", "search")


@dataclass(frozen=True)
class WarmRecipe:
    """One warm start: BC with LoRA (merged) or full fine-tuning on `episodes` expert episodes."""

    lora: bool
    episodes: int
    epochs: float = 3.0
    learning_rate: float = 5e-4
    batch_size: int = 4
    lora_r: int = 16
    lora_alpha: int = 32
    max_seq_length: int = 1024
    seed: int = 0

    @property
    def name(self) -> str:
        return f"{NAME}-bc-{'lora' if self.lora else 'full'}-{self.episodes}"


#: The candidates of experiments/results/smol-warmstart-rule.md (full FT at a lower rate: every
#: weight moves, and 135M weights memorise 32 episodes fast).
RECIPES: dict[str, WarmRecipe] = {
    "lora-32": WarmRecipe(lora=True, episodes=32),
    "lora-128": WarmRecipe(lora=True, episodes=128),
    "full-32": WarmRecipe(lora=False, episodes=32, learning_rate=3e-5),
    "full-128": WarmRecipe(lora=False, episodes=128, learning_rate=3e-5),
}
WARM_NAMES: dict[str, str] = {recipe.name: key for key, recipe in RECIPES.items()}


def demo_goals(n: int, seed: int = 0) -> list[int]:
    """`n` TextCraft training goals outside the held-out splits, a seeded sample (split order)."""
    from ..envs import make_env

    env = make_env("textcraft")
    try:
        ids = demonstrated_ids(env, HELD_OUT)
    finally:
        env.close()
    if n > len(ids):
        raise ValueError(f"{n} episodes asked for, but only {len(ids)} TextCraft goals are outside {HELD_OUT}")
    chosen = set(random.Random(f"smol-bc-{seed}").sample(ids, n))
    return [task_id for task_id in ids if task_id in chosen]


def expert_rows(goals: Sequence[int]) -> list[dict]:
    """The expert's episode on each goal, with thoughts (every assistant turn trained)."""
    from ..envs import make_env

    env = make_env("textcraft")
    rows = []
    try:
        for task_id in goals:
            episode = expert_episode(env, task_id, thoughts=True)
            if episode is None or episode["reward"] <= 0:
                raise RuntimeError(f"textcraft goal {task_id}: the expert did not succeed; its episode cannot teach")
            rows.append({"messages": episode["messages"], "env": "textcraft", "task_id": int(task_id)})
    finally:
        env.close()
    return rows


def build(recipe: WarmRecipe, root: str | Path = MODELS_DIR, threads: int | None = None) -> Path:
    """The warm-start folder of `recipe` (built when missing; each step reused when present)."""
    from ..train import SFTConfig, train_sft

    root = Path(root)
    out = root / recipe.name
    if (out / "model_card.json").is_file():
        return out
    base = convert(root)
    work = root / f".build-{recipe.name}"
    work.mkdir(parents=True, exist_ok=True)
    demos = work / "demos.jsonl"
    if not demos.exists():
        write_jsonl(demos, expert_rows(demo_goals(recipe.episodes, recipe.seed)))
    rows = read_jsonl(demos)
    sft = work / "sft"
    if not (sft / "merged" / "config.json").is_file() or not (sft / "train_metrics.json").is_file():
        config = SFTConfig(lora=recipe.lora, lora_r=recipe.lora_r, lora_alpha=recipe.lora_alpha,
                           learning_rate=recipe.learning_rate, epochs=recipe.epochs, batch_size=recipe.batch_size,
                           max_seq_length=recipe.max_seq_length, seed=recipe.seed, threads=threads,
                           save_adapter=False, save_merged=True, init_from="base", progress=False)
        train_sft(str(base), rows, sft, config, backend="hf")
    metrics = read_json(sft / "train_metrics.json")
    merged = sft / "merged"
    weights = merged / "model.safetensors"
    card = {
        "name": recipe.name, "base": str(base.name), "base_weights_sha256": read_json(base / "model_card.json")["weights_sha256"],
        "recipe": asdict(recipe), "how": f"python -m agentr_lib.build.smol_warm build --recipe {WARM_NAMES[recipe.name]}",
        "demo_goals": [row["task_id"] for row in rows], "held_out_splits": list(HELD_OUT),
        "train": {k: metrics.get(k) for k in ("steps", "tokens_seen", "tokens_trained", "seconds", "tokens_per_s",
                                               "final_loss", "masked_fraction", "data")},
        "weights_sha256": sha256(weights),
    }
    atomic_write_json(merged / "model_card.json", card)
    os.replace(merged, out)
    shutil.rmtree(work, ignore_errors=True)
    return out


def resolve(name: str, root: str | Path = MODELS_DIR) -> Path:
    """A pretrained name (models.PRETRAINED_MODELS) as its model folder: the instruct model converted
    when missing, a warm-start name (`smollm2-135m-bc-lora-32`, ...) built when missing."""
    if name == NAME:
        return convert(root)
    if name not in WARM_NAMES:
        raise SmolError(f"unknown SmolLM2 model {name!r}; expected {NAME!r} or one of {sorted(WARM_NAMES)}")
    return build(RECIPES[WARM_NAMES[name]], root)


def parse_share(record: dict) -> float:
    """The share of an episode's replies that parsed as an action."""
    turns = record["num_turns"] - record.get("prefix_len", 0)
    return 1.0 - record["parse_failures"] / turns if turns else 0.0


def evaluate_val(model: str, tasks: int = 20, max_turns: int = 12, max_new_tokens: int = 96,
                 out: str | Path | None = None, backend: str = "vllm", kv_cache_gb: float = 3.0) -> dict[str, Any]:
    """Success and parse rate on `tasks` validation goals (seed 0), with 95% bootstrap intervals;
    the episodes go to `out` (resumable), the summary is returned (and written by the CLI)."""
    from .. import stats
    from ..evaluate import EvalConfig, Runner, evaluate
    from ..llm import load_policy
    from ..models import PRETRAINED_MODELS
    from ..splits import select_tasks

    folder = str(resolve(model)) if model in PRETRAINED_MODELS else model
    goals = select_tasks("textcraft", "val", tasks, seed=0)
    out = Path(out) if out else MODELS_DIR / Path(folder).name / "eval" / "val"
    start = time.perf_counter()
    kwargs = {"kv_cache_gb": kv_cache_gb} if backend == "vllm" else {}
    policy = load_policy(backend, folder, **kwargs)
    loaded = time.perf_counter() - start
    metrics = evaluate(policy, "textcraft", goals, out, EvalConfig(max_turns=max_turns, max_new_tokens=max_new_tokens),
                       Runner(progress=False))
    seconds = time.perf_counter() - start - loaded
    records = read_jsonl(out / "textcraft.jsonl")
    success = {r["key"]: float(r["success"]) for r in records}
    parsed = {r["key"]: parse_share(r) for r in records}
    turns = sum(r["num_turns"] for r in records)
    return {
        "model": model, "folder": str(folder), "split": "val", "env": "textcraft", "tasks": len(goals),
        "max_turns": max_turns, "max_new_tokens": max_new_tokens, "backend": getattr(policy, "backend_name", backend),
        "success": 100 * stats.mean(success), "success_ci95": [100 * x for x in stats.bootstrap_ci(success)],
        "parse_rate": 100 * stats.mean(parsed), "parse_rate_ci95": [100 * x for x in stats.bootstrap_ci(parsed)],
        "turns": turns, "parsed_turns": sum(r["num_turns"] - r["parse_failures"] for r in records),
        "generated_tokens": policy.generated_tokens, "seconds": round(seconds, 1), "load_seconds": round(loaded, 1),
        "tokens_per_s": round(policy.generated_tokens / seconds, 1) if seconds else None,
        "truncated_prompts": policy.truncated_prompts, "mean_turns": metrics["mean_turns"],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agentr_lib.build.smol_warm", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build a warm start (resumable)")
    b.add_argument("--recipe", choices=sorted(RECIPES), required=True)
    b.add_argument("--threads", type=int, default=None)
    e = sub.add_parser("eval", help="success and parse rate on validation goals")
    e.add_argument("--model", required=True, help=f"{NAME}, a warm-start name or a model folder")
    e.add_argument("--tasks", type=int, default=20)
    e.add_argument("--max-turns", type=int, default=12)
    e.add_argument("--max-new-tokens", type=int, default=96)
    e.add_argument("--backend", default="vllm")
    e.add_argument("--write", default=None, help="write the summary JSON here")
    args = parser.parse_args(argv)
    return run_cli(lambda: _build(args.recipe, args.threads) if args.command == "build" else _evaluate(args))


def _build(recipe: str, threads: int | None) -> None:
    start = time.perf_counter()
    out = build(RECIPES[recipe], threads=threads)
    print(f"{out} ({time.perf_counter() - start:.0f} s)")


def _evaluate(args: argparse.Namespace) -> None:
    summary = evaluate_val(args.model, args.tasks, args.max_turns, args.max_new_tokens, backend=args.backend)
    if args.write:
        atomic_write_json(args.write, summary)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    raise SystemExit(main())
