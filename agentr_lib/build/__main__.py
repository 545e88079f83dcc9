"""`python -m agentr_lib.build build [--size tiny-disjoint] [--force] [--seed 0]` builds (or
reuses, or resumes) an embedded model of the registry (agentr_lib.models.SIZES) into
data/models/; `python -m agentr_lib.build eval MODEL_DIR` scores a built one into its card."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from ..io import read_json
from ..models import SIZES, resolve_spec


def pin_math_threads(threads: int) -> None:
    """Give MKL the thread count torch trains with, before torch is imported. Why: torch's
    set_num_threads sets MKL's count on the calling thread only; the OpenMP worker threads
    (the CPU attention backward's GEMMs) keep the count MKL read from MKL_NUM_THREADS (or the
    core count) at import, and it changes the rounding: micro at threads 2 gave sha256
    cf983342... with MKL_NUM_THREADS unset or 2 and 27237bf6... with MKL_NUM_THREADS=1
    (docs/embedded-model.md#determinism). Too late once torch is imported: train warns then."""
    if "torch" in sys.modules:
        return
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agentr_lib.build", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build (or reuse the cached, or resume the interrupted) embedded model")
    build.add_argument("--size", default="tiny", choices=sorted(SIZES))
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--envs", default=None, help="comma-separated env names (default: the size's)")
    build.add_argument("--minutes", type=float, default=None,
                       help="cap on BC training minutes: a build it stops fails and caches nothing")
    build.add_argument("--threads", type=int, default=None, help="torch threads (default 2; use 1 on a busy machine)")
    build.add_argument("--out", default=None, help="output folder (default data/models/<key>)")
    build.add_argument("--force", action="store_true", help="rebuild from nothing even when cached or half-built")
    build.add_argument("--no-eval", action="store_true", help="skip the held-out greedy evaluation")
    score = sub.add_parser("eval", help="measure greedy test scores of a built model into its model_card.json")
    score.add_argument("model_dir")
    score.add_argument("--envs", default=None)
    score.add_argument("--tasks", type=int, default=None)
    score.add_argument("--max-turns", type=int, default=None)
    score.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.command == "build":
        pin_math_threads(args.threads or resolve_spec(args.size).threads)
    from .bc import BuildCutShort, build_tiny_model
    from .score import measure_test_scores

    if args.command == "eval":
        scores = measure_test_scores(args.model_dir, args.envs.split(",") if args.envs else None, args.tasks,
                                     args.max_turns, threads=args.threads)
        print(json.dumps(scores, indent=1))
        return 0
    envs = args.envs.split(",") if args.envs else None
    extra = {"threads": args.threads} if args.threads else {}
    try:
        path = build_tiny_model(args.out, size=args.size, seed=args.seed, envs=envs, minutes=args.minutes,
                                force=args.force, evaluate=not args.no_eval, **extra)
    except BuildCutShort as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(path)
    print(json.dumps(read_json(path / "model_card.json").get("test_scores", {}), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
