"""The `hf` backend: transformers `generate`, batched over conversations x samples.

transformers is imported lazily (inside `load`), never at module import: the `unsloth`
backend must import unsloth before transformers, and reuses this module's generate path.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .base import Message, adapter_base, derive_seed, model_id
from .sampler import ChatSampler, is_greedy

#: End-of-turn markers of common chat templates; each is a stop token when the vocab has it.
END_OF_TURN_TOKENS: tuple[str, ...] = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>")


def _offline() -> bool:
    return any(os.environ.get(var, "").strip().lower() in {"1", "true", "yes", "on"}
               for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def check_model_source(model: str | os.PathLike) -> str:
    """A local folder is used as is; a hub name is only allowed when the hub is reachable.
    Raises FileNotFoundError with what to do instead (pass a local path)."""
    model = str(model)
    if Path(model).expanduser().exists():
        return str(Path(model).expanduser())
    looks_local = model.startswith((".", "/", "~")) or os.sep in model.strip("/").replace("/", "", 1)
    if looks_local or _offline():
        why = "HF_HUB_OFFLINE is set" if _offline() and not looks_local else "it does not exist"
        raise FileNotFoundError(
            f"model {model!r}: no such local folder and it cannot be loaded from the Hugging Face hub ({why}). "
            "Pass a local path to a saved model (e.g. data/models/tiny-<...>, built by `python -m agentr_lib.build build`), "
            "or unset HF_HUB_OFFLINE on a machine with internet to use a hub name."
        )
    return model


def stop_token_ids(tokenizer: Any, model: Any = None) -> list[int]:
    """eos_token + the chat template's end-of-turn token(s) + the model's configured eos ids,
    de-duplicated in a fixed order."""
    ids: list[int] = []

    def add(value: Any) -> None:
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(item, int) and item >= 0 and item not in ids:
                ids.append(item)

    add(tokenizer.eos_token_id)
    vocab = tokenizer.get_vocab()
    for token in END_OF_TURN_TOKENS:
        if token in vocab:
            add(vocab[token])
    config = getattr(model, "generation_config", None)
    if config is not None:
        add(config.eos_token_id)
    if not ids:
        raise ValueError("tokenizer has no eos_token and no known end-of-turn token: generation would never stop")
    return ids


class HFPolicy(ChatSampler):
    """Batched chat generation with a loaded transformers model + tokenizer.

    - Left padding, so every sequence's next token sits in the last column.
    - conversations x n samples go through `generate` in chunks of `max_batch_size` rows,
      sorted by prompt length (less padding); greedy (temperature 0) computes one sample
      per conversation and copies it n times.
    - Stops at the chat template's end-of-turn token; replies are decoded without special
      tokens and stripped.
    - `context_budget` (tokens of the rendered prompt): older turns are dropped with
      `conversation.truncate_messages`, keeping the instruction, first observation and latest turns.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        max_batch_size: int = 32,
        context_budget: int | None = None,
        threads: int | None = None,
        seed: int | None = None,
    ) -> None:
        import torch

        if threads:
            torch.set_num_threads(int(threads))
        super().__init__(tokenizer, context_budget, seed)
        self.model = model
        self.max_batch_size = max(1, int(max_batch_size))
        tokenizer.padding_side = "left"
        self.stop_ids = stop_token_ids(tokenizer, model)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.convert_ids_to_tokens(self.stop_ids[0])
        self.pad_id = int(tokenizer.pad_token_id)

    # ---- loading -------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        model: str | os.PathLike,
        device: str | None = None,
        dtype: str | None = None,
        **kwargs: Any,
    ) -> "HFPolicy":
        """Load a local folder (or a hub name where the hub is reachable) with transformers.
        A LoRA adapter folder (a LoRA iteration's model) loads its base model with the adapter
        merged in memory (what vLLM computes with the adapter unmerged)."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        source = check_model_source(model)
        base = adapter_base(source)
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        torch_dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
        if torch_dtype is None:
            torch_dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        try:
            tokenizer = AutoTokenizer.from_pretrained(source)
            lm = AutoModelForCausalLM.from_pretrained(check_model_source(base) if base else source, dtype=torch_dtype)
            if base:
                from peft import PeftModel

                lm = PeftModel.from_pretrained(lm, source).merge_and_unload()
        except OSError as err:
            raise FileNotFoundError(f"model {str(model)!r}: could not load it ({err}). Pass a local path to a saved model.") from err
        lm.to(device).eval()
        policy = cls(lm, tokenizer, **kwargs)
        policy.model_id = model_id(source)
        policy.adapter = source if base else None
        return policy

    # ---- tokens (rendering and truncation: ChatSampler's) ------------------------------
    def budget(self, max_new_tokens: int = 0) -> int | None:
        """Prompt tokens allowed: `context_budget`, and never more than the model's position
        limit minus the reply length (a longer prompt would crash or silently degrade)."""
        limit = getattr(getattr(self.model, "config", None), "max_position_embeddings", None)
        caps = [b for b in (self.context_budget, (limit - max_new_tokens) if isinstance(limit, int) else None)
                if b is not None]
        return max(1, min(caps)) if caps else None

    # ---- generation -------------------------------------------------------------------
    def generate(
        self,
        conversations: list[list[Message]],
        n: int = 1,
        temperature: float = 0.0,
        max_new_tokens: int = 128,
        seeds: Sequence[int] | None = None,
    ) -> list[list[str]]:
        """For each conversation, `n` assistant replies (temperature 0 = greedy).

        Sampling is per-row seeded (see `GumbelSampler`): row (i, j) draws from
        derive_seed(seeds[i], j), so its reply does not depend on the batch it ran in. Without
        `seeds`, they are derived from the load-time `seed` and the call count."""
        import torch

        seeds = self._call_seeds(conversations, seeds)
        if not conversations:
            return []
        greedy = is_greedy(temperature)
        copies = 1 if greedy else n
        prompts = [self.prompt(c, max_new_tokens) for c in conversations]
        rows = [(len(p), i, j) for i, p in enumerate(prompts) for j in range(copies)]
        rows.sort(key=lambda row: (-row[0], row[1], row[2]))  # longest first: an OOM shows up at once
        out: list[list[str | None]] = [[None] * copies for _ in conversations]
        device = next(self.model.parameters()).device
        kwargs: dict[str, Any] = dict(
            max_new_tokens=int(max_new_tokens), eos_token_id=self.stop_ids, pad_token_id=self.pad_id,
            do_sample=False, temperature=None, top_p=None, top_k=None,
        )
        was_training = self.model.training
        self.model.eval()  # a model handed over from training: no dropout while sampling
        try:
            with torch.inference_mode():
                for begin in range(0, len(rows), self.max_batch_size):
                    chunk = rows[begin:begin + self.max_batch_size]
                    sampler = None if greedy else GumbelSampler(
                        [derive_seed(seeds[i], j) for _, i, j in chunk], float(temperature))
                    texts = self._generate_chunk([prompts[i] for _, i, _ in chunk], device, kwargs, sampler)
                    for (_, i, j), text in zip(chunk, texts):
                        out[i][j] = text
        finally:
            if was_training:
                self.model.train()
        if greedy and n > 1:
            out = [replies * n for replies in out]
        return out  # type: ignore[return-value]

    def _generate_chunk(self, prompts: list[str], device: Any, kwargs: dict[str, Any],
                        sampler: "GumbelSampler | None" = None) -> list[str]:
        """One `generate` call on left-padded prompts; replies cut at the first stop token."""
        from transformers import LogitsProcessorList

        batch = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        if sampler is not None:
            kwargs = {**kwargs, "logits_processor": LogitsProcessorList([sampler])}
        generated = self.model.generate(**batch, **kwargs)
        return [self._decode(ids) for ids in generated[:, batch["input_ids"].shape[1]:].tolist()]


class GumbelSampler:
    """Sampling at `temperature` as a logits processor for greedy decoding (the Gumbel-max
    trick: argmax(logits / T + Gumbel noise) is a draw from softmax(logits / T)). Each row
    has its own generator, so its draw at step t depends on its seed alone, not on the other
    rows of the batch (transformers' own sampling shares one stream across the batch)."""

    def __init__(self, row_seeds: Sequence[int], temperature: float) -> None:
        import torch

        self.temperature = temperature
        self.generators = [torch.Generator().manual_seed(int(seed)) for seed in row_seeds]

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        if scores.shape[0] != len(self.generators):
            raise ValueError(f"GumbelSampler: {scores.shape[0]} rows for {len(self.generators)} seeds")
        uniform = torch.stack([torch.rand(scores.shape[1], generator=g, dtype=torch.float64) for g in self.generators])
        gumbel = -torch.log(-torch.log(uniform.clamp_min(1e-300)))
        return scores.float() / self.temperature + gumbel.to(device=scores.device, dtype=torch.float32)
