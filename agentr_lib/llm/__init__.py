"""Model backends behind one protocol (`Policy.generate`), built by `load_policy`.

Backends are imported lazily: importing this package imports neither transformers nor
unsloth, so the `unsloth` backend can still be imported first (it must precede
transformers/peft/trl to patch them).
"""

from __future__ import annotations

from typing import Any

from .base import Message, Policy, derive_seed

BACKENDS: tuple[str, ...] = ("hf", "unsloth", "openai")


def load_policy(backend: str, model: str, **kwargs: Any) -> Policy:
    """Build a policy.

    - "hf": `HFPolicy.load(model, device=None, dtype=None, max_batch_size=32, context_budget=None,
      threads=None, seed=None)`; `model` = a local folder (or a hub name where the hub is reachable).
    - "unsloth": `UnslothPolicy.load(model, max_seq_length=4096, load_in_4bit=True, ...)`; GPU only.
    - "openai": `OpenAIPolicy(model, base_url=None, api_key=None, ...)`; any OpenAI-compatible server.
    """
    if backend == "hf":
        from .hf import HFPolicy

        return HFPolicy.load(model, **kwargs)
    if backend == "unsloth":
        from .unsloth import UnslothPolicy

        return UnslothPolicy.load(model, **kwargs)
    if backend == "openai":
        from .openai import OpenAIPolicy

        return OpenAIPolicy(model, **kwargs)
    raise ValueError(f"unknown backend {backend!r}; expected one of {list(BACKENDS)}")


__all__ = ["BACKENDS", "Message", "Policy", "derive_seed", "load_policy"]
