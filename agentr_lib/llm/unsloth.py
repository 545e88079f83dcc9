"""The `unsloth` backend (GPU only): 4-bit loading with Unsloth, then the `hf` generate path.

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
        return cls(lm, tokenizer, **kwargs)
