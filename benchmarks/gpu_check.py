"""The GPU check: what a machine with one CUDA GPU and only torch, transformers and peft can
tell about the project's GPU path, in well under 10 minutes. Run it whenever a GPU is lent.

    python benchmarks/gpu_check.py                      # CUDA, the tiny model (or a micro one)
    python benchmarks/gpu_check.py --device cpu         # the same on the CPU (how it is tested)
    python benchmarks/gpu_check.py --model PATH --json OUT.json

What it runs, through the project's own code (agentr_lib.train, agentr_lib.llm.hf):
1. LoRA SFT (r 16, alpha 32, the consumer-gpu settings) with the `hf` training backend on the
   device: bf16 weights on CUDA, fp32 LoRA weights, bf16 autocast; per-turn loss masks from
   agentr_lib.data on synthetic agent conversations shaped like the revision rows (a few
   hundred tokens, most of them masked context). Prints the loss going down, tokens/s and the
   peak memory.
2. The `hf` sampler on the device loading base + that adapter: greedy batched generation and
   seeded sampling (n samples per conversation), tokens/s and peak memory; whether greedy
   replies batched equal those generated one at a time, and whether seeded samples repeat.

What it needs: torch, transformers, peft, tokenizers, pyyaml, tqdm (what a transformers image
has), and this repository; no vLLM, no Unsloth, no environment packages, no network. The
model: `--model PATH`, else the newest cached tiny model under data/models/ (copy it to the
machine with the repository: it is a few MB), else a micro model built in a second
(`tests/micro_model.py`).

Exit status 0 when every check passed (the loss fell; the adapter loaded and changed the
replies; seeded samples repeat); the batch-invariance of greedy replies in bf16 is reported,
not required (bf16 kernels may pick other reduction orders per batch shape).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

WORDS = ("oak", "birch", "planks", "stick", "log", "iron", "ingot", "nugget", "crafting", "table", "furnace", "coal",
         "stone", "pickaxe", "wool", "bed", "dye", "red", "blue", "white", "slab", "stairs", "door", "fence")


def synthetic_rows(n: int, seed: int) -> list[dict]:
    """Agent conversations of the revision rows' shape: an instruction, the task, then turns of
    `Thought/Action` and observations; the first third of the assistant turns carry no loss
    (the bad segment), then a revision turn and the rest are trained."""
    from agentr_lib.agent import format_response, opening_messages

    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        words = lambda k: " ".join(rng.choice(WORDS) for _ in range(k))  # noqa: E731
        recipes = "\n".join(f"craft {rng.randint(1, 4)} {words(2)} using {rng.randint(1, 9)} {words(2)}"
                            for _ in range(rng.randint(3, 8)))
        messages = opening_messages("You are an agent in a crafting world. Reply with Thought: ... then Action: ...",
                                    f"Crafting commands:\n{recipes}\nGoal: craft {words(2)}.")
        turns = rng.randint(3, 9)
        for t in range(turns):
            loss = t >= turns // 3
            messages.append({"role": "assistant", "content": format_response(words(rng.randint(4, 12)),
                                                                             f"get {rng.randint(1, 4)} {words(2)}"),
                             "loss": loss})
            messages.append({"role": "user", "content": f"Got {words(3)}. Inventory: [{words(2)}] ({rng.randint(1, 9)})"})
        rows.append({"messages": messages, "env": "textcraft", "kind": "revision"})
    return rows


def find_model(explicit: str | None, work: Path) -> tuple[str, str]:
    """(model folder, what it is)."""
    if explicit:
        return explicit, "given"
    cached = sorted((ROOT / "data" / "models").glob("tiny-*-tiny-*/model_card.json"), key=lambda p: p.stat().st_mtime)
    if cached:
        return str(cached[-1].parent), "the cached tiny model"
    from micro_model import build_micro_model

    return str(build_micro_model(work / "micro")), "a micro model (no cached tiny model found)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--model", help="a model folder (default: the cached tiny model, else a micro model)")
    parser.add_argument("--rows", type=int, default=256, help="synthetic training conversations")
    parser.add_argument("--steps", type=int, default=60, help="optimizer steps")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--conversations", type=int, default=32, help="conversations per generation call")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # before torch is imported: the project then picks the CPU
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device is available (use --device cpu to run the same checks on the CPU)", file=sys.stderr)
        return 2
    import peft
    import transformers

    from agentr_lib.data import tokenize_conversation
    from agentr_lib.llm import load_policy
    from agentr_lib.train import SFTConfig, train_sft

    started = time.perf_counter()
    results: dict = {"device": args.device, "torch": torch.__version__, "transformers": transformers.__version__,
                     "peft": peft.__version__}
    if args.device == "cuda":
        results.update(gpu=torch.cuda.get_device_name(0), bf16_supported=torch.cuda.is_bf16_supported(),
                       cuda=torch.version.cuda)
    checks: dict[str, bool] = {}
    with tempfile.TemporaryDirectory(prefix="agentr-gpu-check-") as tmp:
        work = Path(tmp)
        model, what = find_model(args.model, work)
        results["model"] = {"path": model, "what": what}
        print(f"[gpu_check] {args.device}: torch {torch.__version__}, transformers {transformers.__version__}, "
              f"peft {peft.__version__}; model: {what} ({model})", flush=True)

        # 1. LoRA SFT with the hf backend
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model)
        rows = [tokenize_conversation(tokenizer, row["messages"], 1024) for row in synthetic_rows(args.rows, seed=0)]
        rows = [{"input_ids": r["input_ids"], "labels": r["labels"]} for r in rows if r["num_trained"]]
        config = SFTConfig(lora=True, lora_r=16, lora_alpha=32, learning_rate=2e-3, max_steps=args.steps,
                           batch_size=args.batch_size, warmup_ratio=0.05, save_merged=False, progress=False, log_every=5)
        sft = train_sft(model, rows, work / "sft", config, backend="hf")
        curve = sft["curve"]
        first, last = curve[0]["loss"], curve[-1]["smoothed"]
        checks["loss fell"] = last < first
        checks["trained on the asked device"] = sft["device"] == args.device
        if args.device == "cuda":
            checks["bf16 base weights"] = sft["dtype"] == "bfloat16"
        results["sft"] = {key: sft.get(key) for key in ("steps", "seconds", "tokens_seen", "tokens_trained",
                                                         "tokens_per_s", "peak_memory_gb", "dtype", "trainable_params")}
        results["sft"].update(first_loss=first, last_loss=last, masked_fraction=sft["masked_fraction"])
        memory = f"peak memory {sft['peak_memory_gb']} GB" if args.device == "cuda" else "no CUDA memory to report"
        print(f"[gpu_check] LoRA SFT: {sft['steps']} steps, loss {first:.3f} -> {last:.3f}, {sft['tokens_per_s']:,.0f} "
              f"tokens/s, {memory}, base weights {sft['dtype']}", flush=True)

        # 2. the hf sampler with base + adapter
        adapter = sft["outputs"]["model"]
        conversations = [row["messages"][:3] for row in synthetic_rows(args.conversations, seed=1)]
        policy = load_policy("hf", adapter, device=args.device)
        base_policy = load_policy("hf", model, device=args.device)
        if args.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        timed = time.perf_counter()
        greedy = policy.generate(conversations, n=1, temperature=0.0, max_new_tokens=args.max_new_tokens)
        greedy_s = time.perf_counter() - timed
        greedy_tokens = policy.generated_tokens
        seeds = list(range(len(conversations)))
        timed = time.perf_counter()
        sampled = policy.generate(conversations, n=4, temperature=1.0, max_new_tokens=args.max_new_tokens, seeds=seeds)
        sampled_s = time.perf_counter() - timed
        sampled_tokens = policy.generated_tokens - greedy_tokens
        again = policy.generate(conversations, n=4, temperature=1.0, max_new_tokens=args.max_new_tokens, seeds=seeds)
        alone = [policy.generate([c], n=1, temperature=0.0, max_new_tokens=args.max_new_tokens)[0] for c in conversations[:8]]
        checks["adapter loaded on its base"] = policy.adapter == adapter
        checks["the adapter changes the replies"] = greedy != base_policy.generate(
            conversations, n=1, temperature=0.0, max_new_tokens=args.max_new_tokens)
        checks["seeded samples repeat"] = sampled == again
        same_alone = sum(a == b for a, b in zip(alone, greedy[:8]))
        results["generation"] = {
            "conversations": len(conversations), "max_new_tokens": args.max_new_tokens,
            "greedy_tokens_per_s": round(greedy_tokens / greedy_s, 1), "sampled_tokens_per_s": round(sampled_tokens / sampled_s, 1),
            "peak_memory_gb": round(torch.cuda.max_memory_allocated() / 2**30, 3) if args.device == "cuda" else None,
            "greedy_batched_equals_alone": f"{same_alone}/8",
        }
        print(f"[gpu_check] hf sampler (base + adapter): greedy {results['generation']['greedy_tokens_per_s']:,.0f} "
              f"tokens/s over {len(conversations)} conversations, sampled (n=4) "
              f"{results['generation']['sampled_tokens_per_s']:,.0f} tokens/s"
              + (f", peak memory {results['generation']['peak_memory_gb']} GB" if args.device == "cuda" else "")
              + f"; greedy batched = alone on {same_alone}/8", flush=True)
    results["checks"] = checks
    results["seconds"] = round(time.perf_counter() - started, 1)
    for name, ok in checks.items():
        print(f"[gpu_check] {'ok  ' if ok else 'FAIL'} {name}")
    print(f"[gpu_check] {results['seconds']:.0f} s in all")
    print(json.dumps(results, sort_keys=True))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
