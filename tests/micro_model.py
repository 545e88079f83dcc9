"""A micro chat model built in a second, for tests of anything that needs a real
transformers model + tokenizer (never downloaded): a byte-level BPE tokenizer trained on a
few strings by the tiny model's own `train_tokenizer` (ChatML template, reloads exactly), and a
randomly initialised 2-layer LlamaForCausalLM with 32-dim heads (the smallest head size vLLM's
CPU attention runs, so the same folder loads in the hf and the vllm backend).

Reuse: `from tests.micro_model import build_micro_model` (or put tests/ on sys.path) and call
`build_micro_model(tmp_path / "micro")`; it returns the folder, loadable with
`AutoTokenizer/AutoModelForCausalLM.from_pretrained` or `agentr_lib.llm.load_policy("hf", path)`.
"""

from __future__ import annotations

from pathlib import Path

TRAINING_TEXT = [
    "Thought: I need oak planks first.\nAction: get 1 oak log",
    "Action: craft 4 oak planks using 1 oak log",
    "Crafting commands: craft 1 stick using 2 planks. Goal: craft stick.",
    "Got 1 oak log. Inventory: [oak planks] (4). Could not find enough items.",
    "search[blue shoes] click[buy now] Back to Search Next > WebShop [SEP] Instruction:",
    "look around. open door to kitchen. pick up thermometer. focus on water.",
]


def build_micro_model(folder: str | Path, seed: int = 0, hidden: int = 32, layers: int = 2, vocab_size: int = 400,
                      heads: int = 2, head_dim: int = 32) -> Path:
    """Train the tokenizer, init the model with `seed`, save both to `folder`; returns it."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from agentr_lib.build.tokenizer import train_tokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(TRAINING_TEXT, vocab_size)
    tokenizer.save_pretrained(folder)

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=1, head_dim=head_dim, max_position_embeddings=2048, tie_word_embeddings=False, initializer_range=0.2,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"), pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = config.eos_token_id
    model.generation_config.pad_token_id = config.pad_token_id
    model.save_pretrained(folder)
    return folder
