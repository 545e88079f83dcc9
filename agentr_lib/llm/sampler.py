"""What the in-process samplers (hf, vllm) share, written once: the prompt rendered by the
model's chat template and cut to the context budget, the per-call seeds, and the reply cut at
the first stop token and decoded, and the counters every sampler keeps (what sampler.json and
the run manifest read). A subclass calls `ChatSampler.__init__`, sets `stop_ids` and says its
own `budget` (the model's position limit); `EngineSampler` is the budget and the counters of
the samplers behind a vLLM engine (in process or served)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..conversation import truncate_messages
from .base import Message, derive_seed


class ChatSampler:
    """The shared half of a sampler backend; see the module docstring."""

    stop_ids: list[int]

    def __init__(self, tokenizer: Any, context_budget: int | None = None, seed: int | None = None) -> None:
        if getattr(tokenizer, "chat_template", None) is None:
            raise ValueError("tokenizer has no chat_template: the agent conversation cannot be rendered")
        self.tokenizer = tokenizer
        self.context_budget = context_budget
        self.generator_seed = seed
        self.calls = 0
        self.generated_tokens = 0
        self.truncated_prompts = 0  # prompts that lost their oldest turns to fit the context budget
        self.model_id: str | None = None  # set by `load`: the model folder's content hash
        self.adapter: str | None = None  # set by `load`: the LoRA adapter folder sampled with, if any

    def budget(self, max_new_tokens: int = 0) -> int | None:
        raise NotImplementedError

    # ---- tokens ----------------------------------------------------------------------
    def render(self, messages: Sequence[Message]) -> str:
        """The prompt text: the chat template with the assistant generation prompt."""
        clean = [{"role": m["role"], "content": m["content"]} for m in messages]
        return self.tokenizer.apply_chat_template(clean, tokenize=False, add_generation_prompt=True)

    def count_tokens(self, messages: Sequence[Message]) -> int:
        """Tokens of the rendered prompt (what the context budget is measured in)."""
        # verbose=False: a conversation longer than the tokenizer's model_max_length is what
        # truncation is for, not a warning in every notebook that counts it
        return len(self.tokenizer(self.render(messages), add_special_tokens=False, verbose=False)["input_ids"])

    def prompt(self, messages: Sequence[Message], max_new_tokens: int = 0) -> str:
        """The rendered prompt, older turns dropped to fit `budget(max_new_tokens)` (counted in
        `truncated_prompts`)."""
        kept = truncate_messages(list(messages), self.count_tokens, self.budget(max_new_tokens))
        if len(kept) < len(messages):
            self.truncated_prompts += 1
        return self.render(kept)

    # ---- one generate call -----------------------------------------------------------
    def _call_seeds(self, conversations: Sequence[Sequence[Message]], seeds: Sequence[int] | None) -> list[int]:
        """Count the call and give each conversation its seed: the caller's, else one derived
        from the load-time seed and the call count (so a call's samples do not depend on the
        batch they ran in)."""
        self.calls += 1
        if not conversations:
            return []
        if seeds is not None and len(seeds) != len(conversations):
            raise ValueError(f"seeds has {len(seeds)} entries for {len(conversations)} conversations")
        if seeds is None:
            return [derive_seed(self.generator_seed, self.calls, i) for i in range(len(conversations))]
        return list(seeds)

    def _decode(self, ids: Sequence[int]) -> str:
        """A reply's text: its tokens up to the first stop token (counted), decoded without
        special tokens and stripped."""
        ids = list(ids)
        for position, token in enumerate(ids):
            if token in self.stop_ids:
                ids = ids[:position]
                break
        self.generated_tokens += len(ids)
        return self.tokenizer.decode(ids, skip_special_tokens=True).strip()


class EngineSampler(ChatSampler):
    """A sampler whose replies come from a vLLM engine (`vllm` in process, `served` over HTTP):
    its prompt budget is the engine's max_model_len less the reply, and it also counts the
    prompt tokens sent and the requests per `generate` call (what reached the engine)."""

    def __init__(self, tokenizer: Any, max_model_len: int, context_budget: int | None = None,
                 seed: int | None = None) -> None:
        super().__init__(tokenizer, context_budget, seed)
        self.max_model_len = int(max_model_len)
        self.prompt_tokens = 0
        self.batch_sizes: list[int] = []

    def budget(self, max_new_tokens: int = 0) -> int:
        """Prompt tokens allowed: `context_budget`, never more than the engine's max_model_len
        minus the reply length."""
        caps = [b for b in (self.context_budget, self.max_model_len - max_new_tokens) if b is not None]
        return max(1, min(caps))


def is_greedy(temperature: float | None) -> bool:
    """Temperature 0 (or none) is greedy decoding: one reply per conversation, copied n times."""
    return temperature is None or temperature <= 0
