"""Named configurations (alignment-handbook style recipes): `smoke`, `tiny`, `consumer-gpu`,
`paper`. Every key a profile may set is listed in DEFAULTS; a misspelled key is an error that
names the valid ones, so a typo never silently falls back to a default."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

PROFILES_DIR = Path(__file__).resolve().parent

DEFAULTS: dict[str, Any] = {
    "description": "",
    "hardware": "",
    "expected_minutes": None,
    "model": "tiny",  # tiny | micro (embedded, built offline) | a local path | a hub name
    "backend": "hf",  # policy backend for sampling and evaluation: hf | unsloth | openai
    "envs": ["textcraft"],
    "methods": ["agent_r", "direct_revision"],
    "iterations": 3,
    "single_task": False,
    "seed": 0,
    "mcts": {
        "tasks_per_env": 30,
        "simulations": 8,
        "n_gen": 4,
        "temperature": 1.0,
        "max_depth": 15,
        "c": 0.25,
        "restore": "snapshot",
        "batch_trees": 16,
        "max_new_tokens": 96,
    },
    "revision": {
        "alpha": [0.5, 0.7, 1.0],  # per iteration: the paper raises the bar each round
        "beta": 0.2,
        "verifier": "value",
        "max_pairs_per_tree": 4,
        "replay_check": True,
    },
    "sft": {
        "backend": "auto",
        "lora": False,
        "lora_r": 16,
        "lora_alpha": 32,
        "epochs": 1,
        "learning_rate": 1e-4,
        "batch_size": 8,
        "max_seq_length": 1024,
        "init_from": "previous",  # previous iteration's model, or "base" every iteration
        "general_data": None,  # a local JSONL/parquet chat file mixed in with ratio eta
        "eta": 0.2,
    },
    "eval": {
        "tasks_per_env": 50,
        "max_turns": 20,
        "temperature": 0.0,
        "max_new_tokens": 96,
        "revision_prefixes": True,
    },
}


def available_profiles() -> list[str]:
    return sorted(path.stem for path in PROFILES_DIR.glob("*.yaml"))


def _merge(defaults: dict, overrides: dict, where: str, source: str) -> dict:
    merged = copy.deepcopy(defaults)
    for key, value in overrides.items():
        if key not in defaults:
            raise KeyError(
                f"{source}: unknown key {where}{key!r}; valid keys: {', '.join(sorted(defaults))}"
            )
        if isinstance(defaults[key], dict):
            if not isinstance(value, dict):
                raise TypeError(f"{source}: {where}{key!r} must be a mapping, got {value!r}")
            merged[key] = _merge(defaults[key], value, f"{where}{key}.", source)
        else:
            merged[key] = value
    return merged


def load_profile(name_or_path: str | Path, overrides: dict | None = None) -> dict[str, Any]:
    """A profile by name (agentr_lib/profiles/<name>.yaml) or path, merged over DEFAULTS."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PROFILES_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        raise FileNotFoundError(f"no profile {str(name_or_path)!r}; available: {', '.join(available_profiles())}")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise TypeError(f"{path}: a profile must be a mapping of keys, got {type(raw).__name__}")
    profile = _merge(DEFAULTS, raw, "", str(path))
    if overrides:
        profile = _merge(profile, overrides, "", "overrides")
    profile["name"] = path.stem
    return profile


def per_env(value: Any, env: str) -> Any:
    """Profile values such as task counts may be one number or a mapping env -> number."""
    if isinstance(value, dict):
        if env not in value:
            raise KeyError(f"no value for environment {env!r} in {value!r}")
        return value[env]
    return value


def alpha_for(profile: dict, iteration: int) -> float:
    """The good-leaf threshold of an iteration (1-based); the last value repeats."""
    alphas = profile["revision"]["alpha"]
    if not isinstance(alphas, list):
        return float(alphas)
    return float(alphas[min(iteration, len(alphas)) - 1])
