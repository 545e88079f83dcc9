"""The embedded CPU default model: an offline tokenizer + a small Llama causal LM warm-started
by behaviour cloning (BC) on the environments' own expert demonstrations.

Why: no real weights can be downloaded here or in CI, yet the whole Agent-R loop must run on
a laptop CPU. This model is a stand-in for the instruct model -- imperfect on purpose, so that
search finds both good and bad trajectories.

Pieces: a byte-level BPE tokenizer trained with `tokenizers` on environment text (Qwen2's own
pre-tokenizer, so that `AutoTokenizer` reloads it exactly), with a ChatML/Qwen2.5-style chat template (no default system
prompt: it would cost tokens on every turn); a `LlamaForCausalLM`; BC through the same code
path as SFT (agentr_lib.data masks + agentr_lib.train hf backend, full fine-tuning) on train
task ids only (test goals stay unseen); a greedy evaluation on held-out test ids whose scores
go into model_card.json.

CLI: `python -m agentr_lib.tiny build [--size tiny|micro|micro-fluent] [--force] [--seed 0]`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .agent import NO_ACTION_OBSERVATION, REVISION_ACTION, Turn, expert_trajectory, opening_messages
from .io import atomic_write_json, read_json
# the specs it builds, from the registry (scripts read SIZES and TINY_VERSION here too)
from .models import SIZES, TINY_VERSION, TinySpec, model_dir_for, resolve_spec  # noqa: F401
from .prompts import REVISION_SIGNALS, verifier_messages

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

# ChatML as Qwen2.5 renders it, minus the default system prompt. `{% generation %}` marks the
# trained part of assistant turns (content + <|im_end|>) for tools that read the markers;
# agentr_lib.data derives the same spans from prefix renders.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['role'] == 'assistant' %}"
    "{% generation %}{{- message['content'] + '<|im_end|>' }}{% endgeneration %}{{- '\\n' }}"
    "{%- else %}"
    "{{- message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


# ---------------------------------------------------------------------------------------
# Tokenizer


def train_tokenizer(texts: Sequence[str], vocab_size: int) -> Any:
    """Byte-level BPE trained on `texts` (order matters for ties: pass them sorted/deterministic),
    returned as the `Qwen2Tokenizer` that `AutoTokenizer` rebuilds from the saved files.

    Why Qwen2's own pipeline (NFC, its split regex with single digits, byte-level): transformers
    loads any tokenizer saved next to a qwen2 config.json as `Qwen2Tokenizer`, which rebuilds the
    pre-tokenizer from scratch. A BPE trained with another pre-tokenizer then splits text
    differently at inference than in training (measured: `get 4` became `get`, ` `, `4`, and the
    model garbled every action with a number in it). Training with the same pipeline and wrapping
    the learned vocab/merges in `Qwen2Tokenizer` makes the round trip exact (a test checks)."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX, Qwen2Tokenizer

    core = Tokenizer(models.BPE(unk_token=None))
    core.normalizer = normalizers.NFC()
    core.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(list(texts), trainer=trainer)
    learned = json.loads(core.to_str())["model"]
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in learned["merges"]]
    tokenizer = Qwen2Tokenizer(
        vocab=learned["vocab"],
        merges=merges,
        unk_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        extra_special_tokens=["<|im_start|>"],
        clean_up_tokenization_spaces=False,
        model_max_length=4096,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.padding_side = "left"
    return tokenizer


def make_model(spec: TinySpec, tokenizer: Any) -> Any:
    """A freshly initialised causal LM of the spec's architecture and shape (seeded)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    classes = {"llama": (LlamaConfig, LlamaForCausalLM), "qwen2": (Qwen2Config, Qwen2ForCausalLM)}
    if spec.architecture not in classes:
        raise ValueError(f"architecture={spec.architecture!r}; expected one of {sorted(classes)}")
    config_class, model_class = classes[spec.architecture]
    shape = {"head_dim": spec.head_dim} if spec.architecture == "llama" else {}
    torch.manual_seed(spec.seed)
    config = config_class(
        **shape,
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_kv_heads,
        max_position_embeddings=spec.max_position,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.pad_token_id,
        rope_theta=10000.0,
    )
    model = model_class(config)
    model.generation_config.eos_token_id = config.eos_token_id
    model.generation_config.pad_token_id = config.pad_token_id
    model.generation_config.bos_token_id = None
    return model


# ---------------------------------------------------------------------------------------
# Demonstrations


def _make_env(name: str, seed: int | None = None) -> Any:
    from .envs import make_env

    if seed is None:
        return make_env(name)
    try:
        return make_env(name, seed=seed)
    except TypeError:
        return make_env(name)


def expert_episode(env: Any, task_id: int, first_observation: str | None = None, thoughts: bool = True) -> dict | None:
    """The expert's episode on `task_id` (agent.expert_trajectory) as a training
    conversation (all assistant turns trained) with its final reward. `first_observation`
    replaces the reset text shown to the model (the episode itself is unchanged); without
    `thoughts` each reply is its `Action:` line alone."""
    trajectory = expert_trajectory(env, task_id)
    messages = opening_messages(env.instruction, first_observation if first_observation is not None
                                else trajectory.first_observation)
    for turn in trajectory.steps:
        messages.append({"role": "assistant", "content": turn.response if thoughts else f"Action: {turn.action}"})
        messages.append({"role": "user", "content": turn.observation})
    if messages[-1]["role"] == "user" and len(messages) > 3:
        messages.pop()  # the final observation is never trained; keep the episode ending on the agent
    for message in messages:
        message["loss"] = message["role"] == "assistant"
    reward = trajectory.steps[-1].reward if trajectory.steps else 0.0
    return {"messages": messages, "reward": float(reward), "done": trajectory.done}


#: What the user asks in a phrase-book conversation (our words; never a task, never the game).
PHRASE_BOOK_REQUESTS: tuple[str, ...] = (
    "Say in one sentence that your last step was a mistake and that you will change your plan.",
    "How would you admit an error and decide to fix it?",
    "Tell me that you went wrong and will try again.",
)


def phrase_book(repeats: int) -> list[dict]:
    """Conversations that teach the revision turn's words (`prompts.REVISION_SIGNALS` and the
    revision action), never the turn itself: a user asks for a sentence admitting a mistake and
    the assistant says one. An instruct model knows these words before Agent-R; the tiny model
    knows only environment text. No task, no game state, no `Thought:`/`Action:` lines, so
    the base model still never revises in an episode (measured: 0 revision turns at test)."""
    rows = []
    for index, signal in enumerate(REVISION_SIGNALS):
        request = PHRASE_BOOK_REQUESTS[index % len(PHRASE_BOOK_REQUESTS)]
        messages = [{"role": "user", "content": request, "loss": False},
                    {"role": "assistant", "content": f"{signal} I {REVISION_ACTION} and look again.", "loss": True}]
        rows += [{"messages": messages, "env": "phrase_book", "task_id": index}] * repeats
    return rows


#: The judge-book replies: the judgment line alone (`prompts.judgment_in` parses it; a reason
#: first cost the micro model the line: unparsed at 24 new tokens).
JUDGE_BOOK_REPLIES: dict[str, str] = {"Good": "Judgment: Good", "Bad": "Judgment: Bad"}


def judge_book(env: Any, task_id: int, repeats: int, steps: int = 3, history: int = 2) -> list[dict]:
    """Verifier conversations (`prompts.verifier_messages`, the model verifier's prompt) over
    the expert's episode on `task_id`, over its first `steps` steps: each expert step judged
    Good, and a reply with no action in its place judged Bad. Why: a micro model never writes
    a judgment line of its own, so the GPU rehearsal's verdicts were all unparsed and Good/Bad
    parsing never ran; an instruct model can already answer this prompt. At most `history`
    earlier steps are shown (the micro model's context is 2,048 tokens of a 320-token vocabulary)."""
    trajectory = expert_trajectory(env, task_id)
    invalid = Turn("", None, NO_ACTION_OBSERVATION, 0.0, False)
    rows = []
    for index, step in enumerate(trajectory.steps[:steps]):
        shown = trajectory.steps[max(0, index - history):index]
        for verdict, judged in (("Good", step), ("Bad", invalid)):
            prompt = verifier_messages(env.instruction, trajectory.first_observation, shown, judged,
                                       omitted=index - len(shown))
            messages = [{**prompt[0], "loss": False},
                        {"role": "assistant", "content": JUDGE_BOOK_REPLIES[verdict], "loss": True}]
            rows += [{"messages": messages, "env": "judge_book", "task_id": int(task_id)}] * repeats
    return rows


def _look_alike_goals(env: Any, ids: Sequence[int]) -> dict[int, list[int]]:
    """For each goal, the other train goals sharing a word with its name (diamond boots for
    diamond helmet), or all of them when none does. Why: the model copied the goal's first word
    and let memory finish the name; a look-alike in the same list makes it read the whole name."""
    words = {i: set(env.goal_name(i).split()) for i in ids}
    alike: dict[int, list[int]] = {}
    for task_id in ids:
        others = [i for i in ids if i != task_id]
        alike[task_id] = [i for i in others if words[task_id] & words[i]] or others
    return alike


def demonstrated_ids(env: Any, held_out: Sequence[str]) -> list[int]:
    """The env's train ids minus every `held_out` split it has."""
    excluded: set[int] = set()
    for split in held_out:
        try:
            excluded |= set(env.task_ids(split))
        except ValueError:  # the env has no such split: nothing of it to hold out
            continue
    return [task_id for task_id in env.task_ids("train") if task_id not in excluded]


def collect_demos(spec: TinySpec, progress: bool = True, stage: int = 0) -> tuple[list[dict], dict]:
    """Expert demonstrations on TRAIN task ids only, per env; returns (rows, per-env stats).

    TextCraft: every train goal under `textcraft_seeds` distractor seeds (the env's `seed`
    argument, when it has one). Other envs: each train task's expert path, repeated
    `other_env_repeats` times in the mix."""
    from tqdm.auto import tqdm

    rows: list[dict] = []
    stats: dict[str, dict] = {}
    judge_rows = 0
    for name in spec.envs:
        k = spec.textcraft_seeds
        seeds = list(range(stage * k, (stage + 1) * k)) if name == "textcraft" else [None]
        kept = failed = 0
        look_alikes: dict[int, list[int]] | None = None  # the same train ids under every seed
        for seed in seeds:
            env = _make_env(name, seed if seed is not None else None)
            try:
                ids = demonstrated_ids(env, spec.held_out)
                if spec.max_train_tasks is not None:
                    ids = ids[: spec.max_train_tasks]
                pick = random.Random(f"companions-{spec.seed}-{seed}")
                if name == "textcraft" and spec.textcraft_companion_share > 0 and look_alikes is None:
                    look_alikes = _look_alike_goals(env, ids)
                for task_id in tqdm(ids, desc=f"demos {name} seed {seed}", disable=not progress, leave=False):
                    first = None
                    if name == "textcraft" and pick.random() < spec.textcraft_companion_share:
                        companion = pick.choice(look_alikes[task_id])
                        first = env.observation(task_id, companions=(companion,))
                    try:
                        episode = expert_episode(env, task_id, first, thoughts=spec.thoughts)
                    except Exception as err:  # noqa: BLE001 -- a broken expert path is skipped and counted
                        print(f"[tiny] {name} task {task_id}: expert failed ({type(err).__name__}: {err})", file=sys.stderr)
                        episode = None
                    if episode is None or episode["reward"] <= 0:
                        failed += 1
                        continue
                    repeats = 1 if name == "textcraft" else spec.other_env_repeats
                    for _ in range(repeats):
                        rows.append({"messages": episode["messages"], "env": name, "task_id": int(task_id)})
                    kept += 1
                    if spec.judge_book_repeats and seed == seeds[0]:
                        judged = judge_book(env, task_id, spec.judge_book_repeats)
                        rows += judged
                        judge_rows += len(judged)
            finally:
                env.close()
        stats[name] = {"episodes": kept, "expert_failures": failed, "seeds": len(seeds)}
    if judge_rows:
        stats["judge_book"] = {"episodes": judge_rows, "expert_failures": 0, "seeds": 0}
    if spec.phrase_book_repeats:
        book = phrase_book(spec.phrase_book_repeats)
        rows += book
        stats["phrase_book"] = {"episodes": len(book), "expert_failures": 0, "seeds": 0}
    random.Random(spec.seed if stage == 0 else f"{spec.seed}-{stage}").shuffle(rows)
    return rows, stats


# ---------------------------------------------------------------------------------------
# Build


def bc_stage(spec: TinySpec, stage: int, rows: list[dict], tokenizer: Any, init_model: str | Path,
             work_dir: str | Path, progress: bool = True) -> tuple[dict, Any]:
    """One behaviour-cloning pass: tokenise `rows` with the agentr_lib.data masks and run the
    SFT hf backend (full fine-tuning) from `init_model`; returns (train metrics, TokenizeStats)."""
    from .data import tokenize_dataset
    from .train import SFTConfig, train_sft

    dataset, tok_stats = tokenize_dataset(rows, tokenizer, spec.max_seq_length, progress=progress)
    env_tokens = {name: 0 for name in dict.fromkeys(row["env"] for row in rows)}  # envs and the phrase book
    for n, i in zip(dataset["num_tokens"], dataset["source_index"]):
        env_tokens[rows[i]["env"]] += int(n)
    config = SFTConfig(
        lora=False, learning_rate=spec.learning_rate, epochs=spec.epochs, max_steps=spec.max_steps,
        batch_size=spec.batch_size, warmup_ratio=spec.warmup_ratio, max_seq_length=spec.max_seq_length,
        seed=spec.seed + stage, threads=spec.threads, time_limit_s=spec.minutes * 60.0 if spec.minutes else None,
        init_from="scratch" if stage == 0 else "previous", save_adapter=False, progress=progress,
    )
    metrics = train_sft(str(init_model), dataset, work_dir, config, backend="hf")
    metrics["env_tokens"] = env_tokens
    metrics["stage"] = stage
    return metrics, tok_stats


def build_tiny_model(out_dir: str | Path | None = None, size: str = "tiny", seed: int = 0,
                     envs: Sequence[str] | None = None, minutes: float | None = None, force: bool = False,
                     evaluate: bool = True, progress: bool = True, **overrides: Any) -> Path:
    """Build (or load from cache) the tiny model; returns the folder holding config,
    weights, tokenizer and model_card.json (loadable with AutoModelForCausalLM/AutoTokenizer).

    Deterministic for a seed on one machine: fixed data order, fixed step count, whatever the
    machine's load. Not across CPUs: their kernels round differently and the 1,306 steps amplify
    it (v5 rebuilt elsewhere: the same loss curve to step 20, then other weights; README).
    `minutes` (opt-in) caps each stage: a build it stops raises BuildCutShort and caches
    nothing. The model is built in a temp folder beside `out` and renamed into place, so an
    interrupted build never looks cached; a cached card that says it was cut short (made by
    an older version) is rebuilt, not used."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if minutes is not None:
        overrides["minutes"] = minutes
    spec = resolve_spec(size, seed, envs, **overrides)
    final_out = Path(out_dir) if out_dir is not None else model_dir_for(spec)
    card_path = final_out / "model_card.json"
    if card_path.exists() and not force:
        if read_json(card_path).get("train", {}).get("stopped_by_time_limit"):
            warnings.warn(f"{final_out}: this cached model was cut short by a time cap (its model_card.json says "
                          "stopped_by_time_limit): rebuilding it", stacklevel=2)
        else:
            if evaluate and spec.eval_tasks:  # finish scoring an interrupted build (episodes resume)
                missing = [name for name in spec.envs if name not in read_json(card_path).get("test_scores", {})]
                if missing:
                    measure_test_scores(final_out, envs=missing, n_tasks=spec.eval_tasks,
                                        max_turns=spec.eval_max_turns, progress=progress, threads=spec.threads)
            return final_out
    out = final_out.parent / f".{final_out.name}.building"
    shutil.rmtree(out, ignore_errors=True)  # a build killed half-way starts over
    started = time.time()
    random.seed(spec.seed)
    torch.manual_seed(spec.seed)

    rows, demo_stats = collect_demos(spec, progress=progress)
    if not rows:
        raise RuntimeError(f"no expert demonstrations for envs {spec.envs}: check the environments")
    # every message text with its real frequency (measured: dedup left the 90-word
    # instruction at 197 tokens vs 112), plus the role names the template writes every turn
    texts = [m["content"] for row in rows for m in row["messages"]]
    texts += ["user\nassistant\nsystem\n"] * 200
    init_dir = out / "init"
    tokenizer = train_tokenizer(texts, spec.vocab_size)
    make_model(spec, tokenizer).save_pretrained(init_dir)
    tokenizer.save_pretrained(init_dir)
    # train on exactly the tokenizer that every later load (SFT, evaluation, users) gets
    tokenizer = AutoTokenizer.from_pretrained(init_dir)
    previous = init_dir
    all_metrics: list[dict] = []
    tok_totals = {"examples": 0, "tokens": 0, "trained_tokens": 0, "dropped_no_trained_tokens": 0, "truncated": 0}
    for stage in range(spec.stages):
        if stage:
            rows, stage_stats = collect_demos(spec, progress=progress, stage=stage)
            for name, record in stage_stats.items():
                demo_stats[name]["episodes"] += record["episodes"]
                demo_stats[name]["seeds"] += record["seeds"]
        metrics, tok_stats = bc_stage(spec, stage, rows, tokenizer, previous, out / f"bc{stage}", progress)
        for name, tokens in metrics["env_tokens"].items():
            demo_stats[name]["tokens"] = demo_stats[name].get("tokens", 0) + tokens
        for key in tok_totals:
            tok_totals[key] += getattr(tok_stats, "examples_kept" if key == "examples" else key)
        all_metrics.append(metrics)
        previous = out / f"bc{stage}" / "merged"
    merged = previous
    # the model folder itself is the loadable model
    final_model = AutoModelForCausalLM.from_pretrained(merged)
    final_model.save_pretrained(out)
    AutoTokenizer.from_pretrained(merged).save_pretrained(out)
    n_params = sum(p.numel() for p in final_model.parameters())
    atomic_write_json(out / "train_metrics.json", {"stages": all_metrics})
    shutil.rmtree(init_dir, ignore_errors=True)
    for stage in range(spec.stages):
        shutil.rmtree(out / f"bc{stage}", ignore_errors=True)
    card = {
        "name": spec.key(),
        "version": TINY_VERSION,
        "spec": asdict(spec),
        "params": int(n_params),
        "vocab": len(tokenizer),
        "tokenizer": "byte-level BPE (tokenizers), ChatML template, no default system prompt",
        "data": {"envs": list(spec.envs), "per_env": demo_stats, **tok_totals},
        "train": {
            "steps": sum(m["steps"] for m in all_metrics),
            "tokens_trained": sum(m["tokens_trained"] for m in all_metrics),
            "tokens_seen": sum(m["tokens_seen"] for m in all_metrics),
            "seconds": round(sum(m["seconds"] for m in all_metrics), 1),
            "tokens_per_s": round(sum(m["tokens_seen"] for m in all_metrics) / max(1e-9, sum(m["seconds"] for m in all_metrics)), 1),
            "final_loss": all_metrics[-1]["final_loss"],
            "stopped_by_time_limit": any(m["stopped_by_time_limit"] for m in all_metrics),
            "threads": all_metrics[-1]["threads"],
            "stages": len(all_metrics),
        },
        "build_minutes": None,
        "test_scores": {},
        "conditions": f"CPU, {os.cpu_count()} cores visible, torch threads={spec.threads}",
    }
    card["build_minutes"] = round((time.time() - started) / 60.0, 2)
    if card["train"]["stopped_by_time_limit"]:
        shutil.rmtree(out, ignore_errors=True)
        raise BuildCutShort(
            f"tiny model build stopped by the {spec.minutes}-minute cap after {card['train']['steps']} steps "
            f"(final loss {card['train']['final_loss']}): nothing was cached. Rerun without --minutes (the build "
            "runs its planned steps on any machine; a loaded one is only slower)."
        )
    atomic_write_json(out / "model_card.json", card)
    if final_out.exists():
        shutil.rmtree(final_out)  # the cut-short or forced-out model it replaces
    final_out.parent.mkdir(parents=True, exist_ok=True)
    os.replace(out, final_out)
    if evaluate and spec.eval_tasks:
        measure_test_scores(final_out, progress=progress)
    return final_out


class BuildCutShort(RuntimeError):
    """The opt-in time cap stopped behaviour cloning before its planned steps."""


def measure_test_scores(model_dir: str | Path, envs: Sequence[str] | None = None, n_tasks: int | None = None,
                        max_turns: int | None = None, progress: bool = True, threads: int | None = None) -> dict:
    """Greedy scores on held-out TEST ids with the project's evaluator (the numbers the
    pipeline reports; per-episode JSONL under <model_dir>/eval/), written into
    model_card.json["test_scores"]."""
    from .evaluate import evaluate
    from .llm import load_policy

    model_dir = Path(model_dir)
    card = read_json(model_dir / "model_card.json")
    spec = card["spec"]
    envs = list(envs or spec["envs"])
    n_tasks = n_tasks if n_tasks is not None else spec["eval_tasks"]
    max_turns = max_turns or spec["eval_max_turns"]
    # vllm where it runs (greedy replies equal hf's on 100/100 prompts of this model, 5x faster), else hf
    policy = load_policy("auto", str(model_dir), threads=threads or spec.get("threads"), seed=spec.get("seed", 0))
    for name in envs:
        env = _make_env(name)
        try:
            ids = list(env.task_ids("test"))
        finally:
            env.close()
        if n_tasks is not None:
            ids = ids[:n_tasks]
        started = time.time()
        result = dict(evaluate(policy, name, ids, model_dir / "eval", max_turns=max_turns, max_new_tokens=96,
                               progress=progress))
        result.update(evaluator=f"agentr_lib.evaluate ({policy.backend_name} backend, batched)", tasks=result.get("n", len(ids)),
                      backend=policy.backend_name,
                      seconds=round(time.time() - started, 1), max_turns=max_turns)
        card = read_json(model_dir / "model_card.json")
        card.setdefault("test_scores", {})[name] = result
        atomic_write_json(model_dir / "model_card.json", card)
    return card["test_scores"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agentr_lib.tiny", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build (or reuse the cached) tiny model")
    build.add_argument("--size", default="tiny", choices=sorted(SIZES))
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--envs", default=None, help="comma-separated env names (default: the size's)")
    build.add_argument("--minutes", type=float, default=None,
                       help="cap on BC training minutes: a build it stops fails and caches nothing")
    build.add_argument("--threads", type=int, default=None, help="torch threads (default 2; use 1 on a busy machine)")
    build.add_argument("--out", default=None, help="output folder (default data/models/<key>)")
    build.add_argument("--force", action="store_true", help="rebuild even when cached")
    build.add_argument("--no-eval", action="store_true", help="skip the held-out greedy evaluation")
    score = sub.add_parser("eval", help="measure greedy test scores of a built model into its model_card.json")
    score.add_argument("model_dir")
    score.add_argument("--envs", default=None)
    score.add_argument("--tasks", type=int, default=None)
    score.add_argument("--max-turns", type=int, default=None)
    score.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.command == "eval":
        scores = measure_test_scores(args.model_dir, args.envs.split(",") if args.envs else None, args.tasks,
                                     args.max_turns, threads=args.threads)
        print(json.dumps(scores, indent=1))
        return 0
    envs = args.envs.split(",") if args.envs else None
    extra = {"threads": args.threads} if args.threads else {}
    try:
        path = build_tiny_model(args.out, size=args.size, seed=args.seed, envs=envs, minutes=args.minutes,
                                force=args.force, evaluate=not args.no_eval, **extra)
    except BuildCutShort as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(path)
    print(json.dumps(read_json(path / "model_card.json").get("test_scores", {}), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
