"""One search's trees -> revision rows -> SFT -> greedy evaluation, outside the pipeline (the
experiments table of experiments/LOG.md): several variants trained on the same trees, which a
pipeline run cannot share across run folders. Settings are chosen here on the validation
goals, never on test: the evaluation runs on `eval.split=val` unless a `--set` says otherwise.

    python -m agentr_lib.pipeline --profile tiny --run-name s128x6 --only setup,mcts --set iterations=1 ...
    python experiments/revision_sft.py runs/exp/agent_r --trees data/runs/s128x6/iter1-mcts/mcts/trees --set sft.epochs=2
    python experiments/revision_sft.py runs/exp/base --model tiny        # the base model alone
    python experiments/expert_demos.py runs/exp/demos.jsonl               # the tiny model's own BC data
    python experiments/revision_sft.py runs/exp/replay --trees ... --set sft.general_data=runs/exp/demos.jsonl

Every setting is the profile's (`--profile`, default tiny) with the `--set` overrides, checked as
the pipeline checks them (agentr_lib.run_config); the stages are the pipeline's own functions
(agentr_lib.stages). Prints one JSON line: success on the split, episodes whose model emitted
the revision turn and how many of those succeeded, and how often the trained model emits the
revision turn at the revision point of its own training rows ("emitted on training prefixes").
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from agentr_lib import stages
from agentr_lib.agent import REVISION_ACTION
from agentr_lib.evaluate import EvalConfig
from agentr_lib.io import read_jsonl
from agentr_lib.layout import RunLayout
from agentr_lib.results import has_revision_turn
from agentr_lib.revision import METHODS, RevisionSettings, revision_turn_index
from agentr_lib.run_config import RunConfig, load_run_config, parse_sets
from agentr_lib.train import SFTConfig

ENVS = ["textcraft"]


def revision_prefixes(dataset: Any) -> list[list[dict]]:
    """Each revision row's conversation up to (not including) its revision turn."""
    return [[{"role": m["role"], "content": m["content"]} for m in row["messages"][:revision_turn_index(row["messages"])]]
            for row in dataset if row["kind"] == "revision"]


def emitted_revision_turn(policy: stages.PolicySpec, prefixes: list[list[dict]], max_new_tokens: int) -> list[int]:
    """[prefixes whose greedy reply is the revision action, prefixes]."""
    sampling, _ = policy.load("the revision turn on the training prefixes")
    replies = sampling.generate(prefixes, n=1, temperature=0.0, max_new_tokens=max_new_tokens)
    return [sum(f"Action: {REVISION_ACTION}" in reply[0] for reply in replies), len(prefixes)]


def train_on_trees(config: RunConfig, trees: Path, out: Path, method: str, base: str, seed: int) -> dict[str, Any]:
    """Revision rows from `trees` (iteration 1's alpha), SFT of `base` on them: the record's
    fields and the trained model's folder (under "model")."""
    settings = config.stage(RevisionSettings, method=method, alpha=config.alpha(1), seed=seed)
    revised = stages.revise(settings, trees, out / "revision", envs=ENVS, replay_check=config.value("revision.replay_check"))
    data = stages.TrainingData(RunLayout.dataset(out), ENVS, config.value("sft.general_data"), config.value("sft.eta"))
    trained = stages.train(config.stage(SFTConfig, seed=seed, progress=False), base, data, RunLayout.sft(out),
                           backend=config.value("sft.backend"))
    model = str(RunLayout.trained_model(out, config.value("sft.lora")))
    record: dict[str, Any] = {"model": model, "rows": revised.summary["counts"], "sft_steps": trained.metrics["steps"],
                              "sft_final_loss": trained.metrics["final_loss"]}
    prefixes = revision_prefixes(revised.dataset)
    if prefixes:
        record["emitted_on_training_prefixes"] = emitted_revision_turn(
            stages.PolicySpec(model, config.value("backend")), prefixes, config.value("eval.max_new_tokens"))
    return record


def episode_counts(episodes: list[dict]) -> dict[str, int]:
    """Goals, episodes that emitted the revision turn, and those of them that succeeded."""
    revised = [e for e in episodes if has_revision_turn(e)]
    return {"goals": len(episodes), "episodes_with_revision_turn": len(revised),
            "recovered_after_revision": sum(bool(e["success"]) for e in revised)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="folder for the dataset, the model and the evaluation")
    parser.add_argument("--trees", type=Path, help="a search's trees folder (omit with --model)")
    parser.add_argument("--model", help="evaluate this model as it is (tiny, or a folder); no SFT")
    parser.add_argument("--base", default="tiny", help="the model SFT starts from")
    parser.add_argument("--method", default="agent_r", choices=METHODS)
    parser.add_argument("--profile", default="tiny", help="the settings not given by --set (default: tiny)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="sets",
                        help="change one setting, as the pipeline's --set (default here: eval.split=val)")
    parser.add_argument("--seed", type=int, default=1, help="the revision sample's and SFT's seed")
    args = parser.parse_args(argv)
    if not args.model and not args.trees:
        parser.error("give --trees (SFT on their rows) or --model (evaluate a model as it is)")
    config = load_run_config(args.profile, {"eval.split": "val", **parse_sets(args.sets)})
    started = time.time()
    split = config.value("eval.split")
    record: dict[str, Any] = {"out": str(args.out), "split": split, "overrides": config.overrides}
    if args.model:
        model = args.model
    else:
        record.update(train_on_trees(config, args.trees, args.out, args.method, args.base, args.seed))
        model = record.pop("model")
    eval_dir = args.out / f"eval-{split}"
    evaluated = stages.evaluate(config.stage(EvalConfig), stages.PolicySpec(model, config.value("backend")), ENVS,
                                eval_dir)
    metrics = evaluated.metrics["textcraft"]
    record.update(success=metrics["success"], loops_1=metrics["loops"]["1"],
                  **episode_counts(read_jsonl(eval_dir / "textcraft.jsonl")), seconds=round(time.time() - started))
    print(json.dumps(record))


if __name__ == "__main__":
    main()
