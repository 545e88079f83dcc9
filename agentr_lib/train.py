"""Phase II SFT on pre-tokenised input_ids + labels (agentr_lib.data masks).

Two backends, one data path, one training loop (`_train_loop`) and one output layout; they
differ only in how the model is loaded and saved (the lines only a GPU run can check live in
agentr_lib/llm/unsloth.py):
- `hf` (CPU or GPU): transformers + peft LoRA, or full fine-tuning (`lora=False`, the tiny
  model). Our own loop (AdamW, warmup + cosine, length-grouped padded batches, bf16 autocast
  on CUDA): no TRL (TRL 1.15's trainer crashes on CPU-only torch) and less per-step overhead
  than `transformers.Trainer` on a 1M-parameter model.
- `unsloth` (CUDA GPU, LoRA only): a 4-bit base from `FastLanguageModel.from_pretrained`,
  LoRA from `FastLanguageModel.get_peft_model` with Unsloth's gradient checkpointing, 8-bit
  AdamW (bitsandbytes), Unsloth's forward for the loss; merged/ is written in 16 bits by
  `save_pretrained_merged`.

A LoRA iteration's model is its adapter (adapter/, on the run's base model): the next
iteration loads it on the base and continues training it (`init_from: previous`), and the
samplers load base + adapter (vLLM: `enable_lora`, one LoRARequest per engine). So each
iteration hands on one small folder and the base is never re-quantised or re-saved.

Outputs in out_dir: `adapter/` (LoRA only), `merged/` (the full model; the tokenizer is saved
beside both; `save_merged=False` skips it), `train_metrics.json`, whose `outputs.model` names
what the next iteration samples with (adapter/ with LoRA, else merged/). Its `data` entry says what
tokenization kept: `per_kind[kind]` counts rows in, kept, truncated (oldest turns dropped as at
inference, see agentr_lib.data) and dropped; a kind dropped entirely raises data.KindDropped.
`tokens_per_s` is tokens seen (trained + masked context) per second of the training loop
(`seconds`), loading and saving excluded; `peak_memory_gb` is CUDA's peak allocation.

Unsloth must be imported before transformers/peft, and never on a CPU machine: this module
imports neither at top level, and `select_backend("auto")` only looks for the package.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .checks import boolean, int_at_least, number, one_of, setting
from .io import atomic_write_json, read_json

DEFAULT_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class SFTConfig:
    """SFT hyper-parameters (the paper: LoRA on Llama-3.1-8B; ours adds full FT for tiny). The
    field made by `setting` is the profile key `sft.<field>`:
    agentr_lib.profiles reads its default, check and meaning here."""

    lora: bool = setting(False, boolean, "LoRA adapters, or else full fine-tuning (the tiny model)", "03")
    lora_r: int = setting(16, int_at_least(1), "LoRA rank", "03")
    lora_alpha: int = setting(32, number(0, open_low=True), "LoRA scaling", "03")
    lora_dropout: float = 0.0
    target_modules: tuple[str, ...] = DEFAULT_TARGET_MODULES
    learning_rate: float = setting(1e-4, number(0, open_low=True), "peak learning rate (warmup + cosine)", "03")
    epochs: float = setting(1, number(0, open_low=True), "passes over the data", "03")
    max_steps: int | None = None  # when set, the number of optimizer steps instead of epochs' (said)
    batch_size: int = setting(8, int_at_least(1), "conversations per optimizer step", "03")
    grad_accum: int = 1
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    max_seq_length: int = setting(1024, int_at_least(64), "tokens per training row; a longer row loses its oldest "
                                  "turns after the first observation", "03")
    seed: int = 0
    threads: int | None = None
    time_limit_s: float | None = None
    log_every: int = 10
    #: "previous" (the last iteration's merged model, the default), "base", or "scratch" (BC)
    init_from: str = setting("previous", one_of("previous", "base"),
                             "what iteration k+1 trains from: previous (iteration k's model) or base", "03")
    save_adapter: bool = True
    save_merged: bool = True
    progress: bool = True
    #: save the loop's whole state (weights, optimizer, batch order, counters) every this many
    #: optimizer steps into <out_dir>/checkpoint.pt and resume from it when present, so a run
    #: killed mid-way continues and ends with the weights of one never killed (one process only;
    #: the embedded builds' behaviour-cloning stages use it: ~30 min a stage at 15M parameters)
    checkpoint_every: int | None = None
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


def resolve_init_model(base_model: str, previous: str | None, init_from: str = "previous") -> str:
    """Which model iteration k+1 starts from: the previous iteration's model (default; its
    LoRA adapter folder or its fully fine-tuned folder) or the base model."""
    if init_from == "previous":
        return previous or base_model
    if init_from == "base":
        return base_model
    raise ValueError(f"init_from={init_from!r}; expected 'previous' or 'base'")


def _ensure_tokenized(dataset: Any, tokenizer: Any, max_seq_length: int) -> tuple[dict[str, list], dict]:
    """({"input_ids": [...], "labels": [...]}, tokenization stats) from a dataset (or a list of
    dicts) that is either pre-tokenised (input_ids + labels) or raw (messages + loss flags)."""
    from .data import tokenize_dataset

    if isinstance(dataset, list):
        columns = list(dataset[0]) if dataset else []
    else:
        columns = getattr(dataset, "column_names", None) or (list(dataset[0]) if len(dataset) else [])
    if "input_ids" in columns and "labels" in columns:
        rows = dataset if isinstance(dataset, list) else None
        ids = [row["input_ids"] for row in rows] if rows is not None else dataset["input_ids"]
        labels = [row["labels"] for row in rows] if rows is not None else dataset["labels"]
        tokens = sum(len(x) for x in ids)
        trained = sum(sum(1 for t in x if t != -100) for x in labels)
        return {"input_ids": ids, "labels": labels}, {
            "examples_in": len(ids), "examples_kept": len(ids), "tokens": tokens, "trained_tokens": trained,
            "masked_fraction": 1 - trained / tokens if tokens else 0.0, "pre_tokenized": True}
    if "messages" not in columns:
        raise KeyError(f"dataset columns {columns}: expected 'input_ids'+'labels' or 'messages'")
    tokenized, stats = tokenize_dataset(dataset, tokenizer, max_seq_length)
    return {"input_ids": tokenized["input_ids"], "labels": tokenized["labels"]}, stats.to_dict()


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


def lora_config(config: SFTConfig) -> Any:
    """The peft LoraConfig of the hf backend (Unsloth's get_peft_model takes the same values)."""
    from peft import LoraConfig

    return LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=list(config.target_modules), task_type="CAUSAL_LM")


def mkl_worker_threads() -> int | None:
    """The thread count MKL gives a thread that never set its own: what the OpenMP worker
    threads' GEMMs (the CPU attention backward's) run with. torch.set_num_threads sets MKL's
    count on the calling thread only, so this stays what MKL read from MKL_NUM_THREADS (else
    the core count) when torch was imported; it changes the rounding of training at 2+ threads
    (docs/embedded-model.md#determinism). None without MKL."""
    import ctypes
    import threading

    import torch

    try:
        get = ctypes.CDLL(os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so")).MKL_Get_Max_Threads
    except (OSError, AttributeError):
        return None
    found: list[int] = []
    worker = threading.Thread(target=lambda: found.append(int(get())))
    worker.start()
    worker.join()
    return found[0] if found else None


def _load_for_training(backend: str, init_model: str, config: SFTConfig,
                       accelerator: Any = None) -> tuple[Any, Any, str]:
    """(model ready to train, tokenizer, device). `init_model` is a full model folder or a LoRA
    adapter folder (a previous LoRA iteration's model): its adapter is loaded on its base
    model and training continues it, so every iteration's model stays one adapter on the
    run's base model (what vLLM samples with `enable_lora`). Without LoRA an adapter is merged."""
    import torch

    if config.threads:
        torch.set_num_threads(config.threads)
    mkl = mkl_worker_threads()
    if mkl is not None and torch.get_num_threads() > 1 and mkl != torch.get_num_threads():
        import warnings

        warnings.warn(f"sft: torch trains with {torch.get_num_threads()} threads but MKL's worker threads with {mkl} "
                      "(MKL_NUM_THREADS or the core count, read when torch was imported): the weights differ from "
                      "a process whose two counts agree; set MKL_NUM_THREADS before torch is imported "
                      "(docs/embedded-model.md#determinism)", RuntimeWarning, stacklevel=3)
    torch.manual_seed(config.seed)  # before the LoRA weights are initialised
    if backend == "unsloth":  # GPU only: 4-bit base, Unsloth's LoRA and gradient checkpointing
        from .llm.unsloth import load_for_training

        model, tokenizer = load_for_training(init_model, config)
        return model, tokenizer, "cuda"
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .llm.base import adapter_base

    device = str(accelerator.device) if accelerator is not None else "cuda" if torch.cuda.is_available() else "cpu"
    tokenizer = AutoTokenizer.from_pretrained(init_model)
    base = adapter_base(init_model)
    # full fine-tuning on several GPUs keeps fp32 weights, which FSDP/DDP shard and accelerate's
    # mixed_precision computes in bf16: AdamW's ~1e-5 relative updates would round away in bf16 weights
    half = device.startswith("cuda") and (accelerator is None or config.lora)
    model = AutoModelForCausalLM.from_pretrained(base or init_model, dtype=torch.bfloat16 if half else torch.float32)
    model.to(device)
    if base:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, init_model, is_trainable=config.lora)
        if not config.lora:
            model = model.merge_and_unload()
    elif config.lora:
        from peft import get_peft_model

        model = get_peft_model(model, lora_config(config))
    return model, tokenizer, device


def _optimizer(backend: str, params: list, config: SFTConfig) -> Any:
    if backend == "unsloth" and config.optim == "adamw_8bit":
        from .llm.unsloth import adamw_8bit

        return adamw_8bit(params, config)
    import torch

    return torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)


def _accelerator() -> Any:
    """accelerate's Accelerator when this process is one of several (`accelerate launch` sets
    WORLD_SIZE: DDP, FSDP or DeepSpeed as its config says), else None: one process trains as
    it always did, without accelerate. Without CUDA it is gloo on CPU processes (MULTI_CPU):
    accelerate only picks that when told `cpu=True`."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    import torch
    from accelerate import Accelerator

    return Accelerator(cpu=not torch.cuda.is_available())


def _distributed_backward(accelerator: Any, model: Any, rows: list[dict], pad_id: int, device: str,
                          grad_accum: int) -> float:
    """One micro-batch over all processes: process r takes rows r, r + P, ...; its loss is
    the sum of its trained-token losses over the micro-batch's trained-token count (the
    model's `num_items_in_batch`), times P because DDP/FSDP average the gradients over the P
    processes. So the gradient is the single process's on the same micro-batch, whatever P
    is, and the global batch stays `batch_size` x `grad_accum`. Returns the micro-batch's
    loss (divided by grad_accum), the same number a single process logs. A process left
    without a row (a micro-batch smaller than P, e.g. an epoch's last) runs one row with weight
    0: every process must take part in each backward's gradient exchange, or the others wait."""
    import torch

    ranks = accelerator.num_processes
    mine = rows[accelerator.process_index::ranks]
    weight = 1.0 if mine else 0.0
    targets = sum(sum(1 for label in row["labels"][1:] if label != -100) for row in rows)
    batch = {k: v.to(device) for k, v in pad_batch(mine or rows[:1], pad_id).items()}
    with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=device.startswith("cuda")):
        loss = model(**batch, num_items_in_batch=max(1, targets)).loss * weight
    accelerator.backward(loss * ranks / grad_accum)
    return float(accelerator.reduce(loss.detach(), reduction="sum")) / grad_accum


def _save_checkpoint(path: Path, state: dict) -> None:
    """`state` into `path` atomically (a kill while writing leaves the previous checkpoint)."""
    import torch

    partial = path.with_name(path.name + ".partial")
    torch.save(state, partial)
    os.replace(partial, path)


def _train_loop(backend: str, model: Any, tokenizer: Any, rows: dict[str, list], device: str,
                config: SFTConfig, accelerator: Any = None, checkpoint: Path | None = None) -> dict:
    """The one training loop of both backends: length-grouped padded batches, AdamW (8-bit
    with Unsloth), warmup + cosine, gradient clipping, bf16 autocast on CUDA. The hf backend
    applies the output head only where a label is trained (`trained_token_loss`); Unsloth's
    own forward computes the same loss with its fused kernels. Under `accelerate launch`
    (`accelerator`), each micro-batch is split over the processes (`_distributed_backward`).
    With `checkpoint` (config.checkpoint_every), the loop starts from the state saved there."""
    import torch
    from tqdm.auto import tqdm

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = _optimizer(backend, params, config)
    if accelerator is not None:
        model, optimizer = accelerator.prepare(model, optimizer)
        params = [p for p in model.parameters() if p.requires_grad]
    lengths = [len(x) for x in rows["input_ids"]]
    rng = random.Random(config.seed)
    steps_per_epoch = math.ceil(len(lengths) / config.batch_size / config.grad_accum)
    total = config.max_steps or max(1, math.ceil(steps_per_epoch * config.epochs))
    if config.max_steps and (accelerator is None or accelerator.is_main_process):  # replaces the epochs: said
        print(f"sft: max_steps={config.max_steps} sets the length; epochs={config.epochs:g} "
              f"({math.ceil(steps_per_epoch * config.epochs)} steps) is not used")
    warmup = max(1, int(total * config.warmup_ratio))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    loss_of = (lambda batch: model(**batch).loss) if backend == "unsloth" else (lambda batch: trained_token_loss(model, batch))
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    curve: list[dict] = []
    tokens_trained = tokens_seen = 0
    started = time.time()
    stopped_by_time = False
    step = 0
    queue: list[list[int]] = []
    bar = tqdm(total=total, desc="sft", disable=not config.progress or (accelerator is not None and
                                                                      not accelerator.is_main_process))
    model.train()
    running = 0.0
    if checkpoint is not None and checkpoint.is_file():
        state = torch.load(checkpoint, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        rng.setstate(state["rng"])
        queue, step, running, curve = state["queue"], state["step"], state["running"], state["curve"]
        tokens_trained, tokens_seen = state["tokens_trained"], state["tokens_seen"]
        started -= state["seconds"]
        bar.update(step)
    while step < total:
        optimizer.zero_grad(set_to_none=True)
        step_loss = 0.0
        for _ in range(config.grad_accum):
            if not queue:
                queue = _batches(lengths, config.batch_size, rng)
            index = queue.pop()
            micro = [{"input_ids": rows["input_ids"][i], "labels": rows["labels"][i]} for i in index]
            if accelerator is not None:
                step_loss += _distributed_backward(accelerator, model, micro, pad_id, device, config.grad_accum)
                tokens_trained += sum(sum(1 for label in row["labels"] if label != -100) for row in micro)
                tokens_seen += sum(len(row["input_ids"]) for row in micro)
                continue
            batch = {k: v.to(device) for k, v in pad_batch(micro, pad_id).items()}
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=device == "cuda"):
                loss = loss_of(batch) / config.grad_accum
            loss.backward()
            step_loss += float(loss.detach())
            tokens_trained += int((batch["labels"] != -100).sum())
            tokens_seen += int(batch["attention_mask"].sum())
        if config.max_grad_norm and accelerator is not None:
            accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)  # FSDP: its own clip (the model's list)
        elif config.max_grad_norm:
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
        if checkpoint is not None and step % config.checkpoint_every == 0 and step < total:
            _save_checkpoint(checkpoint, {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(), "rng": rng.getstate(),
                "queue": queue, "step": step, "running": running, "curve": curve, "tokens_trained": tokens_trained,
                "tokens_seen": tokens_seen, "seconds": time.time() - started})
        if config.time_limit_s is not None and time.time() - started > config.time_limit_s:
            stopped_by_time = True
            break
    bar.close()
    seconds = time.time() - started
    model.eval()
    return {
        "steps": step, "planned_steps": total, "curve": curve, "final_loss": curve[-1]["smoothed"] if curve else None,
        "tokens_trained": tokens_trained, "tokens_seen": tokens_seen, "seconds": round(seconds, 2),
        "tokens_per_s": round(tokens_seen / seconds, 1) if seconds else None, "stopped_by_time_limit": stopped_by_time,
        "threads": torch.get_num_threads(), "mkl_worker_threads": mkl_worker_threads(), "device": device,
        "trainable_params": sum(p.numel() for p in params),
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "peak_memory_gb": round(torch.cuda.max_memory_allocated() / 2**30, 3) if device.startswith("cuda") else None,
        "processes": accelerator.num_processes if accelerator is not None else 1,
    }


def sort_target_modules(folder: Path) -> None:
    """Rewrite the adapter_config.json PEFT just wrote in `folder` with `target_modules` sorted:
    PEFT keeps them as a set and writes them in the order of the process's string hashing
    (PYTHONHASHSEED), so the same adapter got another file, and another folder hash (its
    `model_id`, which names what a result was computed with), in another process. PEFT writes
    the file as JSON with indent 2 and sorted keys; so does this."""
    path = folder / "adapter_config.json"
    config = json.loads(path.read_text())
    if isinstance(config.get("target_modules"), list):
        config["target_modules"] = sorted(config["target_modules"])
        path.write_text(json.dumps(config, indent=2, sort_keys=True))


def _save(backend: str, model: Any, tokenizer: Any, out_dir: Path, config: SFTConfig,
          state_dict: dict | None = None) -> None:
    """adapter/ (LoRA; the adapter config names the run's base model) and merged/ (the full
    model: merged in 16 bits by Unsloth, by peft's merge_and_unload otherwise). `state_dict`:
    a full model's weights gathered from FSDP/ZeRO-3 shards (`_save_distributed`)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if config.lora and config.save_adapter:
        model.save_pretrained(out_dir / "adapter")
        sort_target_modules(out_dir / "adapter")
        tokenizer.save_pretrained(out_dir / "adapter")
    if not config.save_merged:
        return
    if backend == "unsloth":
        from .llm.unsloth import save_merged

        save_merged(model, tokenizer, out_dir / "merged")
        return
    merged = model.merge_and_unload() if config.lora else model
    merged.save_pretrained(out_dir / "merged", **({"state_dict": state_dict} if state_dict and not config.lora else {}))
    tokenizer.save_pretrained(out_dir / "merged")


def _save_distributed(accelerator: Any, model: Any, tokenizer: Any, out_dir: Path, config: SFTConfig) -> None:
    """Every process gathers the full weights (a collective: FSDP and ZeRO-3 hold shards),
    then process 0 alone writes what `_save` writes, in the layout the next step loads."""
    state_dict = accelerator.get_state_dict(model)
    if accelerator.is_main_process:
        _save("hf", accelerator.unwrap_model(model), tokenizer, out_dir, config, state_dict=state_dict)
    accelerator.wait_for_everyone()


def identity_adapter(base_model: str, folder: str | os.PathLike, config: SFTConfig) -> Path:
    """A LoRA adapter on `base_model` that changes nothing (B = 0; A initialised as peft does,
    so training it later moves it): what an iteration without training rows hands on when its
    models are adapters. Built on an empty (meta-device) copy of the base: no weights loaded."""
    import torch
    from accelerate import init_empty_weights
    from peft import get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(config.seed)
    with init_empty_weights():
        skeleton = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(base_model))
    model = get_peft_model(skeleton, lora_config(config))
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and (".lora_A." in name or ".lora_B." in name):
            module.to_empty(device="cpu")
            if ".lora_A." in name:
                module.reset_parameters()
            else:
                torch.nn.init.zeros_(module.weight)
    model.peft_config["default"].base_model_name_or_path = str(base_model)
    model.save_pretrained(folder)
    sort_target_modules(Path(folder))
    AutoTokenizer.from_pretrained(base_model).save_pretrained(folder)
    return Path(folder)


def _carry_over(init_model: str, out_dir: Path, config: SFTConfig) -> dict[str, str | None]:
    """No training rows: hand the starting model on unchanged, where the pipeline expects this
    iteration's model (adapter/ with LoRA, merged/ without)."""
    import shutil

    from .llm.base import adapter_base

    is_adapter = adapter_base(init_model) is not None
    if config.lora:
        if is_adapter:
            shutil.copytree(init_model, out_dir / "adapter", dirs_exist_ok=True)
        else:
            identity_adapter(init_model, out_dir / "adapter", config)
        return {"adapter": str(out_dir / "adapter"), "merged": None, "model": str(out_dir / "adapter")}
    if is_adapter:
        raise ValueError(f"{init_model}: a LoRA adapter cannot be carried over as a full model (sft.lora is false)")
    shutil.copytree(init_model, out_dir / "merged", dirs_exist_ok=True)
    return {"adapter": None, "merged": str(out_dir / "merged"), "model": str(out_dir / "merged")}


def trained_model(out_dir: str | os.PathLike, lora: bool) -> Path:
    """The model an SFT run hands to the next iteration: adapter/ with LoRA, else merged/."""
    return Path(out_dir) / ("adapter" if lora else "merged")


def train_sft(base_model: str | os.PathLike, dataset: Any, out_dir: str | os.PathLike, config: SFTConfig | None = None,
              backend: str = "auto") -> dict:
    """Fine-tune `base_model` (a local model folder, or a LoRA adapter folder whose adapter
    training continues) on `dataset` (tokenised: input_ids + labels, or raw rows with
    `messages` and per-turn `loss` flags; a `datasets.Dataset` or a list of dicts); write
    adapter/ (LoRA), merged/ (unless `save_merged` is off) and train_metrics.json under
    out_dir; return the metrics. `outputs.model` is what the next iteration samples with."""
    config = config or SFTConfig()
    out_dir = Path(out_dir)
    name, reason = select_backend(backend)
    if name == "unsloth" and not config.lora:
        raise ValueError("backend 'unsloth' trains LoRA adapters only (sft.lora: true); use backend 'hf' for "
                         "full fine-tuning")
    accelerator = _accelerator()
    if accelerator is not None and name != "hf":
        raise ValueError(f"sft.backend {name!r} under accelerate launch: only the hf backend trains on several processes")
    main = accelerator is None or accelerator.is_main_process
    if len(dataset) == 0:  # the search found nothing to learn from: carry the model over
        if not main:  # process 0 writes the carried-over model
            accelerator.wait_for_everyone()
            return read_json(out_dir / "train_metrics.json")
        out_dir.mkdir(parents=True, exist_ok=True)
        metrics = {"steps": 0, "curve": [], "tokens_trained": 0, "tokens_per_s": None, "final_loss": None,
                   "masked_fraction": None, "data": {"examples_in": 0, "examples_kept": 0, "per_kind": {}},
                   "note": "no training rows: the model is carried over unchanged",
                   "processes": accelerator.num_processes if accelerator is not None else 1,
                   "backend": name, "backend_reason": reason, "init_from": config.init_from,
                   "base_model": str(base_model), "outputs": _carry_over(str(base_model), out_dir, config)}
        atomic_write_json(out_dir / "train_metrics.json", metrics)
        if accelerator is not None:
            accelerator.wait_for_everyone()
        return metrics
    if config.checkpoint_every and accelerator is not None:
        raise ValueError("sft checkpoint_every: resuming runs in one process only, not under accelerate launch")
    model, tokenizer, device = _load_for_training(name, str(base_model), config, accelerator)
    rows, data_stats = _ensure_tokenized(dataset, tokenizer, config.max_seq_length)
    if not rows["input_ids"]:
        raise ValueError("no training examples left after tokenization (all dropped: no trained tokens)")
    checkpoint = out_dir / "checkpoint.pt" if config.checkpoint_every else None
    if checkpoint is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    metrics = _train_loop(name, model, tokenizer, rows, device, config, accelerator, checkpoint)
    if accelerator is None:
        _save(name, model, tokenizer, out_dir, config)
    else:
        _save_distributed(accelerator, model, tokenizer, out_dir, config)
    adapter = str(out_dir / "adapter") if config.lora and config.save_adapter else None
    merged = str(out_dir / "merged") if config.save_merged else None
    metrics.update({
        "data": data_stats, "backend": name, "backend_reason": reason, "init_from": config.init_from,
        "base_model": str(base_model),
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(config).items()},
        "masked_fraction": data_stats.get("masked_fraction"),
        "outputs": {"adapter": adapter, "merged": merged, "model": adapter if config.lora and adapter else merged},
    })
    if main:
        atomic_write_json(out_dir / "train_metrics.json", metrics)
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)  # the saved model is the run's end
    return metrics
