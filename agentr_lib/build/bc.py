"""The embedded models' build: an offline tokenizer + a small Llama causal LM warm-started by
behaviour cloning (BC) on the environments' own expert demonstrations.

Why: no real weights can be downloaded here or in CI, yet the whole Agent-R loop must run on
a laptop CPU. This model is a stand-in for the instruct model -- imperfect on purpose, so that
search finds both good and bad trajectories.

Pieces: the tokenizer (build.tokenizer) trained on the demonstrations' text, a freshly
initialised `LlamaForCausalLM` (build.model), BC through the same code path as SFT
(agentr_lib.data masks + agentr_lib.train hf backend, full fine-tuning) on train task ids only
(build.demos: test, validation and a spec's other held-out goals stay unseen), in
`spec.stages` passes, and a greedy evaluation on held-out test ids (build.score) whose scores
go into model_card.json. The specs are the registry's (agentr_lib.models.SIZES).

A build works in `.<folder>.building/` beside its folder: init/ (tokenizer and initial
weights), then bc<k>/ per stage (train.train_sft's output, its checkpoint every
`CHECKPOINT_EVERY` steps while it runs, and stage.json, written last). A build killed
part-way reuses every finished part on the next call and continues a stage from its last
checkpoint, and gives the same weights as one uninterrupted build, because every part is a
function of the spec alone.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..io import atomic_write_json, read_json
from ..models import TINY_VERSION, TinySpec, model_dir_for, resolve_spec
from .demos import collect_demos
from .model import make_model
from .score import measure_test_scores
from .tokenizer import train_tokenizer

#: The TokenizeStats fields a card sums over the stages (its `examples` is `examples_kept`).
TOKEN_TOTALS: tuple[str, ...] = ("examples_kept", "tokens", "trained_tokens", "dropped_no_trained_tokens", "truncated")
#: Spec fields that may differ between a killed build and the call that resumes it: they cap or
#: score a build, they do not change its weights (threads do: a build resumes only with its own).
RESUME_FREE: tuple[str, ...] = ("minutes", "eval_tasks", "eval_max_turns")
#: Optimizer steps between a stage's checkpoints (train.SFTConfig.checkpoint_every): what a kill
#: costs at most, ~6 min of a 15M-parameter stage on 2 cores; a checkpoint is ~3x the weights
#: (the weights and AdamW's two moments).
CHECKPOINT_EVERY = 20


class BuildCutShort(RuntimeError):
    """The opt-in time cap stopped behaviour cloning before its planned steps."""


def bc_stage(spec: TinySpec, stage: int, rows: list[dict], tokenizer: Any, init_model: str | Path,
             work_dir: str | Path, progress: bool = True) -> tuple[dict, dict]:
    """One behaviour-cloning pass: tokenise `rows` with the agentr_lib.data masks and run the
    SFT hf backend (full fine-tuning) from `init_model`; returns (train metrics, tokenize stats)."""
    from ..data import tokenize_dataset
    from ..train import SFTConfig, train_sft

    dataset, tok_stats = tokenize_dataset(rows, tokenizer, spec.max_seq_length, progress=progress)
    env_tokens = {name: 0 for name in dict.fromkeys(row["env"] for row in rows)}  # envs and the phrase book
    for n, i in zip(dataset["num_tokens"], dataset["source_index"]):
        env_tokens[rows[i]["env"]] += int(n)
    config = SFTConfig(
        lora=False, learning_rate=spec.learning_rate, epochs=spec.epochs, max_steps=spec.max_steps,
        batch_size=spec.batch_size, warmup_ratio=spec.warmup_ratio, max_seq_length=spec.max_seq_length,
        seed=spec.seed + stage, threads=spec.threads, time_limit_s=spec.minutes * 60.0 if spec.minutes else None,
        init_from="scratch" if stage == 0 else "previous", save_adapter=False, progress=progress,
        checkpoint_every=CHECKPOINT_EVERY,
    )
    metrics = train_sft(str(init_model), dataset, work_dir, config, backend="hf")
    metrics["env_tokens"] = env_tokens
    metrics["stage"] = stage
    return metrics, {key: getattr(tok_stats, key) for key in TOKEN_TOTALS}


def _workspace(out: Path, spec: TinySpec) -> bool:
    """Make `out` the workspace of `spec`'s build; True when it holds an earlier attempt of the
    same build (its parts are reused), False when it was empty or another build's (cleared)."""
    record = {"version": TINY_VERSION, **{k: v for k, v in asdict(spec).items() if k not in RESUME_FREE}}
    marker = out / "build.json"
    if marker.is_file() and read_json(marker) == json.loads(json.dumps(record)):  # tuples read back as lists
        return True
    if out.exists():
        warnings.warn(f"{out}: an interrupted build of another spec, thread count or version: starting over",
                      stacklevel=3)
        shutil.rmtree(out)
    out.mkdir(parents=True)
    atomic_write_json(marker, record)
    return False


def _initial_model(spec: TinySpec, init_dir: Path, rows: list[dict]) -> None:
    """The tokenizer (trained on stage 0's demonstrations, `rows`) and the initial weights, in
    init_dir (made in a sibling folder and renamed: a killed save leaves nothing that looks finished)."""
    if not rows:
        raise RuntimeError(f"no expert demonstrations for envs {spec.envs}: check the environments")
    # every message text with its real frequency (measured: dedup left the 90-word
    # instruction at 197 tokens vs 112), plus the role names the template writes every turn
    texts = [m["content"] for row in rows for m in row["messages"]]
    texts += ["user\nassistant\nsystem\n"] * 200
    tokenizer = train_tokenizer(texts, spec.vocab_size)
    partial = init_dir.with_name(init_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    make_model(spec, tokenizer).save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    os.replace(partial, init_dir)


def _stage(spec: TinySpec, stage: int, out: Path, tokenizer: Any, previous: Path, progress: bool,
           demos: tuple[list[dict], dict] | None = None) -> dict:
    """Stage `stage`'s record (train metrics, tokenize stats, demonstration stats), from its
    stage.json when an earlier attempt finished it, else by running it on `demos` (collected
    when not given), from the stage's last checkpoint when an earlier attempt was killed in it."""
    work = out / f"bc{stage}"
    done = work / "stage.json"
    if done.is_file():
        return read_json(done)
    rows, stats = demos or collect_demos(spec, progress=progress, stage=stage)
    metrics, tokens = bc_stage(spec, stage, rows, tokenizer, previous, work, progress)
    record = {"metrics": metrics, "tokens": tokens, "demos": stats}
    if metrics["stopped_by_time_limit"]:
        raise BuildCutShort(
            f"tiny model build stopped by the {spec.minutes}-minute cap in stage {stage} after {metrics['steps']} "
            f"steps (loss {metrics['final_loss']}): nothing was cached. Rerun without --minutes (the build "
            "runs its planned steps on any machine; a loaded one is only slower)."
        )
    atomic_write_json(done, record)
    return record


def _card(spec: TinySpec, records: list[dict], n_params: int, vocab: int) -> dict:
    """model_card.json of a finished build: the spec, the data per env, the training summed over stages."""
    per_env: dict[str, dict] = {}
    for record in records:
        for name, stats in record["demos"].items():
            total = per_env.setdefault(name, {"episodes": 0, "expert_failures": stats["expert_failures"], "seeds": 0})
            total["episodes"] += stats["episodes"]
            total["seeds"] += stats["seeds"]
        for name, tokens in record["metrics"]["env_tokens"].items():
            per_env[name]["tokens"] = per_env[name].get("tokens", 0) + tokens
    totals = {("examples" if key == "examples_kept" else key): sum(r["tokens"][key] for r in records)
              for key in TOKEN_TOTALS}
    metrics = [record["metrics"] for record in records]
    seconds = sum(m["seconds"] for m in metrics)
    return {
        "name": spec.key(),
        "version": TINY_VERSION,
        "spec": asdict(spec),
        "params": int(n_params),
        "vocab": vocab,
        "tokenizer": "byte-level BPE (tokenizers), ChatML template, no default system prompt",
        "data": {"envs": list(spec.envs), "per_env": per_env, **totals},
        "train": {
            "steps": sum(m["steps"] for m in metrics),
            "tokens_trained": sum(m["tokens_trained"] for m in metrics),
            "tokens_seen": sum(m["tokens_seen"] for m in metrics),
            "seconds": round(seconds, 1),
            "tokens_per_s": round(sum(m["tokens_seen"] for m in metrics) / max(1e-9, seconds), 1),
            "final_loss": metrics[-1]["final_loss"],
            "stopped_by_time_limit": False,
            "threads": metrics[-1]["threads"],
            "stages": len(metrics),
        },
        "build_minutes": None,
        "test_scores": {},
        "conditions": f"CPU, {os.cpu_count()} cores visible, torch threads={spec.threads}",
    }


def build_tiny_model(out_dir: str | Path | None = None, size: str = "tiny", seed: int = 0,
                     envs: Sequence[str] | None = None, minutes: float | None = None, force: bool = False,
                     evaluate: bool = True, progress: bool = True, **overrides: Any) -> Path:
    """Build (or load from cache) an embedded model; returns the folder holding config,
    weights, tokenizer and model_card.json (loadable with AutoModelForCausalLM/AutoTokenizer).

    Deterministic for a seed on one machine: fixed data order, fixed step count, whatever the
    machine's load, and the same weights whether or not the build was killed and resumed (see
    the module's docstring). Not across CPUs: their kernels round differently and the 1,306
    steps amplify it (v5 rebuilt elsewhere: the same loss curve to step 20, then other weights;
    docs/embedded-model.md). `minutes` (opt-in) caps each stage: a build it stops raises
    BuildCutShort and caches nothing. The finished model is renamed into place, so an
    interrupted build never looks cached; a cached card that says it was cut short (made by an
    older version) is rebuilt, not used; `force` rebuilds from nothing."""
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
    if force:
        shutil.rmtree(out, ignore_errors=True)
    resumed = _workspace(out, spec)
    started = time.time()
    init_dir, first = out / "init", None
    if not init_dir.is_dir():
        first = collect_demos(spec, progress=progress)  # stage 0's, which the tokenizer is trained on
        _initial_model(spec, init_dir, first[0])
    # train on exactly the tokenizer that every later load (SFT, evaluation, users) gets
    tokenizer = AutoTokenizer.from_pretrained(init_dir)
    previous, records = init_dir, []
    reused = [stage for stage in range(spec.stages) if (out / f"bc{stage}" / "stage.json").is_file()]
    try:
        for stage in range(spec.stages):
            records.append(_stage(spec, stage, out, tokenizer, previous, progress, first if stage == 0 else None))
            previous = out / f"bc{stage}" / "merged"
    except BuildCutShort:
        shutil.rmtree(out, ignore_errors=True)
        raise
    # the model folder itself is the loadable model
    final_model = AutoModelForCausalLM.from_pretrained(previous)
    model = out / "model"
    shutil.rmtree(model, ignore_errors=True)
    final_model.save_pretrained(model)
    tokenizer.save_pretrained(model)
    atomic_write_json(model / "train_metrics.json", {"stages": [record["metrics"] for record in records]})
    card = _card(spec, records, sum(p.numel() for p in final_model.parameters()), len(tokenizer))
    card["build_minutes"] = round((time.time() - started) / 60.0, 2)
    if resumed:
        card["resumed"] = {"stages_reused": reused}  # build_minutes is then the resuming call's alone
    atomic_write_json(model / "model_card.json", card)
    if final_out.exists():
        shutil.rmtree(final_out)  # the cut-short or forced-out model it replaces
    final_out.parent.mkdir(parents=True, exist_ok=True)
    os.replace(model, final_out)
    shutil.rmtree(out)
    if evaluate and spec.eval_tasks:
        measure_test_scores(final_out, progress=progress)
    return final_out
