"""The tiny model's own behaviour-cloning conversations as a chat file, for the setting
`sft.general_data` (`--set sft.general_data=FILE` in experiments/revision_sft.py or the
pipeline): mixing them into an iteration's SFT is replay of the warm start, the tiny model's
stand-in for the paper's general chat data (ShareGPT at eta 0.2, `sft.eta`).

    python experiments/expert_demos.py runs/exp/demos.jsonl [--stage 0]

Stage 0's rows are demonstrations the shipped model was trained on (distractor seeds 0-25);
no validation or test goal is among them.
"""

from __future__ import annotations

import argparse

from agentr_lib.io import write_jsonl
from agentr_lib.build.demos import collect_demos
from agentr_lib.models import resolve_spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", help="the JSONL file to write")
    parser.add_argument("--stage", type=int, default=0, help="whose distractor seeds (0: seeds 0-25)")
    args = parser.parse_args()
    rows, stats = collect_demos(resolve_spec("tiny"), progress=False, stage=args.stage)
    demos = [row for row in rows if row["env"] == "textcraft"]  # not the phrase book
    write_jsonl(args.out, [{"messages": [{"role": m["role"], "content": m["content"]} for m in row["messages"]]}
                           for row in demos])
    print(stats)


if __name__ == "__main__":
    main()
