"""The `unsloth` backend (GPU only): 4-bit loading with Unsloth, then the `hf` generate path;
and the three Unsloth-only steps of training (`load_for_training`, `adamw_8bit`,
`save_merged`), which agentr_lib.train's shared loop calls. This file is the whole of what
only a GPU run exercises (docs/gpu.md: "What only a GPU run can check").

Import order matters: Unsloth patches transformers/peft/trl when it is imported, so it must
be imported BEFORE any of them. `require_unsloth()` checks, in this order, that a CUDA device
exists, that the package is installed (importlib.util.find_spec, without importing it), and
that none of transformers/peft/trl is already in `sys.modules`; only then it imports unsloth.
If one of them is already imported, it raises with the fix (load the unsloth backend first,
in a fresh process/kernel) instead of running unpatched, silently slower code.
This module itself imports neither transformers nor unsloth at import time.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from typing import Any

from .base import adapter_base, model_id
from .hf import HFPolicy, check_model_source

PATCHED_BY_UNSLOTH: tuple[str, ...] = ("transformers", "peft", "trl")


def require_unsloth() -> Any:
    """Import and return the `unsloth` module, or raise RuntimeError saying why it cannot be used."""
    if "unsloth" in sys.modules:
        return sys.modules["unsloth"]
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError("the unsloth backend needs a CUDA GPU and none is available; use backend='hf' on CPU")
    if importlib.util.find_spec("unsloth") is None:
        raise RuntimeError("the unsloth backend needs the `unsloth` package: pip install -e '.[gpu]' (GPU machines only)")
    early = [name for name in PATCHED_BY_UNSLOTH if name in sys.modules]
    if early:
        raise RuntimeError(
            f"unsloth must be imported before {', '.join(early)} (already imported in this process); "
            "load the unsloth backend first, in a fresh process or a restarted kernel"
        )
    return importlib.import_module("unsloth")


# ---- training (agentr_lib.train's loop calls these three; everything else is shared) ----


def load_for_training(init_model: str, config: Any) -> tuple[Any, Any]:
    """(model, tokenizer): the base in 4-bit with LoRA adapters, ready for train.py's loop.
    A LoRA adapter folder (a previous iteration's model) loads on its base with its adapter
    trainable, and training continues it; otherwise new adapters are added."""
    unsloth = require_unsloth()
    model, tokenizer = unsloth.FastLanguageModel.from_pretrained(
        model_name=str(init_model), max_seq_length=config.max_seq_length, load_in_4bit=config.load_in_4bit, dtype=None,
    )
    if not hasattr(model, "peft_config"):
        model = unsloth.FastLanguageModel.get_peft_model(
            model, r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
            target_modules=list(config.target_modules), use_gradient_checkpointing="unsloth",
            random_state=config.seed,
        )
    unsloth.FastLanguageModel.for_training(model)
    return model, tokenizer


def adamw_8bit(params: list, config: Any) -> Any:
    """bitsandbytes' 8-bit AdamW (what Unsloth's notebooks train with)."""
    import bitsandbytes

    return bitsandbytes.optim.AdamW8bit(params, lr=config.learning_rate, weight_decay=config.weight_decay)


def save_merged(model: Any, tokenizer: Any, folder: Any) -> None:
    """The 4-bit base dequantised and the adapter merged in, saved in 16 bits."""
    model.save_pretrained_merged(str(folder), tokenizer, save_method="merged_16bit")


class UnslothPolicy(HFPolicy):
    """HFPolicy whose model comes from `FastLanguageModel.from_pretrained(load_in_4bit=True)`
    switched to inference mode; generation is HFPolicy.generate unchanged."""

    @classmethod
    def load(  # type: ignore[override]
        cls,
        model: str | os.PathLike,
        max_seq_length: int = 4096,
        load_in_4bit: bool = True,
        dtype: Any = None,
        **kwargs: Any,
    ) -> "UnslothPolicy":
        unsloth = require_unsloth()
        source = check_model_source(model)
        lm, tokenizer = unsloth.FastLanguageModel.from_pretrained(
            model_name=source, max_seq_length=max_seq_length, load_in_4bit=load_in_4bit, dtype=dtype,
        )
        unsloth.FastLanguageModel.for_inference(lm)
        # leave room for the reply: the budget is for the prompt only
        kwargs.setdefault("context_budget", max(256, max_seq_length - 512))
        policy = cls(lm, tokenizer, **kwargs)
        policy.model_id = model_id(source)  # evaluations refuse to mix episodes of another model
        policy.adapter = source if adapter_base(source) else None
        return policy
