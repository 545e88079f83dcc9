"""SFT from the command line, so that `accelerate launch` can start it on several processes
(a Jupyter kernel cannot be one of them): the same `train.train_sft` call notebook 03 makes.

    accelerate launch --config_file agentr_lib/profiles/accelerate/fsdp-8x80gb.yaml \\
        -m agentr_lib.train_cli --profile paper-full --run-dir RUN --step agent_r/iter1/sft
    accelerate launch --cpu --num_processes 2 -m agentr_lib.train_cli \\
        --init-model MODEL --rows rows.jsonl --out-dir OUT --config '{"batch_size": 4}'

`--step`: a pipeline step's own parameters (pipeline.build_plan: its INIT_MODEL, DATASET_DIR,
ENVS, the profile's sft settings, SEED, OUT_DIR), its dataset loaded and filtered as notebook
03 does (the general-data mix included). `--rows`: a JSONL file of training rows (messages with
per-turn loss flags, or input_ids + labels) and SFTConfig fields as JSON. Process 0 writes
the outputs once (train_sft: adapter/ or merged/, train_metrics.json), which notebook 03 then
loads instead of training again (stages.trained_by_launch).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def step_training(profile: str, run_dir: str, key: str) -> tuple[str, Any, str, Any, str]:
    """(init model, dataset, out dir, SFTConfig, backend) of a pipeline SFT step, as notebook 03
    builds them from its parameters."""
    from .layout import model_path
    from .pipeline import build_plan
    from .run_config import recorded_run_config
    from .stages import TrainingData
    from .train import SFTConfig

    plan = {step.key: step for step in build_plan(recorded_run_config(profile, run_dir).settings, Path(run_dir), Path(run_dir) / "figures")}
    if key not in plan or plan[key].notebook != "03_sft_unsloth":
        raise ValueError(f"--step {key!r}: not an SFT step of profile {profile!r}; these are: "
                         f"{[k for k, s in plan.items() if s.notebook == '03_sft_unsloth']}")
    p = plan[key].parameters
    dataset = TrainingData(p["DATASET_DIR"], p["ENVS"], p["GENERAL_DATA"], p["ETA"]).load(p["SEED"])
    config = SFTConfig(lora=p["LORA"], lora_r=p["LORA_R"], lora_alpha=p["LORA_ALPHA"], learning_rate=p["LEARNING_RATE"],
                       epochs=p["EPOCHS"], batch_size=p["BATCH_SIZE"], max_seq_length=p["MAX_SEQ_LENGTH"],
                       seed=p["SEED"], init_from=p["INIT_FROM"], save_merged=not p["LORA"])
    return model_path(p["INIT_MODEL"]), dataset, p["OUT_DIR"], config, p["BACKEND"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agentr_lib.train_cli", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", help="with --run-dir and --step: a pipeline SFT step")
    parser.add_argument("--run-dir")
    parser.add_argument("--step", help="e.g. agent_r/iter1/sft")
    parser.add_argument("--init-model", help="with --rows and --out-dir: a model or adapter folder")
    parser.add_argument("--rows", help="a JSONL file of training rows")
    parser.add_argument("--out-dir")
    parser.add_argument("--config", default="{}", help="SFTConfig fields as JSON (with --rows)")
    parser.add_argument("--backend", default="hf", help="with --rows: the training backend (hf under accelerate)")
    args = parser.parse_args(argv)
    from .io import read_jsonl
    from .train import SFTConfig, train_sft

    if args.step:
        if not (args.profile and args.run_dir):
            parser.error("--step needs --profile and --run-dir")
        from .shard import ShardError, check_runnable

        try:
            runnable = check_runnable(args.profile, args.run_dir, args.step)
        except ShardError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        if not runnable:
            print(f"{args.step}: already done, nothing to train")
            return 0
        init_model, dataset, out_dir, config, backend = step_training(args.profile, args.run_dir, args.step)
    elif args.init_model and args.rows and args.out_dir:
        init_model, dataset, out_dir, backend = args.init_model, read_jsonl(args.rows), args.out_dir, args.backend
        config = SFTConfig(**json.loads(args.config))
    else:
        parser.error("give --profile/--run-dir/--step, or --init-model/--rows/--out-dir")
    metrics = train_sft(init_model, dataset, out_dir, config, backend=backend)
    print(f"{metrics['steps']} steps on {metrics.get('processes', 1)} processes, final loss {metrics['final_loss']}; "
          f"outputs: {metrics['outputs']['model']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
