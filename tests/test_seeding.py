"""Seeds flow into every sampler: a seeded sample does not depend on its batch, so two runs
of the same search (or a search resumed tree by tree) give identical trees."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from agentr_lib.agent import EpisodeSettings, run_episodes
from agentr_lib.envs import make_env
from agentr_lib.llm import derive_seed, load_policy
from agentr_lib.mcts import MCTSConfig, search_trees, tree_to_dict
from micro_model import build_micro_model

CONVERSATIONS = [
    [{"role": "user", "content": "Goal: craft stick."}],
    [{"role": "user", "content": "Got 1 oak log. Inventory: [oak planks] (4)."}],
    [{"role": "user", "content": "search[blue shoes]"}],
]


@pytest.fixture(scope="module")
def micro_path(tmp_path_factory):
    return build_micro_model(tmp_path_factory.mktemp("micro") / "model", seed=0)


def test_derive_seed_is_stable_and_separates_parts():
    assert derive_seed(0, "textcraft", 3, 7) == derive_seed(0, "textcraft", 3, 7)
    assert derive_seed(0, "textcraft", 3, 7) != derive_seed(0, "textcraft", 37)
    assert 0 <= derive_seed("x") < 2**63
    code = "from agentr_lib.llm import derive_seed; print(derive_seed(0, 'textcraft', 3, 7))"
    for hash_seed in ("1", "2"):
        other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                               env={**os.environ, "PYTHONHASHSEED": hash_seed}).stdout
        assert int(other) == derive_seed(0, "textcraft", 3, 7), "must not change across processes"


def test_seeded_samples_do_not_depend_on_the_batch(micro_path):
    policy = load_policy("hf", str(micro_path), max_batch_size=8, threads=1)
    together = policy.generate(CONVERSATIONS, n=3, temperature=1.0, max_new_tokens=12, seeds=[11, 12, 13])
    alone = policy.generate(CONVERSATIONS[1:2], n=3, temperature=1.0, max_new_tokens=12, seeds=[12])
    assert alone[0] == together[1]
    small_batches = load_policy("hf", str(micro_path), max_batch_size=2, threads=1)
    assert small_batches.generate(CONVERSATIONS, n=3, temperature=1.0, max_new_tokens=12, seeds=[11, 12, 13]) == together
    other = policy.generate(CONVERSATIONS, n=3, temperature=1.0, max_new_tokens=12, seeds=[21, 22, 23])
    assert other != together, "another seed draws other samples"
    assert len({reply for replies in together for reply in replies}) > 3, "samples of one conversation differ"


def test_unseeded_sampling_is_reproducible_across_policies(micro_path):
    first = load_policy("hf", str(micro_path), seed=5, threads=1)
    second = load_policy("hf", str(micro_path), seed=5, threads=1)
    for _ in range(2):
        assert first.generate(CONVERSATIONS, n=2, temperature=1.0, max_new_tokens=10) == \
            second.generate(CONVERSATIONS, n=2, temperature=1.0, max_new_tokens=10)


def _trees(result) -> str:
    return json.dumps([{k: v for k, v in tree_to_dict(t).items() if k != "stats"} for t in result.trees], sort_keys=True)


def test_seeded_search_twice_and_resumed_gives_identical_trees(micro_path, tmp_path):
    config = MCTSConfig(simulations=2, n_gen=2, temperature=1.0, max_depth=3, seed=4, batch_trees=3, max_new_tokens=16)
    tasks = make_env("textcraft").task_ids("train")[:3]
    runs = []
    for name in ("a", "b"):
        policy = load_policy("hf", str(micro_path), threads=1)
        runs.append(search_trees(policy, lambda: make_env("textcraft"), tasks, config, out_dir=tmp_path / name,
                                 progress=False, env_name="textcraft"))
    assert _trees(runs[0]) == _trees(runs[1])
    # resumed: one tree searched first (alone in its batch), then the rest in another process-like call
    policy = load_policy("hf", str(micro_path), threads=1)
    search_trees(policy, lambda: make_env("textcraft"), tasks[1:2], config, out_dir=tmp_path / "c", progress=False)
    resumed = search_trees(load_policy("hf", str(micro_path), threads=1), lambda: make_env("textcraft"), tasks, config,
                           out_dir=tmp_path / "c", progress=False)
    assert resumed.loaded == [tasks[1]]
    assert _trees(resumed) == _trees(runs[0])
    other_seed = MCTSConfig(**{**config.__dict__, "seed": 5})
    different = search_trees(policy, lambda: make_env("textcraft"), tasks, other_seed, progress=False)
    assert _trees(different) != _trees(runs[0])


def test_sampled_episodes_are_seeded_per_episode(micro_path):
    policy = load_policy("hf", str(micro_path), threads=1)
    tasks = make_env("textcraft").task_ids("test")[:3]
    settings = EpisodeSettings(max_turns=2, temperature=1.0, max_new_tokens=12, seed=3)
    together = run_episodes(policy, lambda: make_env("textcraft"), tasks, settings, progress=False)
    alone = run_episodes(policy, lambda: make_env("textcraft"), tasks[2:], settings, progress=False)
    assert [s.response for s in alone[0].steps] == [s.response for s in together[2].steps]


def test_scripted_policy_keeps_the_seeded_contract():
    """A test double that broke the contract would let a batching bug pass the MCTS tests."""
    from agentr_lib.llm.scripted import ScriptedPolicy

    def coin(conversation, rng):
        return f"{conversation[-1]['content']}:{rng.random():.6f}"

    first, second = [{"role": "user", "content": "a"}], [{"role": "user", "content": "b"}]
    alone = ScriptedPolicy(coin).generate([first], n=3, temperature=1.0, seeds=[7])[0]
    batched = ScriptedPolicy(coin).generate([second, first], n=3, temperature=1.0, seeds=[8, 7])[1]
    assert alone == batched and len(set(alone)) == 3
    shared = ScriptedPolicy(coin).generate([second, first], n=3, temperature=1.0)[1]
    assert shared != alone  # without seeds: one generator, so batch-mates move it
    with pytest.raises(ValueError, match="seeds has 1 entries for 2 conversations"):
        ScriptedPolicy(coin).generate([first, second], seeds=[1])
