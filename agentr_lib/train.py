"""Phase II SFT on pre-tokenised input_ids + labels (agentr_lib.data masks).

Two backends, one data path and one output layout:
- `hf` (CPU or GPU): transformers + peft LoRA, or full fine-tuning (`lora=False`, the tiny
  model). A small own training loop (AdamW, warmup + cosine, length-grouped padded batches):
  no TRL (TRL 1.15's trainer crashes on CPU-only torch) and less per-step overhead than
  `transformers.Trainer` on a 1M-parameter model.
- `unsloth` (CUDA GPU): 4-bit base, LoRA with Unsloth gradient checkpointing, 8-bit AdamW,
  `transformers.Trainer` on the same tokenised dataset; saves the adapter and a merged
  16-bit model.

Outputs in out_dir: `adapter/` (LoRA only), `merged/` (the full model the next iteration
samples with, tokenizer saved beside it), `train_metrics.json`. Its `data` entry says what
tokenization kept: `per_kind[kind]` counts rows in, kept, truncated (oldest turns dropped as at
inference, see agentr_lib.data) and dropped; a kind dropped entirely raises data.KindDropped.
`tokens_per_s` is tokens seen (trained + masked context) per second of the training loop
(`seconds`), loading and saving excluded.

Unsloth must be imported before transformers/peft, and never on a CPU machine: this module
imports neither at top level, and `select_backend("auto")` only looks for the package.
"""

from __future__ import annotations

import importlib.util
import math
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .io import atomic_write_json
from .profiles import default

DEFAULT_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class SFTConfig:
    """SFT hyper-parameters. The profile's keys take the schema's defaults
    (agentr_lib.profiles, where each one's meaning is written; `sft.epochs` is `num_epochs`);
    the rest are ours (the paper: LoRA on Llama-3.1-8B; ours adds full FT for tiny)."""

    lora: bool = default("sft.lora")
    lora_r: int = default("sft.lora_r")
    lora_alpha: int = default("sft.lora_alpha")
    lora_dropout: float = 0.0
    target_modules: tuple[str, ...] = DEFAULT_TARGET_MODULES
    learning_rate: float = default("sft.learning_rate")
    num_epochs: float = default("sft.epochs")
    max_steps: int | None = None
    batch_size: int = default("sft.batch_size")
    grad_accum: int = 1
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    max_seq_length: int = default("sft.max_seq_length")
    seed: int = 0
    threads: int | None = None
    time_limit_s: float | None = None
    log_every: int = 10
    #: "previous" (the last iteration's merged model, the default), "base", or "scratch" (BC)
    init_from: str = default("sft.init_from")
    save_adapter: bool = True
    save_merged: bool = True
    progress: bool = True
    # unsloth only
    load_in_4bit: bool = True
    optim: str = "adamw_8bit"


def select_backend(backend: str = "auto") -> tuple[str, str]:
    """(backend, reason). "auto" = unsloth when a CUDA device and the package exist, else hf.
    Never imports unsloth."""
    if backend not in ("auto", "hf", "unsloth"):
        raise ValueError(f"backend={backend!r}; expected 'auto', 'hf' or 'unsloth'")
    import torch

    has_cuda = torch.cuda.is_available()
    has_unsloth = importlib.util.find_spec("unsloth") is not None
    if backend == "hf":
        return "hf", "requested"
    if backend == "unsloth":
        if not has_cuda:
            raise RuntimeError("backend='unsloth' needs a CUDA GPU; none is available (use backend='hf')")
        if not has_unsloth:
            raise RuntimeError("backend='unsloth': the unsloth package is not installed (pip install -e .[gpu])")
        return "unsloth", "requested"
    if has_cuda and has_unsloth:
        return "unsloth", "auto: CUDA GPU and the unsloth package are available"
    if not has_cuda:
        return "hf", "auto: no CUDA GPU"
    return "hf", "auto: CUDA GPU but the unsloth package is not installed"


def resolve_init_model(base_model: str, previous_merged: str | None, init_from: str = "previous") -> str:
    """Which model iteration k+1 starts from: the previous iteration's merged model (default)
    or the base model."""
    if init_from == "previous":
        return previous_merged or base_model
    if init_from == "base":
        return base_model
    raise ValueError(f"init_from={init_from!r}; expected 'previous' or 'base'")


def _ensure_tokenized(dataset: Any, tokenizer: Any, max_seq_length: int) -> tuple[Any, dict]:
    from .data import tokenize_dataset

    columns = getattr(dataset, "column_names", None) or (list(dataset[0]) if len(dataset) else [])
    if "input_ids" in columns and "labels" in columns:
        ids = dataset["input_ids"]
        labels = dataset["labels"]
        tokens = sum(len(x) for x in ids)
        trained = sum(sum(1 for t in x if t != -100) for x in labels)
        return dataset, {"examples_in": len(ids), "examples_kept": len(ids), "tokens": tokens,
                         "trained_tokens": trained, "masked_fraction": 1 - trained / tokens if tokens else 0.0,
                         "pre_tokenized": True}
    if "messages" not in columns:
        raise KeyError(f"dataset columns {columns}: expected 'input_ids'+'labels' or 'messages'")
    tokenized, stats = tokenize_dataset(dataset, tokenizer, max_seq_length)
    return tokenized, stats.to_dict()


def _batches(lengths: list[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Length-grouped batches: shuffle, sort within mega-batches of 50 batches, shuffle batches
    (less padding, still random)."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    mega = batch_size * 50
    batches = []
    for start in range(0, len(order), mega):
        chunk = sorted(order[start:start + mega], key=lambda i: lengths[i])
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def pad_batch(rows: list[dict], pad_id: int) -> dict:
    """Right-pad input_ids (pad_id), attention_mask (0) and labels (-100) to the longest row."""
    import torch

    width = max(len(r["input_ids"]) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    for i, row in enumerate(rows):
        n = len(row["input_ids"])
        ids[i, :n] = torch.tensor(row["input_ids"])
        mask[i, :n] = 1
        labels[i, :n] = torch.tensor(row["labels"])
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


class PadCollator:
    """The padding collator for transformers.Trainer (unsloth backend)."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, rows: list[dict]) -> dict:
        return pad_batch(rows, self.pad_id)


def _lr_at(step: int, total: int, warmup: int, peak: float) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def batch_loss(model: Any, batch: dict) -> float:
    """Mean token loss of `model` on a padded batch (for tests and quick checks)."""
    import torch

    model.eval()
    with torch.no_grad():
        return float(model(**batch).loss)


def trained_token_loss(model: Any, batch: dict) -> Any:
    """The causal-LM loss of `model(**batch).loss` (mean over labelled next tokens), with the
    output head applied only where a label is trained. Why: ~80% of agent tokens are masked
    context, and on the tiny model the vocabulary head over every position was ~15% of a
    training step (measured in benchmarks/bench_train_step.py)."""
    import torch

    hidden = model.get_decoder()(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    targets = batch["labels"][:, 1:]
    trained = targets != -100
    logits = model.get_output_embeddings()(hidden[:, :-1][trained])
    return torch.nn.functional.cross_entropy(logits.float(), targets[trained])


def _train_hf(base_model: str, dataset: Any, out_dir: Path, config: SFTConfig) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    tokenizer = AutoTokenizer.from_pretrained(base_model)
    dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
    model = AutoModelForCausalLM.from_pretrained(base_model, dtype=dtype)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device)
    tokenized, data_stats = _ensure_tokenized(dataset, tokenizer, config.max_seq_length)
    if len(tokenized) == 0:
        raise ValueError("no training examples left after tokenization (all dropped: no trained tokens)")
    if config.lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(
            r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
            target_modules=list(config.target_modules), task_type="CAUSAL_LM",
        ))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    rows = {"input_ids": tokenized["input_ids"], "labels": tokenized["labels"]}
    lengths = [len(x) for x in rows["input_ids"]]
    rng = random.Random(config.seed)
    steps_per_epoch = math.ceil(len(lengths) / config.batch_size / config.grad_accum)
    total = config.max_steps or max(1, math.ceil(steps_per_epoch * config.num_epochs))
    warmup = max(1, int(total * config.warmup_ratio))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    from tqdm.auto import tqdm

    curve: list[dict] = []
    tokens_trained = tokens_seen = 0
    started = time.time()
    stopped_by_time = False
    step = 0
    queue: list[list[int]] = []
    bar = tqdm(total=total, desc="sft", disable=not config.progress)
    model.train()
    running = 0.0
    while step < total:
        optimizer.zero_grad(set_to_none=True)
        step_loss = 0.0
        for _ in range(config.grad_accum):
            if not queue:
                queue = _batches(lengths, config.batch_size, rng)
            index = queue.pop()
            batch = pad_batch([{"input_ids": rows["input_ids"][i], "labels": rows["labels"][i]} for i in index], pad_id)
            batch = {k: v.to(device) for k, v in batch.items()}
            loss = trained_token_loss(model, batch) / config.grad_accum
            loss.backward()
            step_loss += float(loss.detach())
            tokens_trained += int((batch["labels"] != -100).sum())
            tokens_seen += int(batch["attention_mask"].sum())
        if config.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
        for group in optimizer.param_groups:
            group["lr"] = _lr_at(step, total, warmup, config.learning_rate)
        optimizer.step()
        step += 1
        running = step_loss if step == 1 else 0.9 * running + 0.1 * step_loss
        if step % config.log_every == 0 or step == total or step == 1:
            curve.append({"step": step, "loss": round(step_loss, 5), "smoothed": round(running, 5),
                          "lr": optimizer.param_groups[0]["lr"], "tokens_seen": tokens_seen,
                          "seconds": round(time.time() - started, 2)})
        bar.update(1)
        bar.set_postfix(loss=f"{running:.3f}")
        if config.time_limit_s is not None and time.time() - started > config.time_limit_s:
            stopped_by_time = True
            break
    bar.close()
    seconds = time.time() - started
    model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    if config.lora:
        if config.save_adapter:
            model.save_pretrained(out_dir / "adapter")
            tokenizer.save_pretrained(out_dir / "adapter")
        merged = model.merge_and_unload()
    else:
        merged = model
    if config.save_merged:
        merged.save_pretrained(out_dir / "merged")
        tokenizer.save_pretrained(out_dir / "merged")
    return {
        "steps": step, "planned_steps": total, "curve": curve, "final_loss": curve[-1]["smoothed"] if curve else None,
        "tokens_trained": tokens_trained, "tokens_seen": tokens_seen, "seconds": round(seconds, 2),
        "tokens_per_s": round(tokens_seen / seconds, 1) if seconds else None, "stopped_by_time_limit": stopped_by_time,
        "threads": torch.get_num_threads(), "device": device, "data": data_stats,
        "trainable_params": sum(p.numel() for p in params),
    }


def _train_unsloth(base_model: str, dataset: Any, out_dir: Path, config: SFTConfig) -> dict:  # pragma: no cover - GPU
    import unsloth  # noqa: F401  (must come before transformers/peft)
    from unsloth import FastLanguageModel
    from transformers import Trainer, TrainingArguments

    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=base_model, max_seq_length=config.max_seq_length, load_in_4bit=config.load_in_4bit, dtype=None,
    )
    model = FastLanguageModel.get_peft_model(
        model, r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
        target_modules=list(config.target_modules), use_gradient_checkpointing="unsloth", random_state=config.seed,
    )
    tokenized, data_stats = _ensure_tokenized(dataset, tokenizer, config.max_seq_length)
    tokenized = tokenized.select_columns(["input_ids", "labels"])
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    args = TrainingArguments(
        output_dir=str(out_dir / "checkpoints"), per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum, learning_rate=config.learning_rate,
        num_train_epochs=config.num_epochs, max_steps=config.max_steps or -1, warmup_ratio=config.warmup_ratio,
        weight_decay=config.weight_decay, lr_scheduler_type="cosine", optim=config.optim,
        logging_steps=config.log_every, save_strategy="no", report_to=[], seed=config.seed,
        bf16=True, remove_unused_columns=False, max_grad_norm=config.max_grad_norm,
    )
    import torch

    torch.cuda.reset_peak_memory_stats()
    trainer = Trainer(model=model, args=args, train_dataset=tokenized, data_collator=PadCollator(pad_id))
    started = time.time()
    result = trainer.train()
    seconds = time.time() - started
    model.save_pretrained(str(out_dir / "adapter"))
    tokenizer.save_pretrained(str(out_dir / "adapter"))
    if config.save_merged:
        model.save_pretrained_merged(str(out_dir / "merged"), tokenizer, save_method="merged_16bit")
    curve = [{"step": r["step"], "loss": r["loss"]} for r in trainer.state.log_history if "loss" in r]
    tokens_seen = data_stats.get("tokens", 0) * config.num_epochs
    return {
        "steps": trainer.state.global_step, "curve": curve, "final_loss": curve[-1]["loss"] if curve else result.training_loss,
        "tokens_trained": data_stats.get("trained_tokens"), "tokens_seen": tokens_seen, "seconds": round(seconds, 2),
        "tokens_per_s": round(tokens_seen / seconds, 1) if seconds else None, "device": "cuda",
        "peak_memory_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2), "data": data_stats,
    }


def train_sft(base_model: str | os.PathLike, dataset: Any, out_dir: str | os.PathLike, config: SFTConfig | None = None,
              backend: str = "auto") -> dict:
    """Fine-tune `base_model` (a local folder) on `dataset` (tokenised: input_ids + labels, or
    raw rows with `messages` and per-turn `loss` flags); write adapter/, merged/ and
    train_metrics.json under out_dir; return the metrics."""
    config = config or SFTConfig()
    out_dir = Path(out_dir)
    name, reason = select_backend(backend)
    if len(dataset) == 0:  # the search found nothing to learn from: carry the model over
        import shutil

        shutil.copytree(base_model, out_dir / "merged", dirs_exist_ok=True)
        metrics = {"steps": 0, "curve": [], "tokens_trained": 0, "tokens_per_s": None, "final_loss": None,
                   "masked_fraction": None, "data": {"examples_in": 0, "examples_kept": 0, "per_kind": {}},
                   "note": "no training rows: the model is carried over unchanged",
                   "backend": name, "backend_reason": reason, "init_from": config.init_from,
                   "base_model": str(base_model), "outputs": {"adapter": None, "merged": str(out_dir / "merged")}}
        atomic_write_json(out_dir / "train_metrics.json", metrics)
        return metrics
    if name == "unsloth":
        metrics = _train_unsloth(str(base_model), dataset, out_dir, config)
    else:
        metrics = _train_hf(str(base_model), dataset, out_dir, config)
    metrics.update({
        "backend": name, "backend_reason": reason, "init_from": config.init_from, "base_model": str(base_model),
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(config).items()},
        "masked_fraction": metrics.get("data", {}).get("masked_fraction"),
        "outputs": {"adapter": str(out_dir / "adapter") if config.lora and config.save_adapter else None,
                    "merged": str(out_dir / "merged") if config.save_merged else None},
    })
    atomic_write_json(out_dir / "train_metrics.json", metrics)
    return metrics
