"""A freshly initialised causal LM of an embedded spec's shape (agentr_lib.models.TinySpec)."""

from __future__ import annotations

from typing import Any

from ..models import TinySpec


def make_model(spec: TinySpec, tokenizer: Any) -> Any:
    """A freshly initialised causal LM of the spec's architecture and shape (seeded)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    classes = {"llama": (LlamaConfig, LlamaForCausalLM), "qwen2": (Qwen2Config, Qwen2ForCausalLM)}
    if spec.architecture not in classes:
        raise ValueError(f"architecture={spec.architecture!r}; expected one of {sorted(classes)}")
    config_class, model_class = classes[spec.architecture]
    shape = {"head_dim": spec.head_dim} if spec.architecture == "llama" else {}
    torch.manual_seed(spec.seed)
    config = config_class(
        **shape,
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_kv_heads,
        max_position_embeddings=spec.max_position,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.pad_token_id,
        rope_theta=10000.0,
    )
    model = model_class(config)
    model.generation_config.eos_token_id = config.eos_token_id
    model.generation_config.pad_token_id = config.pad_token_id
    model.generation_config.bos_token_id = None
    return model
