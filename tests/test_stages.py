"""The four stage functions (agentr_lib.stages) chained on a micro model, as notebooks 01-04 call
them: each writes the files the next step reads and returns what it wrote; a rerun of the search
resumes; importing the module imports no heavy library (unsloth must come before transformers);
each notebook is a view of one stage call."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agentr_lib.evaluate import EvalConfig
from agentr_lib.io import read_json
from agentr_lib.mcts import MCTSConfig, load_trees
from agentr_lib.revision import RevisionSettings, load_dataset
from agentr_lib.stages import PolicySpec, TrainingData, evaluate, revise, search, train
from agentr_lib.train import SFTConfig
from micro_model import build_micro_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def micro(tmp_path_factory) -> Path:
    return build_micro_model(tmp_path_factory.mktemp("micro") / "model")


def test_the_four_stages_chain_and_each_writes_what_it_returns(micro, tmp_path, capsys):
    policy = PolicySpec(str(micro), "hf")
    config = MCTSConfig(simulations=2, n_gen=2, max_depth=2, max_new_tokens=16, batch_trees=2, seed=1)
    searched = search(config, policy, ["textcraft"], tmp_path / "mcts", tasks_per_env=2, task_split="search",
                      iteration=2)
    summary = read_json(tmp_path / "mcts" / "summary.json")
    assert searched.path == tmp_path / "mcts" / "summary.json"
    assert summary["iteration"] == 2 and summary["model"] == str(micro) and summary["sampler"]["backend"] == "hf"
    assert summary["config"]["simulations"] == 2 and summary["per_env"][0]["trees"] == 2 == len(searched.trees())
    assert sorted(t.task_id for t in load_trees(tmp_path / "mcts" / "trees")) == sorted(
        t.task_id for t in searched.trees())
    again = search(config, policy, ["textcraft"], tmp_path / "mcts", tasks_per_env=2, task_split="search")
    assert not again.results["textcraft"].searched and len(again.results["textcraft"].loaded) == 2, "resumed"

    # alpha -1 and beta 0, the smoke profile's: every leaf is good and any two leaves a (good, bad) pair
    settings = RevisionSettings(alpha=-1.0, beta=0.0, max_pairs_per_tree=2, seed=1)
    revised = revise(settings, tmp_path / "mcts" / "trees", tmp_path / "revision", envs=["textcraft"],
                     verifier=policy, replay_check=False)
    assert revised.verifier is None, "the value verifier loads no model"
    written = read_json(tmp_path / "revision" / "summary.json")
    assert written == json.loads(json.dumps(revised.summary))
    assert written["rows"] == len(load_dataset(tmp_path / "revision" / "dataset")) == len(revised.dataset) > 0
    spliced = [row for row in revised.dataset if row["kind"] != "good"]
    assert written["t_prime"] == {"textcraft": [row["t_prime"] for row in spliced]}

    sft = SFTConfig(lora=False, max_steps=1, batch_size=2, max_seq_length=1024, progress=False)
    trained = train(sft, str(micro), TrainingData(tmp_path / "revision" / "dataset", ["textcraft"]), tmp_path / "sft",
                    backend="hf")
    assert trained.backend == "hf" and trained.metrics["steps"] == 1 and len(trained.dataset) == written["rows"]
    assert read_json(tmp_path / "sft" / "train_metrics.json")["config"]["epochs"] == sft.epochs
    assert "no general chat data mixed in" in capsys.readouterr().out

    evaluated = evaluate(EvalConfig(tasks_per_env=2, max_turns=2, max_new_tokens=8),
                         PolicySpec(trained.metrics["outputs"]["model"], "hf"), ["textcraft"], tmp_path / "eval",
                         seed=3, prefixes_dir=tmp_path / "prefixes", make_prefixes=True)
    assert evaluated.metrics["textcraft"]["n"] == 2 and evaluated.revision is not None
    assert read_json(tmp_path / "eval" / "sampler.json") == evaluated.sampler
    assert evaluated.sampler["calls"] > 0 and evaluated.sampler["model_id"]


def test_the_model_verifier_needs_its_actor(tmp_path):
    (tmp_path / "trees").mkdir()
    with pytest.raises(ValueError, match="the model verifier needs the actor"):
        revise(RevisionSettings(verifier="model"), tmp_path / "trees", tmp_path / "out", envs=["textcraft"])


def test_importing_the_stages_imports_no_heavy_library():
    """`stages.train` imports unsloth (on a GPU) before transformers: importing the module must
    not have imported transformers (or torch) already."""
    code = ("import sys, agentr_lib.stages; "
            "print(sorted(m for m in ('transformers', 'torch', 'datasets', 'pandas', 'peft') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("notebook, stage", [("01_mcts_collection", "search"), ("02_revision_construction", "revise"),
                                             ("03_sft_unsloth", "train"), ("04_evaluation", "evaluate")])
def test_each_notebook_is_a_view_of_one_stage_call(notebook, stage):
    """Parameters, one stage call, then tables and plots: the step's work is not inlined again."""
    cells = json.loads((ROOT / "notebooks" / f"{notebook}.ipynb").read_text())["cells"]
    code = "\n".join("".join(cell["source"]) for cell in cells if cell["cell_type"] == "code")
    assert code.count(f"= {stage}(") == 1, notebook
    for inlined in ("search_trees(", "build_dataset(", "train_sft(", "evaluate_suite(", "atomic_write_json("):
        assert inlined not in code, (notebook, inlined)
