"""Deterministic train/test task lists per environment, shipped under data/splits/."""

from __future__ import annotations

import random
from pathlib import Path

from .envs import ENV_NAMES, make_env
from .io import atomic_write_json, read_json

SPLITS_DIR = Path(__file__).resolve().parents[1] / "data" / "splits"
#: environments with a validation split carved from their training tasks (settings are chosen
#: on it; the test split is run once) and a `search` subset of their training tasks (the goals
#: the `tiny-disjoint` model, the CPU default's, is not warm-started on)
ENVS_WITH_CARVED_SPLITS = ("textcraft",)


def split_path(env_name: str, root: str | Path = SPLITS_DIR) -> Path:
    return Path(root) / f"{env_name}.json"


def write_splits(env_names: tuple[str, ...] = ENV_NAMES, root: str | Path = SPLITS_DIR) -> dict[str, Path]:
    """Compute each environment's splits from its own deterministic rule and write them."""
    written = {}
    for name in env_names:
        env = make_env(name)
        try:
            splits = {"env": name, "train": env.task_ids("train"), "test": env.task_ids("test")}
            if name in ENVS_WITH_CARVED_SPLITS:
                splits["val"] = env.task_ids("val")
                splits["search"] = env.task_ids("search")
        finally:
            env.close()
        written[name] = atomic_write_json(split_path(name, root), splits, indent=None)
    return written


def load_split(env_name: str, split: str, root: str | Path = SPLITS_DIR) -> list[int]:
    """Task ids of one split, from the shipped file."""
    path = split_path(env_name, root)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no split file; run agentr_lib.splits.write_splits(({env_name!r},))")
    data = read_json(path)
    if split not in data:
        raise KeyError(f"{path}: no split {split!r}; expected one of {sorted(k for k in data if k != 'env')}")
    return [int(task_id) for task_id in data[split]]


def select_tasks(env_name: str, split: str, n: int | None, seed: int = 0, root: str | Path = SPLITS_DIR) -> list[int]:
    """A seeded sample of `n` task ids of a split (all of them when n is None/0 or too large),
    returned in split order so that logs read naturally."""
    ids = load_split(env_name, split, root)
    if not n or n >= len(ids):
        return ids
    chosen = set(random.Random(f"{seed}:{env_name}:{split}").sample(range(len(ids)), n))
    return [task_id for index, task_id in enumerate(ids) if index in chosen]
