"""A policy driven by a Python function: tests and MCTS checks without a language model."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Callable

from .base import Message

ResponseFn = Callable[[list[Message], random.Random], str]


class ScriptedPolicy:
    """Calls `respond(conversation, rng)` once per requested sample; `rng` is seeded, so a
    stochastic script is reproducible. With `seeds`, conversation i draws from its own
    `Random(seeds[i])`, so its replies do not depend on the batch it ran in (the `Policy`
    contract the model backends keep); without, all share one generator. Counts calls so
    tests can check batching."""

    def __init__(self, respond: ResponseFn, seed: int = 0):
        self.respond = respond
        self.rng = random.Random(seed)
        self.calls = 0

    def generate(
        self,
        conversations: list[list[Message]],
        n: int = 1,
        temperature: float = 0.0,
        max_new_tokens: int = 128,
        seeds: Sequence[int] | None = None,
    ) -> list[list[str]]:
        if seeds is not None and len(seeds) != len(conversations):
            raise ValueError(f"seeds has {len(seeds)} entries for {len(conversations)} conversations")
        self.calls += 1
        rngs = [random.Random(seed) for seed in seeds] if seeds is not None else [self.rng] * len(conversations)
        return [[self.respond(conversation, rng) for _ in range(n)] for conversation, rng in zip(conversations, rngs)]
