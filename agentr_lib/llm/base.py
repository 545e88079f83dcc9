"""The policy protocol every backend implements (hf, unsloth, openai, scripted test policies)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

Message = dict  # {"role": "user" | "assistant" | "system", "content": str, optional "loss": bool}


@runtime_checkable
class Policy(Protocol):
    """Batched text generation over chat conversations."""

    def generate(
        self,
        conversations: list[list[Message]],
        n: int = 1,
        temperature: float = 0.0,
        max_new_tokens: int = 128,
        seeds: Sequence[int] | None = None,
    ) -> list[list[str]]:
        """For each conversation, `n` assistant replies (temperature 0 = greedy).

        `seeds` (one per conversation): the samples of conversation i are a function of the
        model, the conversation, seeds[i], n and the temperature alone, whatever else is in
        the batch, so a search resumed tree by tree draws what an uninterrupted one drew."""


def derive_seed(*parts: object) -> int:
    """A stable 63-bit seed from any parts (`hash()` of a str changes with PYTHONHASHSEED)."""
    text = "\x1f".join(repr(part) for part in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


#: Entries of a model folder that are records about the model, not the model (the tiny
#: model's card and its own evaluation episodes are written after the weights).
NOT_THE_MODEL = ("eval", "model_card.json", "train_metrics.json")


def adapter_base(source: str | os.PathLike) -> str | None:
    """The base model of a PEFT (LoRA) adapter folder (its adapter_config.json's
    `base_model_name_or_path`), or None for a full model folder, a hub name or a missing path.
    A LoRA iteration's model is such a folder (train.py: the adapter on the run's base model)."""
    path = Path(source)
    if not (path / "adapter_config.json").exists() or (path / "config.json").exists():
        return None
    return json.loads((path / "adapter_config.json").read_text()).get("base_model_name_or_path")


def model_id(source: str) -> str:
    """What a result was computed with: a local model folder's content hash (so a retrained
    model in the same folder is a different model), or the hub name as given. An adapter
    folder's id also holds its base model's, so a rebuilt base is a different model."""
    from ..io import fingerprint

    own = fingerprint(source, skip=NOT_THE_MODEL) or str(source)
    base = adapter_base(source)
    return f"{own}+{model_id(base)}" if base else own
