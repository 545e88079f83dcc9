"""The embedded models' tokenizer: a byte-level BPE trained on environment text, with a
ChatML/Qwen2.5-style chat template (no default system prompt: it would cost tokens on every
turn)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

# ChatML as Qwen2.5 renders it, minus the default system prompt. `{% generation %}` marks the
# trained part of assistant turns (content + <|im_end|>) for tools that read the markers;
# agentr_lib.data derives the same spans from prefix renders.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['role'] == 'assistant' %}"
    "{% generation %}{{- message['content'] + '<|im_end|>' }}{% endgeneration %}{{- '\\n' }}"
    "{%- else %}"
    "{{- message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def train_tokenizer(texts: Sequence[str], vocab_size: int) -> Any:
    """Byte-level BPE trained on `texts` (order matters for ties: pass them sorted/deterministic),
    returned as the `Qwen2Tokenizer` that `AutoTokenizer` rebuilds from the saved files.

    Why Qwen2's own pipeline (NFC, its split regex with single digits, byte-level): transformers
    loads any tokenizer saved next to a qwen2 config.json as `Qwen2Tokenizer`, which rebuilds the
    pre-tokenizer from scratch. A BPE trained with another pre-tokenizer then splits text
    differently at inference than in training (measured: `get 4` became `get`, ` `, `4`, and the
    model garbled every action with a number in it). Training with the same pipeline and wrapping
    the learned vocab/merges in `Qwen2Tokenizer` makes the round trip exact (a test checks)."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX, Qwen2Tokenizer

    core = Tokenizer(models.BPE(unk_token=None))
    core.normalizer = normalizers.NFC()
    core.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(list(texts), trainer=trainer)
    learned = json.loads(core.to_str())["model"]
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in learned["merges"]]
    tokenizer = Qwen2Tokenizer(
        vocab=learned["vocab"],
        merges=merges,
        unk_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        extra_special_tokens=["<|im_start|>"],
        clean_up_tokenization_spaces=False,
        model_max_length=4096,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.padding_side = "left"
    return tokenizer
