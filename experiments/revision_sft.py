"""One iteration's data -> SFT -> greedy evaluation on the validation goals, outside the pipeline
(the experiments table of experiments/LOG.md). Settings are chosen here, on validation goals, never on test.

    python experiments/search.py runs/exp/s128x6 --tasks 128 --simulations 6
    python experiments/revision_sft.py runs/exp/agent_r --trees runs/exp/s128x6/trees --epochs 2
    python experiments/revision_sft.py runs/exp/base --model tiny        # the base model alone
    python experiments/expert_demos.py runs/exp/demos.jsonl               # the tiny model's own BC data
    python experiments/revision_sft.py runs/exp/replay --trees ... --general runs/exp/demos.jsonl --eta 0.2

Prints one JSON line: success on the split, episodes whose model emitted the revision turn and
how many of those succeeded, and how often the trained model emits the revision turn at the
revision point of its own training rows ("emitted on training prefixes"). Every setting not
given on the command line is the `tiny` profile's (revision, SFT and evaluation sections).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from agentr_lib.agent import REVISION_ACTION
from agentr_lib.data import mix_general
from agentr_lib.envs import make_env
from agentr_lib.evaluate import evaluate
from agentr_lib.layout import model_path
from agentr_lib.llm import load_policy
from agentr_lib.mcts import load_trees
from agentr_lib.profiles import alpha_for, load_profile
from agentr_lib.results import has_revision_turn
from agentr_lib.revision import RevisionSettings, build_dataset, counts, revision_turn_index
from agentr_lib.splits import load_split
from agentr_lib.train import SFTConfig, train_sft

PROFILE = load_profile("tiny")


def revision_prefixes(dataset) -> list[list[dict]]:
    """Each revision row's conversation up to (not including) its revision turn."""
    return [[{"role": m["role"], "content": m["content"]} for m in row["messages"][:revision_turn_index(row["messages"])]]
            for row in dataset if row["kind"] == "revision"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", help="folder for the dataset's model and the evaluation")
    parser.add_argument("--trees", help="a search's trees folder (omit with --model)")
    parser.add_argument("--model", help="evaluate this model as it is (tiny, or a folder); no SFT")
    parser.add_argument("--base", default="tiny", help="the model SFT starts from")
    parser.add_argument("--method", default="agent_r", choices=["agent_r", "direct_revision", "good_only"])
    parser.add_argument("--epochs", type=float, default=PROFILE["sft"]["epochs"])
    parser.add_argument("--lr", type=float, default=PROFILE["sft"]["learning_rate"])
    parser.add_argument("--alpha", type=float, default=alpha_for(PROFILE, 1), help="default: iteration 1's")
    parser.add_argument("--general", help="a chat file mixed into the SFT rows (data.mix_general), e.g. expert demos")
    parser.add_argument("--eta", type=float, default=PROFILE["sft"]["eta"], help="its share of the mix")
    parser.add_argument("--split", default="val", choices=["val", "test"])
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    out = Path(args.out)
    started = time.time()
    record: dict = {"out": str(out), "split": args.split}
    model = str(model_path(args.model)) if args.model else None
    if model is None:
        if not args.trees:
            parser.error("give --trees (SFT on their rows) or --model (evaluate a model as it is)")
        revision, sft = PROFILE["revision"], PROFILE["sft"]
        settings = RevisionSettings(args.method, alpha=args.alpha, beta=revision["beta"],
                                    verifier=revision["verifier"], max_pairs_per_tree=revision["max_pairs_per_tree"],
                                    seed=args.seed)
        dataset = build_dataset(load_trees(args.trees), settings, replay_env_factory=make_env, progress=False)
        rows, prefixes = counts(dataset), revision_prefixes(dataset)
        if args.general:
            dataset = mix_general(dataset, args.general, eta=args.eta, seed=args.seed)
            rows.append({"general": sum(source == "general" for source in dataset["source"])})
        config = SFTConfig(lora=False, epochs=args.epochs, learning_rate=args.lr, batch_size=sft["batch_size"],
                           max_seq_length=sft["max_seq_length"], seed=args.seed, progress=False)
        metrics = train_sft(str(model_path(args.base)), dataset, out / "sft", config, backend="hf")
        model = str(out / "sft" / "merged")
        if prefixes:
            replies = load_policy("hf", model).generate(prefixes, n=1, temperature=0.0, max_new_tokens=96)
            said = [f"Action: {REVISION_ACTION}" in r[0] for r in replies]
            record["emitted_on_training_prefixes"] = [sum(said), len(prefixes)]
        record.update(rows=rows, sft_steps=metrics["steps"], sft_final_loss=metrics["final_loss"])
    metrics = evaluate(load_policy("auto", model), "textcraft", load_split("textcraft", args.split),
                       out / f"eval-{args.split}", max_turns=PROFILE["eval"]["max_turns"],
                       max_new_tokens=PROFILE["eval"]["max_new_tokens"], progress=False)
    episodes = [json.loads(line) for line in open(out / f"eval-{args.split}" / "textcraft.jsonl")]
    revised = [e for e in episodes if has_revision_turn(e)]
    record.update(success=metrics["success"], goals=len(episodes), loops_1=metrics["loops"]["1"],
                  episodes_with_revision_turn=len(revised), recovered_after_revision=sum(bool(e["success"]) for e in revised),
                  seconds=round(time.time() - started))
    print(json.dumps(record))


if __name__ == "__main__":
    main()
