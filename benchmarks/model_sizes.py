"""Model size: sampling and training speed of 3-4 Llama shapes, side by side, in one run.

Issue 32, step 1 ("measure before building big"). Each shape is the tiny-disjoint spec
(agentr_lib.models) with a larger hidden size / depth / MLP, head size 32 (a size vLLM's CPU
attention runs), the same tokenizer and vocabulary as the shipped tiny-disjoint model
(data/models/tiny-v5-tiny-disjoint-*), randomly initialised (`agentr_lib.build.model.make_model`, seed 0) and
saved to a temporary folder under /tmp. Random weights do not change the cost of a token;
they make every reply run to the token limit (96 new tokens), so all shapes do the same work.

Measured per shape, each in its own child process (so peak resident memory is that
measurement's own), rounds alternating the order of the shapes (the machine is shared and
noisy; best round shown):
  wave   sampling, search-shaped: one MCTS expansion wave, `benchmarks/sampling.py`'s 54
         search-shaped conversations (train goals, 0-7 expert turns of history) x n = 4
         samples at temperature 1, one generate call, through our VLLMPolicy;
  eval   sampling, evaluation-shaped: a lockstep greedy evaluation (`agent.run_episodes`) of
         `--eval-goals` test goals for `--eval-turns` turns, all episodes in every call;
  train  training: `agentr_lib.train.train_sft` (hf backend, full fine-tuning, the tiny build's
         settings: batch 16, lr 3e-3, max length 1536, AdamW, the output head on trained tokens
         only) for `--train-steps` steps on a fixed set of real BC rows (TextCraft expert
         episodes of train goals, tokenised with agentr_lib.data's masks); the first step is a
         warm-up and is not counted.
The arithmetic limit of each measurement is its model FLOPs (sampling: `sampling.work_flops`,
one prefill per conversation plus every generated token; training: 3 x the forward FLOPs of
every token seen, the head on trained tokens only) over the fp32 matmul rate measured in the
same child on the shape's own projections (`sampling.matmul_gflops`) at the same thread count.

Threads: 1 for both by default (OMP_NUM_THREADS=1, as the project's sampling processes). The
tiny build trains on 2, but on this shared 2-core machine a 2-thread child measured the matmul
rate at 15 GFLOP/s against 181 on 1 thread (the other core was busy): 1 thread is the figure
that survives the load; `--sample-threads` / `--train-threads` change them.

Usage: `python benchmarks/model_sizes.py [--shapes s1,s5,s15,s40] [--rounds 2] [--json out.json]`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

ROOT = Path(__file__).resolve().parents[1]
MAX_NEW_TOKENS = 96  # sampling.py's (the tiny profile's)

from agentr_lib.models import SIZES  # noqa: E402

#: The TinySpec fields that make a shape.
SHAPE_FIELDS: tuple[str, ...] = ("hidden_size", "num_layers", "num_heads", "num_kv_heads", "head_dim",
                                 "intermediate_size")


def registry_shape(size: str) -> dict:
    """The shape of the registry's embedded model `size` (the sizes the sweep builds are measured here)."""
    return {field: getattr(SIZES[size], field) for field in SHAPE_FIELDS}


#: name -> (label, TinySpec overrides). Head size 32 everywhere (vLLM CPU runs 32, 64, 80, ...);
#: the first is tiny-disjoint itself (1.37M parameters with its 1,474-token vocabulary), the next
#: two the registry's tiny-disjoint-5m and tiny-disjoint-15m (the sizes this table chose to build).
SHAPES: dict[str, tuple[str, dict]] = {
    "s1": ("1.4M (tiny-disjoint)", registry_shape("tiny-disjoint")),
    "s5": ("~5M", registry_shape("tiny-disjoint-5m")),
    "s15": ("~15M", registry_shape("tiny-disjoint-15m")),
    "s40": ("~40M", dict(hidden_size=512, num_layers=12, num_heads=16, num_kv_heads=8, head_dim=32,
                         intermediate_size=1536)),
}
#: the parameter count each label states (with the tiny vocabulary, 1,474 tokens), for the test
STATED_PARAMS = {"s1": 1.37e6, "s5": 5e6, "s15": 15e6, "s40": 40e6}
TINY_VOCAB = 1474


def tiny_tokenizer_dir() -> Path:
    """The shipped tiny-disjoint model folder (its tokenizer is the one every shape uses)."""
    found = sorted((ROOT / "data" / "models").glob("tiny-v5-tiny-disjoint-*"))
    if not found:
        raise FileNotFoundError("data/models/tiny-v5-tiny-disjoint-*: the shipped tiny-disjoint model is missing")
    return found[0]


def param_count(shape: dict, vocab: int = TINY_VOCAB) -> int:
    """Parameters of a tied-embedding Llama of this shape (what `build.model.make_model` builds)."""
    h, layers, i = shape["hidden_size"], shape["num_layers"], shape["intermediate_size"]
    q, kv = shape["num_heads"] * shape["head_dim"], shape["num_kv_heads"] * shape["head_dim"]
    per_layer = h * q + 2 * h * kv + q * h + 3 * h * i + 2 * h  # q, k, v, o; gate, up, down; two RMSNorms
    return vocab * h + layers * per_layer + h  # tied embedding/head, final norm


def build_model(name: str, folder: Path, shape: dict | None = None) -> Path:
    """A randomly initialised model of SHAPES[name] (or `shape`) with the tiny tokenizer, saved to `folder`."""
    from transformers import AutoTokenizer

    from agentr_lib.build.model import make_model
    from agentr_lib.models import resolve_spec

    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir())
    spec = resolve_spec("tiny-disjoint", **(shape if shape is not None else SHAPES[name][1]))
    folder.mkdir(parents=True, exist_ok=True)
    make_model(spec, tokenizer).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


# ---------------------------------------------------------------------------------------
# Training rows and FLOPs


def training_rows(count: int = 48, max_seq_length: int = 1536, tokenizer_dir: str | Path | None = None) -> list[dict]:
    """`count` real BC rows: the expert episodes of the first train goals (1 distractor seed),
    tokenised with agentr_lib.data's masks and the tiny tokenizer; fixed, so every shape trains
    on the same tokens."""
    from transformers import AutoTokenizer

    from agentr_lib.data import tokenize_dataset
    from agentr_lib.envs import make_env
    from agentr_lib.build.demos import expert_episode

    env = make_env("textcraft")
    rows = [{"messages": expert_episode(env, t)["messages"]} for t in env.task_ids("train")[:count]]
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir or tiny_tokenizer_dir())
    dataset, _ = tokenize_dataset(rows, tokenizer, max_seq_length, progress=False)
    return [{"input_ids": list(a), "labels": list(b)} for a, b in zip(dataset["input_ids"], dataset["labels"])]


def model_shape(folder: str | Path) -> dict:
    from sampling import model_shape as shape_of

    return shape_of(str(folder))


def train_flops(shape: dict, lengths: list[int], trained: int) -> float:
    """Training FLOPs of rows of these lengths: 3 x forward (backward = 2 x forward); the
    forward is 2 x the linear weights per token seen, causal attention (QK^T and AV at the
    average context), and the output head on the `trained` tokens only."""
    h, layers = shape["hidden"], shape["layers"]
    linear = layers * (2 * h * shape["q_dim"] + 2 * h * shape["kv_dim"] + 3 * h * shape["intermediate"])
    tokens = sum(lengths)
    forward = 2 * linear * tokens + 2 * h * shape["vocab"] * trained
    forward += 4 * layers * shape["q_dim"] * sum(n * n / 2 for n in lengths)
    return 3 * forward


# ---------------------------------------------------------------------------------------
# Measurements (child processes)


def measure_sampling(model: str, threads: int, eval_goals: int, eval_turns: int, wave_size: int = 54) -> dict:
    """Both sampling workloads through VLLMPolicy on one engine; FLOPs limit at `threads`."""
    import torch
    from sampling import Recorder, matmul_gflops, wave_conversations, work_flops

    from agentr_lib.agent import EpisodeSettings, run_episodes
    from agentr_lib.envs import make_env
    from agentr_lib.llm import load_policy

    torch.set_num_threads(threads)
    started = time.perf_counter()
    policy = load_policy("vllm", model, threads=threads, seed=0)
    record: dict = {"start_s": round(time.perf_counter() - started, 2), "workloads": {}}
    conversations = wave_conversations(wave_size)
    eval_ids = make_env("textcraft").task_ids("test")[:eval_goals]
    workloads = {
        "wave": lambda r: r.generate(conversations, n=4, temperature=1.0, max_new_tokens=MAX_NEW_TOKENS,
                                     seeds=list(range(len(conversations)))),
        "eval": lambda r: run_episodes(r, lambda: make_env("textcraft"), eval_ids,
                                       EpisodeSettings(eval_turns, 0.0, MAX_NEW_TOKENS), max_concurrency=len(eval_ids),
                                       progress=False),
    }
    shape = model_shape(model)
    gflops = matmul_gflops(shape, seconds=1.0)
    for name, work in workloads.items():
        recorder = Recorder(policy)
        before = policy.generated_tokens
        started = time.perf_counter()
        work(recorder)
        seconds = time.perf_counter() - started - recorder.overhead
        generated = policy.generated_tokens - before
        flops = work_flops(shape, recorder.prompts, generated, recorder.samples)
        record["workloads"][name] = {
            "seconds": round(seconds, 2), "generated": generated, "samples": recorder.samples,
            "prompt_tokens": sum(recorder.prompts), "calls": len(recorder.requests),
            "max_requests": max(recorder.requests, default=0), "tokens_per_s": round(generated / seconds, 1),
            "flops": flops, "limit_s": round(flops / (gflops * 1e9), 3),
        }
    record["gflops"] = round(gflops, 1)
    record["threads"] = threads
    record["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return record


def drawn_batches(rows: list[dict], batch_size: int, steps: int, seed: int = 0) -> list[list[int]]:
    """The row indices of each step's batch, drawn as train.py's loop draws them (its seeded
    length-grouped `_batches`, popped from the end, redrawn when used up; grad_accum 1)."""
    import random

    from agentr_lib.train import _batches

    rng, queue, drawn = random.Random(seed), [], []
    lengths = [len(r["input_ids"]) for r in rows]
    for _ in range(steps):
        if not queue:
            queue = _batches(lengths, batch_size, rng)
        drawn.append(queue.pop())
    return drawn


def measure_training(model: str, rows: list[dict], threads: int, steps: int, batch_size: int = 16) -> dict:
    """train_sft (hf, full fine-tuning, the tiny build's settings) for `steps` steps on `rows`;
    tokens/s over steps 2..steps (step 1 is a warm-up); FLOPs limit at `threads`."""
    import torch
    from sampling import matmul_gflops

    from agentr_lib.train import SFTConfig, train_sft

    spec = SIZES["tiny-disjoint"]
    torch.set_num_threads(threads)
    config = SFTConfig(lora=False, learning_rate=spec.learning_rate, epochs=1.0, max_steps=steps,
                       batch_size=batch_size, warmup_ratio=spec.warmup_ratio, max_seq_length=spec.max_seq_length,
                       seed=0, threads=threads, init_from="scratch", save_adapter=False, save_merged=False,
                       progress=False, log_every=1)
    with tempfile.TemporaryDirectory(prefix="model-sizes-train-") as out:
        metrics = train_sft(model, rows, out, config, backend="hf")
    curve = metrics["curve"]
    first, last = curve[0], curve[-1]
    timed_tokens = last["tokens_seen"] - first["tokens_seen"]
    timed_seconds = last["seconds"] - first["seconds"]
    timed = drawn_batches(rows, batch_size, steps, seed=0)[1:]  # the batches the timed steps saw
    lengths = [len(rows[i]["input_ids"]) for b in timed for i in b]
    trained = sum(sum(1 for t in rows[i]["labels"][1:] if t != -100) for b in timed for i in b)
    shape = model_shape(model)
    gflops = matmul_gflops(shape, seconds=1.0)
    flops = train_flops(shape, lengths, trained)
    return {
        "steps": metrics["steps"], "timed_steps": steps - 1, "timed_tokens": timed_tokens,
        "timed_seconds": round(timed_seconds, 2), "tokens_per_s": round(timed_tokens / max(1e-9, timed_seconds), 1),
        "first_step_s": first["seconds"], "flops": flops, "limit_s": round(flops / (gflops * 1e9), 3),
        "flops_check_tokens": sum(lengths), "gflops": round(gflops, 1), "threads": threads,
        "trainable_params": metrics["trainable_params"],
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


# ---------------------------------------------------------------------------------------
# Orchestration


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def run_child(kind: str, model: str, args: argparse.Namespace, rows_path: str) -> dict:
    threads = args.sample_threads if kind == "sample" else args.train_threads
    command = [sys.executable, __file__, "--child", kind, "--model", model, "--rows", rows_path,
               "--sample-threads", str(args.sample_threads), "--train-threads", str(args.train_threads),
               "--eval-goals", str(args.eval_goals), "--eval-turns", str(args.eval_turns),
               "--train-steps", str(args.train_steps)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RECORD ")]
    if done.returncode != 0 or not lines:
        print(done.stdout[-3000:], done.stderr[-3000:], sep="\n", file=sys.stderr)
        raise SystemExit(f"{kind} child on {model} failed (exit {done.returncode})")
    record = json.loads(lines[-1][len("RECORD "):])
    record["wall_s"] = round(time.perf_counter() - started, 1)
    record["load1_after"] = round(os.getloadavg()[0], 2)
    return record


def summarise(records: list[dict], shapes: list[str]) -> list[dict]:
    """One row per shape: best round of each measurement (least seconds)."""
    table = []
    for name in shapes:
        mine = [r for r in records if r["shape"] == name]
        row: dict = {"shape": name, "label": SHAPES[name][0], "params": mine[0]["params"],
                     "hidden": SHAPES[name][1]["hidden_size"], "layers": SHAPES[name][1]["num_layers"]}
        for workload in ("wave", "eval"):
            runs = [r["sample"]["workloads"][workload] for r in mine if "sample" in r]
            best = min(runs, key=lambda w: w["seconds"])
            row[workload] = {"tokens_per_s": best["tokens_per_s"], "seconds": best["seconds"],
                             "all_tokens_per_s": [w["tokens_per_s"] for w in runs], "limit_s": best["limit_s"],
                             "x_limit": round(best["seconds"] / best["limit_s"], 2),
                             "limit_tokens_per_s": round(best["generated"] / best["limit_s"], 1)}
        trains = [r["train"] for r in mine if "train" in r]
        best = min(trains, key=lambda t: t["timed_seconds"] / max(1, t["timed_tokens"]))
        row["train"] = {"tokens_per_s": best["tokens_per_s"], "all_tokens_per_s": [t["tokens_per_s"] for t in trains],
                        "limit_s": best["limit_s"], "x_limit": round(best["timed_seconds"] / best["limit_s"], 2),
                        "limit_tokens_per_s": round(best["timed_tokens"] / best["limit_s"], 1)}
        row["gflops_1t"] = max(r["sample"]["gflops"] for r in mine if "sample" in r)
        row["gflops_train"] = max(t["gflops"] for t in trains)
        row["peak_rss_mb_sample"] = max(r["sample"]["peak_rss_mb"] for r in mine if "sample" in r)
        row["peak_rss_mb_train"] = max(t["peak_rss_mb"] for t in trains)
        row["engine_start_s"] = min(r["sample"]["start_s"] for r in mine if "sample" in r)
        table.append(row)
    return table


def print_table(table: list[dict], build_train_s: float) -> None:
    """`build_train_s`: tiny-disjoint's measured BC training seconds, scaled by each shape's
    training slowdown against the first shape (the 1.4M one)."""
    print("| shape (params) | hidden x layers | wave tokens/s (x limit) | eval tokens/s (x limit) | "
          "train tokens/s (x limit) | train vs 1.4M | 2-stage BC of tiny-disjoint's data, scaled | "
          "peak RSS sample / train |")
    print("|---|---|---|---|---|---|---|---|")
    base = table[0]["train"]["tokens_per_s"]
    for row in table:
        w, e, t = row["wave"], row["eval"], row["train"]
        bc = f"{build_train_s * base / t['tokens_per_s'] / 60:.0f} min"
        print(f"| {row['label']} ({row['params'] / 1e6:.2f}M) | {row['hidden']} x {row['layers']} "
              f"| {w['tokens_per_s']:,.0f} ({w['x_limit']:.1f}x) | {e['tokens_per_s']:,.0f} ({e['x_limit']:.1f}x) "
              f"| {t['tokens_per_s']:,.0f} ({t['x_limit']:.1f}x) | {base / t['tokens_per_s']:.1f}x slower "
              f"| {bc} | {row['peak_rss_mb_sample']:,} / {row['peak_rss_mb_train']:,} MB |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default=",".join(SHAPES))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--sample-threads", type=int, default=1)
    parser.add_argument("--train-threads", type=int, default=1)
    parser.add_argument("--eval-goals", type=int, default=50)
    parser.add_argument("--eval-turns", type=int, default=4)
    parser.add_argument("--train-rows", type=int, default=48)
    parser.add_argument("--train-steps", type=int, default=3)
    parser.add_argument("--skip", default="", help="comma list of sample,train to skip (smoke runs)")
    parser.add_argument("--json", default=None)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--model", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--rows", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "sample":
        record = measure_sampling(args.model, args.sample_threads, args.eval_goals, args.eval_turns)
        print("RECORD " + json.dumps(record), flush=True)
        return 0
    if args.child == "train":
        rows = json.loads(Path(args.rows).read_text())
        print("RECORD " + json.dumps(measure_training(args.model, rows, args.train_threads, args.train_steps)), flush=True)
        return 0

    shapes = [s for s in args.shapes.split(",") if s]
    skip = {s for s in args.skip.split(",") if s}
    load_before = uptime()
    started = time.time()
    print(f"start {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())} | cores {os.cpu_count()} | "
          f"threads: sampling {args.sample_threads} (OMP_NUM_THREADS={args.sample_threads}), training "
          f"{args.train_threads} | rounds {args.rounds} | uptime: {load_before}", flush=True)
    with tempfile.TemporaryDirectory(prefix="model-sizes-", dir="/tmp") as tmp:
        folders = {name: str(build_model(name, Path(tmp) / name)) for name in shapes}
        rows = training_rows(args.train_rows)
        rows_path = str(Path(tmp) / "rows.json")
        Path(rows_path).write_text(json.dumps(rows))
        print(f"models in {tmp} (random init, tiny-disjoint tokenizer); {len(rows)} training rows, "
              f"{sum(len(r['input_ids']) for r in rows):,} tokens", flush=True)
        records: list[dict] = []
        for round_index in range(args.rounds):
            order = shapes if round_index % 2 == 0 else shapes[::-1]
            for name in order:
                record = {"shape": name, "round": round_index, "params": param_count(SHAPES[name][1])}
                for kind in ("sample", "train"):
                    if kind in skip:
                        continue
                    record[kind] = run_child(kind, folders[name], args, rows_path)
                records.append(record)
                parts = []
                if "sample" in record:
                    s = record["sample"]
                    parts.append(f"wave {s['workloads']['wave']['tokens_per_s']:.0f} tok/s, "
                                 f"eval {s['workloads']['eval']['tokens_per_s']:.0f} tok/s (start {s['start_s']} s)")
                if "train" in record:
                    parts.append(f"train {record['train']['tokens_per_s']:.0f} tok/s")
                print(f"round {round_index + 1} {name}: {'; '.join(parts)} (load {os.getloadavg()[0]:.1f}, "
                      f"{time.time() - started:.0f} s)", flush=True)
                if args.json:
                    Path(args.json).write_text(json.dumps({"records": records}, indent=1))
    load_after = uptime()
    card = json.loads((ROOT / "experiments" / "results" / "tiny-disjoint.model_card.json").read_text())
    tokens_seen = card["train"]["tokens_seen"]
    print(f"\nend {time.strftime('%H:%M:%S UTC', time.gmtime())}, {time.time() - started:.0f} s | uptime: {load_after}")
    result = {"date": time.strftime("%Y-%m-%d", time.gmtime()), "uptime_before": load_before, "uptime_after": load_after,
              "seconds": round(time.time() - started), "args": {k: v for k, v in vars(args).items() if k not in
                                                                 ("child", "model", "rows")},
              "shapes": {n: {"label": SHAPES[n][0], **SHAPES[n][1], "params": param_count(SHAPES[n][1])} for n in shapes},
              "weights": "random (agentr_lib.build.model.make_model, seed 0); replies run to the 96-token limit",
              "tiny_disjoint_build": {"tokens_seen": tokens_seen, "train_seconds": card["train"]["seconds"],
                                      "build_minutes": card.get("build_minutes")},
              "records": records}
    if skip:
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=1))
        return 0
    table = summarise(records, shapes)
    result["table"] = table
    print(f"tiny-disjoint's build: {tokens_seen:,} tokens seen over its two BC stages "
          f"({card['train']['seconds']:.0f} s of training, {card.get('build_minutes')} min build)\n")
    print_table(table, card['train']['seconds'])
    print("\nfp32 matmul on each shape's projections, GFLOP/s (1 thread / training threads): " + ", ".join(
        f"{r['shape']} {r['gflops_1t']:.0f} / {r['gflops_train']:.0f}" for r in table))
    print("engine start, s: " + ", ".join(f"{r['shape']} {r['engine_start_s']}" for r in table))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
