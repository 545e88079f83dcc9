"""The policy protocol every backend implements (hf, unsloth, openai, scripted test policies)."""

from __future__ import annotations

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
    ) -> list[list[str]]:
        """For each conversation, `n` assistant replies (temperature 0 = greedy)."""
