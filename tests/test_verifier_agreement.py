"""The model verifier's verdicts against the value verifier's on the same pairs, on the hand
tree of test_revision (known values): per step and per pair."""

from __future__ import annotations

import json

import pytest

from agentr_lib.mcts import tree_to_dict
from agentr_lib.revision import RevisionSettings, build_dataset, save_dataset
from agentr_lib.verifier_agreement import agreement
from test_revision import hand_tree, judge_policy


def fake_run(tmp_path, verifier: str = "model"):
    """A run folder as the pipeline leaves it: trees, notebook 02's executed copy with its
    injected parameters, and its dataset (the model judging steps c and x Bad)."""
    tree, _ = hand_tree()
    trees = tmp_path / "iter1-mcts" / "mcts" / "trees"
    trees.mkdir(parents=True)
    (trees / "toy-000007.json").write_text(json.dumps(tree_to_dict(tree)))
    step = tmp_path / "agent_r" / "iter1"
    settings = RevisionSettings("agent_r", alpha=1.0, beta=0.2, verifier="model", max_pairs_per_tree=None, seed=1)
    save_dataset(build_dataset([tree], settings, policy=judge_policy({"c", "x"}), progress=False), step / "revision" / "dataset")
    source = (f'TREES_DIR = "{trees}"\nALPHA = 1.0\nBETA = 0.2\nVERIFIER = "{verifier}"\n'
              "MAX_PAIRS_PER_TREE = None\nSEED = 1\n")
    notebook = {"cells": [{"cell_type": "code", "metadata": {"tags": ["injected-parameters"]}, "source": source}]}
    (step / "02_revision_construction.ipynb").write_text(json.dumps(notebook))
    return tmp_path


def test_agreement_per_step_and_per_pair(tmp_path):
    result = agreement(fake_run(tmp_path))
    # pairs G/X, G/D, G/E; all of x, c, d, e have mean value < 1 (lost by the value rule)
    assert result["pairs"] == 3
    assert result["steps"] == {"Bad / value lost": 2, "Good / value lost": 2}  # x, c Bad; d, e judged Good
    assert result["step_agreement"] == 0.5
    # t': X 3 = 3; D: model 2 (c Bad), value 2 (c lost); E: no Bad -> last step 1, value 1
    assert result["pairs_same_t_prime"] == 3 and result["t_prime_model_minus_value"] == {0: 3}


def test_a_value_verifier_run_is_refused(tmp_path):
    with pytest.raises(ValueError, match="not 'model'"):
        agreement(fake_run(tmp_path, verifier="value"))
