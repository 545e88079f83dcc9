"""Sampling speed: the same work through the hf and the vllm backend, side by side.

Workloads (TextCraft, the tiny profile's settings):
  wave    one expansion wave: 54 search-shaped conversations (train goals, 0-7 expert turns of
          history) x n = 4 samples at temperature 1, 96 new tokens at most, one generate call;
  search  the depth waves of a search: `search_trees` over 16 train goals (3 simulations,
          n_gen 4, depth 8, 16 trees batched, 96 new tokens), seeded;
  eval    one lockstep greedy evaluation of 100 held-out goals (10 turns, 96 new tokens), all
          100 episodes in every generate call.

Each (round, backend) runs in a child process (so peak resident memory is that backend's
own, and the engines never share a process); rounds alternate the order (hf first, then vllm
first), because this machine is shared and its speed drifts. Printed per workload: seconds,
generated tokens/s, requests per engine call, peak resident memory, the vllm/hf ratio, and the
model-FLOP estimate of the machine's arithmetic limit for that work: the model's matmul and
attention FLOPs for one prefill per conversation plus every generated token, divided by the
fp32 matmul rate measured here on the model's own shapes.

Usage: `OMP_NUM_THREADS=2 python benchmarks/sampling.py [--model PATH|random] [--rounds 2]
[--workloads wave,search,eval] [--backends hf,vllm] [--device cpu] [--json out.json]`.
`--model` defaults to the tiny model's cache folder when it is built (`python -m agentr_lib.build
build`), else `random`: a randomly initialised model of the tiny shape and tokenizer (replies
then run to the token limit, so the work is the same for both backends).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

WORKLOADS = ("wave", "search", "eval")
MAX_NEW_TOKENS = 96


# ---------------------------------------------------------------------------------------
# The model


def default_model() -> str:
    from agentr_lib.models import model_dir_for, resolve_spec

    folder = model_dir_for(resolve_spec("tiny"))
    return str(folder) if (folder / "model_card.json").exists() else "random"


def random_tiny_model(folder: Path) -> Path:
    """The tiny spec's architecture and shape, randomly initialised, with a tokenizer trained
    on TextCraft expert episodes (a vocabulary of the real model's size)."""
    from agentr_lib.envs import make_env
    from agentr_lib.build.demos import expert_episode
    from agentr_lib.build.model import make_model
    from agentr_lib.build.tokenizer import train_tokenizer
    from agentr_lib.models import resolve_spec

    env = make_env("textcraft")
    texts = [m["content"] for t in env.task_ids("train")[:120] for m in expert_episode(env, t)["messages"]]
    tokenizer = train_tokenizer(texts + ["user\nassistant\n"] * 50, resolve_spec("tiny").vocab_size)
    tokenizer.save_pretrained(folder)
    make_model(resolve_spec("tiny"), tokenizer).save_pretrained(folder)
    return folder


def model_shape(folder: str) -> dict:
    config = json.loads((Path(folder) / "config.json").read_text())
    heads, hidden = config["num_attention_heads"], config["hidden_size"]
    head = config.get("head_dim") if config.get("model_type") != "qwen2" else None
    head = head or hidden // heads
    return {"hidden": hidden, "layers": config["num_hidden_layers"], "q_dim": heads * head,
            "kv_dim": config["num_key_value_heads"] * head, "intermediate": config["intermediate_size"],
            "vocab": config["vocab_size"]}


def matmul_gflops(shape: dict, seconds: float = 1.5) -> float:
    """fp32 matmul rate on the model's own projection shapes (256 tokens at a time)."""
    import torch

    h, q, kv, i, v = shape["hidden"], shape["q_dim"], shape["kv_dim"], shape["intermediate"], shape["vocab"]
    pairs = [(h, q), (h, kv), (h, kv), (q, h), (h, i), (h, i), (i, h), (h, v)]
    x = {k: torch.randn(256, k) for k in {a for a, _ in pairs}}
    w = [torch.randn(a, b) for a, b in pairs]
    flops_per_pass = sum(2 * 256 * a * b for a, b in pairs)
    for a_b, weight in zip(pairs, w):  # warm-up
        x[a_b[0]] @ weight
    passes, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for (a, _), weight in zip(pairs, w):
            x[a] @ weight
        passes += 1
    return flops_per_pass * passes / (time.perf_counter() - started) / 1e9


def work_flops(shape: dict, prompts: list[int], generated: int, samples: int) -> float:
    """Model FLOPs of one prefill per conversation (`prompts`: their token counts) plus
    `generated` tokens over `samples` replies (attention at the average context)."""
    h, layers = shape["hidden"], shape["layers"]
    linear = layers * (2 * h * shape["q_dim"] + 2 * h * shape["kv_dim"] + 3 * h * shape["intermediate"])
    tokens = sum(prompts) + generated
    flops = 2 * linear * tokens + 2 * h * shape["vocab"] * (generated + len(prompts))
    mean_prompt = sum(prompts) / max(1, len(prompts))
    mean_reply = generated / max(1, samples)
    attention = sum(p * p / 2 for p in prompts) + generated * (mean_prompt + mean_reply / 2)
    return flops + 4 * layers * shape["q_dim"] * attention


# ---------------------------------------------------------------------------------------
# Workloads (child process)


class Recorder:
    """Wraps a policy: counts prompt tokens (one prefill per conversation), samples, calls and
    requests per call; the backend counts the generated tokens."""

    def __init__(self, policy) -> None:
        self.policy = policy
        self.prompts: list[int] = []
        self.samples = 0
        self.requests: list[int] = []
        self.overhead = 0.0  # seconds spent counting, taken off the workload's time

    def generate(self, conversations, n=1, temperature=0.0, max_new_tokens=128, seeds=None):
        started = time.perf_counter()
        tok = self.policy.tokenizer
        for conversation in conversations:
            self.prompts.append(len(tok(self.policy.prompt(conversation, max_new_tokens), add_special_tokens=False)["input_ids"]))
        self.overhead += time.perf_counter() - started
        self.samples += len(conversations) * (1 if temperature <= 0 else n)
        self.requests.append(len(conversations))
        return self.policy.generate(conversations, n=n, temperature=temperature, max_new_tokens=max_new_tokens, seeds=seeds)


def wave_conversations(count: int = 54) -> list[list[dict]]:
    from agentr_lib.agent import format_response, opening_messages
    from agentr_lib.envs import make_env

    env = make_env("textcraft")
    conversations = []
    for k, task_id in enumerate(env.task_ids("train")[:count]):
        messages = opening_messages(env.instruction, env.reset(task_id))
        steps = env.expert(task_id)
        env.reset(task_id)
        for step in steps[: k % 8]:
            messages.append({"role": "assistant", "content": format_response(step.thought, step.action)})
            messages.append({"role": "user", "content": env.step(step.action)[0]})
        conversations.append(messages)
    return conversations


def run_workload(name: str, policy) -> None:
    from agentr_lib.agent import EpisodeSettings, run_episodes
    from agentr_lib.envs import make_env
    from agentr_lib.mcts import MCTSConfig, search_trees

    if name == "wave":
        conversations = wave_conversations()
        policy.generate(conversations, n=4, temperature=1.0, max_new_tokens=MAX_NEW_TOKENS,
                        seeds=list(range(len(conversations))))
    elif name == "search":
        config = MCTSConfig(simulations=3, n_gen=4, temperature=1.0, max_depth=8, batch_trees=16,
                            max_new_tokens=MAX_NEW_TOKENS, seed=0)
        search_trees(policy, lambda: make_env("textcraft"), make_env("textcraft").task_ids("train")[:16], config,
                     progress=False, env_name="textcraft")
    elif name == "eval":
        run_episodes(policy, lambda: make_env("textcraft"), make_env("textcraft").task_ids("test")[:100],
                     EpisodeSettings(10, 0.0, MAX_NEW_TOKENS), max_concurrency=100, progress=False)
    else:
        raise ValueError(f"workload {name!r}; expected one of {WORKLOADS}")


def child(backend: str, model: str, workloads: list[str], threads: int, device: str | None) -> dict:
    import torch

    from agentr_lib.llm import load_policy

    torch.set_num_threads(threads)
    started = time.perf_counter()
    kwargs = {"threads": threads, "seed": 0}
    if device:
        kwargs["device"] = device
    policy = load_policy(backend, model, **kwargs)
    record = {"backend": backend, "start_s": round(time.perf_counter() - started, 2), "workloads": {}}
    for name in workloads:
        recorder = Recorder(policy)
        before = policy.generated_tokens
        cached = getattr(policy, "cached_prompt_tokens", 0)
        started = time.perf_counter()
        run_workload(name, recorder)
        seconds = time.perf_counter() - started - recorder.overhead
        record["workloads"][name] = {
            "seconds": round(seconds, 2), "generated": policy.generated_tokens - before,
            "samples": recorder.samples, "prompts": recorder.prompts, "calls": len(recorder.requests),
            "requests_per_call": round(statistics.mean(recorder.requests), 1) if recorder.requests else 0,
            "max_requests": max(recorder.requests, default=0),
            "cached_prompt_tokens": getattr(policy, "cached_prompt_tokens", 0) - cached,
        }
    record["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return record


# ---------------------------------------------------------------------------------------
# Orchestration (parent process)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model folder, or 'random' (default: the tiny model when built)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--backends", default="hf,vllm")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    parser.add_argument("--device", default=None, help="hf device (e.g. cuda); vllm picks its own")
    parser.add_argument("--json", default=None, help="also write the records here")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    workloads = [w for w in args.workloads.split(",") if w]
    if args.child:
        print("RECORD " + json.dumps(child(args.child, args.model, workloads, args.threads, args.device)), flush=True)
        return 0

    tmp = None
    model = args.model or default_model()
    if model == "random":
        tmp = tempfile.TemporaryDirectory(prefix="sampling-bench-")
        model = str(random_tiny_model(Path(tmp.name)))
    backends = [b for b in args.backends.split(",") if b]
    print(f"model: {args.model or model} | threads {args.threads} | cores {os.cpu_count()} | "
          f"load {os.getloadavg()[0]:.1f} | workloads {workloads} | rounds {args.rounds}", flush=True)
    records: list[dict] = []
    for round_index in range(args.rounds):
        order = backends if round_index % 2 == 0 else backends[::-1]
        for backend in order:
            command = [sys.executable, __file__, "--child", backend, "--model", model, "--workloads", ",".join(workloads),
                       "--threads", str(args.threads)] + (["--device", args.device] if args.device else [])
            done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
            lines = [line for line in done.stdout.splitlines() if line.startswith("RECORD ")]
            if done.returncode != 0 or not lines:
                print(done.stdout[-3000:], done.stderr[-3000:], sep="\n", file=sys.stderr)
                raise SystemExit(f"{backend} child failed (exit {done.returncode})")
            record = json.loads(lines[-1][len("RECORD "):])
            record["round"] = round_index
            records.append(record)
            if args.json:  # as it goes: a long run that is stopped keeps its finished rounds
                Path(args.json).write_text(json.dumps({"model": model, "records": records}, indent=1))
            summary = ", ".join(f"{w} {r['seconds']} s" for w, r in record["workloads"].items())
            print(f"round {round_index + 1} {backend}: start {record['start_s']} s, {summary}, "
                  f"peak {record['peak_rss_mb']} MB (load {os.getloadavg()[0]:.1f})", flush=True)

    shape = model_shape(model)
    import torch

    torch.set_num_threads(args.threads)
    gflops = matmul_gflops(shape)
    print(f"\nfp32 matmul on the model's shapes: {gflops:.1f} GFLOP/s ({args.threads} threads)\n")
    print("| workload | backend | seconds (best of rounds) | generated tokens/s | requests per call (max) | "
          "peak RSS | arithmetic limit | x limit |")
    print("|---|---|---|---|---|---|---|---|")
    table: dict = {}
    for name in workloads:
        for backend in backends:
            runs = [r for r in records if r["backend"] == backend]
            best = min(runs, key=lambda r: r["workloads"][name]["seconds"])
            w = best["workloads"][name]
            limit = work_flops(shape, w["prompts"], w["generated"], w["samples"]) / (gflops * 1e9)
            table[(name, backend)] = w["seconds"]
            print(f"| {name} | {backend} | {w['seconds']:.1f} ({', '.join(str(r['workloads'][name]['seconds']) for r in runs)}) "
                  f"| {w['generated'] / w['seconds']:.0f} | {w['requests_per_call']} ({w['max_requests']}) "
                  f"| {max(r['peak_rss_mb'] for r in runs)} MB | {limit:.1f} s | {w['seconds'] / limit:.1f}x |")
    if "hf" in backends and "vllm" in backends:
        print()
        for name in workloads:
            print(f"{name}: vllm {table[(name, 'hf')] / table[(name, 'vllm')]:.1f}x faster than hf")
    if args.json:
        Path(args.json).write_text(json.dumps({"model": model, "gflops": gflops, "records": records}, indent=1))
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
