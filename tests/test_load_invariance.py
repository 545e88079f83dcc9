"""Issue 31: a fresh-clone run on a loaded machine scored Agent-R iteration 3 differently (its SFT
took 4m41s instead of ~1m20s). Nothing in search, SFT or evaluation may depend on time or load:
no time cap, no thread count chosen at run time. These run the same seeded work on an idle and
on a saturated machine (busy processes on every core) and require the same bytes."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agentr_lib.envs import make_env
from agentr_lib.llm import load_policy
from agentr_lib.mcts import MCTSConfig, search_trees, tree_to_dict
from agentr_lib.train import SFTConfig, train_sft

sys.path.insert(0, str(Path(__file__).resolve().parent))
from micro_model import build_micro_model  # noqa: E402
from test_train import rows  # noqa: E402


@pytest.fixture(scope="module")
def micro(tmp_path_factory) -> Path:
    return build_micro_model(tmp_path_factory.mktemp("micro") / "model", seed=0)


@contextlib.contextmanager
def saturated():
    """Two busy processes per core for the block's duration."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2 * (os.cpu_count() or 1))]
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def _weights(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.safetensors")):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def test_sft_writes_the_same_weights_on_a_loaded_machine(micro, tmp_path):
    config = SFTConfig(lora=False, learning_rate=1e-2, max_steps=8, batch_size=2, warmup_ratio=0.0, seed=3,
                       progress=False, max_seq_length=128, threads=2)
    train_sft(micro, rows(), tmp_path / "idle", config, backend="hf")
    with saturated():
        train_sft(micro, rows(), tmp_path / "loaded", config, backend="hf")
    assert _weights(tmp_path / "idle" / "merged") == _weights(tmp_path / "loaded" / "merged")
    assert json.loads((tmp_path / "idle" / "train_metrics.json").read_text())["curve"][-1]["loss"] == \
        json.loads((tmp_path / "loaded" / "train_metrics.json").read_text())["curve"][-1]["loss"]


def _trees(result) -> str:
    return json.dumps([{k: v for k, v in tree_to_dict(t).items() if k != "stats"} for t in result.trees], sort_keys=True)


@pytest.mark.parametrize("backend", ["hf", "vllm"])
def test_search_gives_the_same_trees_on_a_loaded_machine(micro, tmp_path, backend):
    if backend == "vllm":
        pytest.importorskip("vllm", reason="no vllm wheel for this platform")
    config = MCTSConfig(simulations=3, n_gen=2, temperature=1.0, max_depth=3, seed=4, batch_trees=3, max_new_tokens=16)
    tasks = make_env("textcraft").task_ids("train")[:3]
    options = {"kv_cache_gb": 0.02} if backend == "vllm" else {"threads": 2}
    policy = load_policy(backend, str(micro), seed=0, **options)
    idle = search_trees(policy, lambda: make_env("textcraft"), tasks, config, progress=False, env_name="textcraft")
    with saturated():
        loaded = search_trees(policy, lambda: make_env("textcraft"), tasks, config, progress=False, env_name="textcraft")
    assert _trees(idle) == _trees(loaded)
