"""The policy protocol every backend implements (hf, unsloth, openai, scripted test policies)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
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


def model_id(source: str) -> str:
    """What a result was computed with: a local model folder's content hash (so a retrained
    model in the same folder is a different model), or the hub name as given."""
    from ..io import fingerprint

    return fingerprint(source, skip=NOT_THE_MODEL) or str(source)
