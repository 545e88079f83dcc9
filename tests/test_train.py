"""SFT on a micro model: the loss goes down, outputs reload and generate, LoRA adapter and
merged model agree, backend selection on CPU never imports unsloth."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from agentr_lib.agent import format_response, opening_messages
from agentr_lib.data import tokenize_dataset
from agentr_lib.build.bc import build_tiny_model
from agentr_lib.train import (
    SFTConfig, batch_loss, pad_batch, resolve_init_model, select_backend, train_sft, trained_token_loss,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def micro(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("micro") / "model", size="micro", seed=0, progress=False)


def rows() -> list[dict]:
    out = []
    for i in range(4):
        messages = opening_messages("Craft the goal item.", f"Crafting commands:\ncraft 4 oak planks using 1 oak logs\nGoal: craft {i} oak planks.")
        messages += [
            {"role": "assistant", "content": format_response("Bad idea.", "get 9 dirt"), "loss": False},
            {"role": "user", "content": "Could not find dirt"},
            {"role": "assistant", "content": format_response("I was wrong. I should revise.", "wait")},
            {"role": "user", "content": "ok."},
            {"role": "assistant", "content": format_response("oak planks needs 1 oak logs.", "get 1 oak logs")},
        ]
        out.append({"messages": messages, "env": "textcraft"})
    return out


def test_a_few_full_finetuning_steps_lower_the_loss_and_the_model_reloads(micro, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(micro)
    dataset, stats = tokenize_dataset(rows(), tokenizer, 512, progress=False)
    batch = pad_batch([dataset[i] for i in range(len(dataset))], tokenizer.pad_token_id)
    before = batch_loss(AutoModelForCausalLM.from_pretrained(micro), batch)
    config = SFTConfig(lora=False, learning_rate=1e-2, max_steps=12, batch_size=4, warmup_ratio=0.0, seed=0,
                       log_every=1, progress=False, init_from="base")
    metrics = train_sft(micro, dataset, tmp_path / "out", config, backend="hf")
    after = batch_loss(AutoModelForCausalLM.from_pretrained(tmp_path / "out" / "merged"), batch)
    assert after < before - 0.1, (before, after)
    assert not (tmp_path / "out" / "adapter").exists(), "full fine-tuning writes no adapter"
    saved = json.loads((tmp_path / "out" / "train_metrics.json").read_text())
    assert saved["backend"] == "hf" and saved["backend_reason"] == "requested" and saved["init_from"] == "base"
    assert saved["steps"] == 12 and len(saved["curve"]) == 12 and saved["tokens_trained"] == 12 * stats.trained_tokens
    assert 0 < saved["masked_fraction"] < 1 and saved["tokens_per_s"] > 0
    assert metrics["final_loss"] == saved["final_loss"]
    # the saved model + tokenizer generate a reply that stops at <|im_end|>
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "out" / "merged").eval()
    tok = AutoTokenizer.from_pretrained(tmp_path / "out" / "merged")
    prompt = tok.apply_chat_template(rows()[0]["messages"][:3], add_generation_prompt=True, tokenize=False)
    ids = torch.tensor([tok(prompt, add_special_tokens=False)["input_ids"]])
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False)
    assert 0 < out.shape[1] - ids.shape[1] <= 8


def test_raw_message_rows_are_tokenised_by_train_sft(micro, tmp_path, capsys):
    config = SFTConfig(lora=False, max_steps=2, batch_size=2, progress=False, max_seq_length=64)
    metrics = train_sft(micro, rows(), tmp_path / "raw", config, backend="hf")
    assert metrics["data"]["examples_in"] == 4 and metrics["data"]["truncated"] == 4
    said = [line for line in capsys.readouterr().out.splitlines() if "max_steps" in line]
    assert said == ["sft: max_steps=2 sets the length; epochs=1 (2 steps) is not used"], "said once"
    assert (tmp_path / "raw" / "merged" / "config.json").exists()


def test_train_metrics_count_rows_per_kind_and_a_kind_dropped_entirely_fails(micro, tmp_path):
    from agentr_lib.data import KindDropped, tokenize_conversation
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(micro)
    long_rows = [dict(row, kind="revision") for row in rows()[:2]]
    good_rows = [dict(row, kind="good", messages=row["messages"][:3] + row["messages"][-1:]) for row in rows()[2:]]
    good_tokens = max(tokenize_conversation(tokenizer, row["messages"])["num_tokens"] for row in good_rows)
    config = SFTConfig(lora=False, max_steps=1, batch_size=2, progress=False, max_seq_length=good_tokens)
    metrics = train_sft(micro, long_rows + good_rows, tmp_path / "kinds", config, backend="hf")
    saved = json.loads((tmp_path / "kinds" / "train_metrics.json").read_text())["data"]["per_kind"]
    assert metrics["data"]["per_kind"] == saved
    assert {k: saved["revision"][k] for k in ("rows", "kept", "truncated", "dropped")} == \
        {"rows": 2, "kept": 2, "truncated": 2, "dropped": 0}, "long revision rows lose old turns, not all targets"
    assert {k: saved["good"][k] for k in ("rows", "kept", "truncated", "dropped")} == \
        {"rows": 2, "kept": 2, "truncated": 0, "dropped": 0}
    instruction = tokenize_conversation(tokenizer, rows()[0]["messages"][:1])["num_tokens"]  # before any target
    tight = SFTConfig(lora=False, max_steps=1, batch_size=2, progress=False, max_seq_length=instruction)
    with pytest.raises(KindDropped, match="every good and every revision row was dropped"):
        train_sft(micro, long_rows + good_rows, tmp_path / "tight", tight, backend="hf")
    assert not (tmp_path / "tight" / "merged").exists()


def test_trained_token_loss_equals_the_full_causal_lm_loss_with_and_without_lora(micro):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(micro)
    dataset, _ = tokenize_dataset(rows(), tokenizer, 512, progress=False)
    batch = pad_batch([dataset[i] for i in range(len(dataset))], tokenizer.pad_token_id)
    assert (batch["labels"] == -100).float().mean() > 0.3, "the batch must mix masked and trained tokens"
    model = AutoModelForCausalLM.from_pretrained(micro).eval()
    with torch.no_grad():
        assert torch.allclose(trained_token_loss(model, batch), model(**batch).loss, atol=1e-5)
    lora = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    loss = trained_token_loss(lora, batch)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for n, p in lora.named_parameters() if "lora_B" in n)
    assert torch.allclose(loss.detach(), lora(**batch).loss.detach(), atol=1e-5)


def test_lora_writes_an_adapter_and_a_merged_model_that_agree(micro, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    config = SFTConfig(lora=True, lora_r=4, lora_alpha=8, learning_rate=5e-2, max_steps=5, batch_size=4,
                       progress=False, target_modules=("q_proj", "v_proj", "up_proj"))
    metrics = train_sft(micro, rows(), tmp_path / "lora", config, backend="hf")
    assert (tmp_path / "lora" / "adapter" / "adapter_config.json").exists()
    base = AutoModelForCausalLM.from_pretrained(micro)
    with_adapter = PeftModel.from_pretrained(base, tmp_path / "lora" / "adapter").eval()
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "lora" / "merged").eval()
    tok = AutoTokenizer.from_pretrained(tmp_path / "lora" / "merged")
    ids = torch.tensor([tok("Goal: craft oak planks.")["input_ids"]])
    with torch.no_grad():
        a, m = with_adapter(input_ids=ids).logits, merged(input_ids=ids).logits
        plain = AutoModelForCausalLM.from_pretrained(micro)(input_ids=ids).logits
    assert torch.allclose(a, m, atol=1e-4)
    assert not torch.allclose(plain, m, atol=1e-4), "the adapter changed the model"
    assert metrics["trainable_params"] < sum(p.numel() for p in merged.parameters())
    assert metrics["outputs"]["adapter"].endswith("adapter")


def test_auto_backend_on_cpu_is_hf_and_never_imports_unsloth():
    code = (
        "import sys; from agentr_lib.train import select_backend; name, reason = select_backend('auto'); "
        "assert 'unsloth' not in sys.modules, 'unsloth imported'; print(name, '|', reason)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    if not torch.cuda.is_available():
        assert result.stdout.startswith("hf | auto: no CUDA GPU")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CPU-only behaviour")
def test_unsloth_backend_on_cpu_is_a_clear_error():
    with pytest.raises(RuntimeError, match="CUDA"):
        select_backend("unsloth")
    with pytest.raises(ValueError, match="backend"):
        select_backend("vllm")
    assert select_backend("hf") == ("hf", "requested")


def test_init_from_previous_or_base():
    assert resolve_init_model("base", "it1/merged") == "it1/merged"
    assert resolve_init_model("base", None) == "base"
    assert resolve_init_model("base", "it1/merged", "base") == "base"
    with pytest.raises(ValueError, match="init_from"):
        resolve_init_model("base", None, "scratch")


def test_pad_batch_pads_labels_with_ignore_index():
    batch = pad_batch([{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}, {"input_ids": [8], "labels": [8]}], pad_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [8, -100, -100]]


def test_an_empty_dataset_carries_the_model_over(micro, tmp_path):
    from agentr_lib.revision import build_dataset, load_dataset, save_dataset

    save_dataset(build_dataset([]), tmp_path / "dataset")
    dataset = load_dataset(tmp_path / "dataset")  # datasets itself cannot reload an empty one
    assert len(dataset) == 0 and "messages" in dataset.column_names
    metrics = train_sft(micro, dataset, tmp_path / "out", SFTConfig(lora=False, progress=False), backend="hf")
    assert metrics["steps"] == 0 and "carried over" in metrics["note"]
    merged = tmp_path / "out" / "merged"
    assert (merged / "model.safetensors").read_bytes() == (Path(micro) / "model.safetensors").read_bytes()
