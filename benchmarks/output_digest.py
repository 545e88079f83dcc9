"""Digest of what a profile's pipeline run computed, to show a refactor changed no result.

    python benchmarks/output_digest.py --profile smoke --out /tmp/smoke.before.json
    python benchmarks/output_digest.py --compare /tmp/smoke.before.json /tmp/smoke.after.json

Runs `python -m agentr_lib.pipeline --profile P` into a fresh folder (one thread per kernel, as
the tests do) and writes the sha256 of every output file: trees, datasets, episodes, metrics,
weights. Executed notebooks, step markers and run.json are left out (they hold timings, paths,
versions and the notebooks' own digests); a JSON or JSONL file is hashed as canonical JSON
without the keys that hold wall-clock times or versions, with the run folder and the checkout
written as <run> and <root> in its strings, so two runs of unchanged code in two folders give
the same digest. `--digest RUN_DIR --root CHECKOUT` digests a run already made.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
#: keys whose values are wall-clock times or versions, not results
VOLATILE_KEYS = {"seconds", "tokens_per_s", "started", "finished", "elapsed", "samples_per_s", "build_minutes",
                 "created", "timestamp", "versions", "git_commit", "machine", "wall_s", "minutes", "hostname"}
#: keys whose values are content hashes of a model folder (its weights are hashed here as files):
#: PEFT writes adapter_config.json's target_modules, a set, in the order of the process's string
#: hashing (PYTHONHASHSEED), so the same adapter gets another folder hash in another process
UNORDERED_KEYS = {"target_modules"}
FOLDER_HASH_KEYS = {"model", "model_id"}
SKIPPED_DIRS = {"steps", ".ipynb_checkpoints"}
SKIPPED_SUFFIXES = {".ipynb", ".log"}
SKIPPED_NAMES = {"run.json", ".lock"}


def _is_folder_hash(value: Any) -> bool:
    return isinstance(value, str) and all(len(part) == 16 and all(c in "0123456789abcdef" for c in part)
                                          for part in value.split("+"))


def _drop_volatile(value: Any, places: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: sorted(v) if k in UNORDERED_KEYS and isinstance(v, list) else
                "<folder hash>" if k in FOLDER_HASH_KEYS and _is_folder_hash(v) else _drop_volatile(v, places)
                for k, v in value.items() if k not in VOLATILE_KEYS}
    if isinstance(value, list):
        return [_drop_volatile(v, places) for v in value]
    if isinstance(value, str):
        for folder, name in places.items():
            value = value.replace(folder, name)
    return value


def _canonical(value: Any, places: dict[str, str]) -> bytes:
    return json.dumps(_drop_volatile(value, places), sort_keys=True, ensure_ascii=False).encode()


def file_digest(path: Path, places: dict[str, str]) -> str:
    """sha256 of the file, or of its canonical JSON without volatile keys and with `places`
    (folder -> placeholder) replaced in its strings."""
    if path.suffix == ".json":
        try:
            return hashlib.sha256(_canonical(json.loads(path.read_text()), places)).hexdigest()
        except (UnicodeDecodeError, json.JSONDecodeError):
            pass
    if path.suffix == ".jsonl":
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return hashlib.sha256(b"\n".join(_canonical(line, places) for line in lines)).hexdigest()
    if path.suffix == ".md":  # a model card names the base model's folder
        return hashlib.sha256(_drop_volatile(path.read_text(), places).encode()).hexdigest()
    return hashlib.sha256(path.read_bytes()).hexdigest()


def digest_run(run_dir: Path, root: Path = ROOT) -> dict[str, str]:
    places = {str(run_dir): "<run>", str(root): "<root>"}  # the run folder first: it may lie in the checkout
    out = {}
    for path in sorted(run_dir.rglob("*")):
        relative = path.relative_to(run_dir)
        if (not path.is_file() or SKIPPED_DIRS & set(relative.parts) or path.suffix in SKIPPED_SUFFIXES
                or path.name in SKIPPED_NAMES):
            continue
        out[str(relative)] = file_digest(path, places)
    return out


def run_profile(profile: str, root: Path) -> Path:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false",
               HF_HUB_OFFLINE="1")
    subprocess.run([sys.executable, "-m", "agentr_lib.pipeline", "--profile", profile, "--run-name", profile,
                    "--runs-root", str(root / "runs"), "--figures-dir", str(root / "figures")],
                   cwd=ROOT, env=env, check=True)
    return root / "runs" / profile


def compare(before: Path, after: Path) -> int:
    a, b = json.loads(before.read_text()), json.loads(after.read_text())
    differ = sorted(k for k in set(a) & set(b) if a[k] != b[k])
    only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    print(f"{len(a)} files before, {len(b)} after; {len(differ)} differ")
    for label, names in (("differ", differ), ("only before", only_a), ("only after", only_b)):
        for name in names:
            print(f"  {label}: {name}")
    return int(bool(differ or only_a or only_b))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--keep", type=Path, help="run into this folder (default: a temporary one)")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("BEFORE", "AFTER"))
    parser.add_argument("--digest", type=Path, metavar="RUN_DIR", help="digest this finished run instead")
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout that ran it (with --digest)")
    args = parser.parse_args()
    if args.compare:
        return compare(*args.compare)
    if args.digest:
        args.out.write_text(json.dumps(digest_run(args.digest, args.root), indent=1, sort_keys=True) + "\n")
        return 0
    root = args.keep or Path(tempfile.mkdtemp(prefix=f"digest-{args.profile}-"))
    digest = digest_run(run_profile(args.profile, root))
    args.out.write_text(json.dumps(digest, indent=1, sort_keys=True) + "\n")
    print(f"{len(digest)} files digested into {args.out} (run kept in {root})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
