"""Named configurations (alignment-handbook style recipes): `smoke`, `tiny`, `consumer-gpu`,
`paper`. Every key a profile may set is listed in DEFAULTS; a misspelled key is an error that
names the valid ones, so a typo never silently falls back to a default."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable

import yaml

PROFILES_DIR = Path(__file__).resolve().parent

#: The methods a run can train (Figure 3's lines).
METHODS: tuple[str, ...] = ("agent_r", "direct_revision", "good_only")

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
        "split": "test",  # test | val (goals carved from train, for choosing settings; TextCraft)
        "tasks_per_env": 50,
        "max_turns": 20,
        "temperature": 0.0,
        "max_new_tokens": 96,
        "revision_prefixes": True,
    },
}


class ProfileError(ValueError):
    """A profile value of the wrong type or range; the message names the file, key and value."""


# ---- what each key accepts (checked at load, before anything runs) ---------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _int_at_least(low: int) -> Callable[[Any], str | None]:
    return lambda v: None if _is_int(v) and v >= low else f"an integer >= {low}"


def _number(low: float, high: float | None = None, open_low: bool = False) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        ok = _is_number(v) and (v > low if open_low else v >= low) and (high is None or v <= high)
        bound = f"> {low}" if open_low else f">= {low}"
        return None if ok else f"a number {bound}" + (f" and <= {high}" if high is not None else "")
    return check


def _one_of(*choices: str) -> Callable[[Any], str | None]:
    return lambda v: None if v in choices else f"one of {list(choices)}"


def _boolean(v: Any) -> str | None:
    return None if isinstance(v, bool) else "true or false"


def _text(v: Any) -> str | None:
    return None if isinstance(v, str) else "a string"


def _optional(check: Callable[[Any], str | None]) -> Callable[[Any], str | None]:
    return lambda v: None if v is None else (None if check(v) is None else f"null or {check(v)}")


def _per_env(check: Callable[[Any], str | None]) -> Callable[[Any], str | None]:
    """One value for every env, or a mapping env -> value (checked against `envs` later)."""
    def per_env_check(v: Any) -> str | None:
        if isinstance(v, dict):
            bad = {k: x for k, x in v.items() if check(x) is not None}
            return f"a mapping env -> {check(next(iter(bad.values())))}" if bad else None
        return None if check(v) is None else f"{check(v)}, or a mapping env -> value"
    return per_env_check


def _backend(v: Any) -> str | None:
    from ..llm import BACKENDS

    return None if v in BACKENDS else f"one of {list(BACKENDS)}"


CHECKS: dict[str, Callable[[Any], str | None]] = {
    "description": _text, "hardware": _text, "expected_minutes": _optional(_number(0, open_low=True)),
    "model": lambda v: None if isinstance(v, str) and v.strip() else "a model name or path",
    "backend": _backend, "iterations": _int_at_least(1), "single_task": _boolean, "seed": _int_at_least(0),
    "mcts.tasks_per_env": _per_env(_int_at_least(1)), "mcts.simulations": _int_at_least(1),
    "mcts.n_gen": _int_at_least(1), "mcts.temperature": _number(0), "mcts.max_depth": _int_at_least(1),
    "mcts.c": _number(0), "mcts.restore": _one_of("snapshot", "replay"), "mcts.batch_trees": _int_at_least(1),
    "mcts.max_new_tokens": _int_at_least(1),
    "revision.beta": _number(0), "revision.verifier": _one_of("value", "model"),
    "revision.max_pairs_per_tree": _optional(_int_at_least(1)), "revision.replay_check": _boolean,
    "sft.backend": _one_of("auto", "hf", "unsloth"), "sft.lora": _boolean, "sft.lora_r": _int_at_least(1),
    "sft.lora_alpha": _number(0, open_low=True), "sft.epochs": _number(0, open_low=True),
    "sft.learning_rate": _number(0, open_low=True), "sft.batch_size": _int_at_least(1),
    "sft.max_seq_length": _int_at_least(64), "sft.init_from": _one_of("previous", "base"),
    "sft.general_data": _optional(_text), "sft.eta": _number(0, 0.99),
    "eval.split": _one_of("test", "val"), "eval.tasks_per_env": _per_env(_int_at_least(0)), "eval.max_turns": _per_env(_int_at_least(1)),
    "eval.temperature": _number(0), "eval.max_new_tokens": _int_at_least(1), "eval.revision_prefixes": _boolean,
}


def validate_profile(profile: dict[str, Any], source: str) -> None:
    """Every value's type and range, list lengths, env and method names, the model and data
    paths: one ProfileError naming `source`, the key, the value and what is expected."""
    from ..envs import ENV_NAMES

    def fail(key: str, value: Any, expected: str) -> None:
        raise ProfileError(f"{source}: {key} = {value!r}: expected {expected}")

    def value_of(key: str) -> Any:
        section, _, name = key.partition(".")
        return profile[section][name] if name else profile[section]

    for key, check in CHECKS.items():
        problem = check(value_of(key))
        if problem is not None:
            fail(key, value_of(key), problem)
    envs, methods = profile["envs"], profile["methods"]
    if not isinstance(envs, list) or not envs or any(e not in ENV_NAMES for e in envs) or len(set(envs)) < len(envs):
        fail("envs", envs, f"a non-empty list of distinct names from {list(ENV_NAMES)}")
    if not isinstance(methods, list) or not methods or any(m not in METHODS for m in methods) or len(set(methods)) < len(methods):
        fail("methods", methods, f"a non-empty list of distinct names from {list(METHODS)}")
    for key in ("mcts.tasks_per_env", "eval.tasks_per_env", "eval.max_turns"):
        value = value_of(key)
        if isinstance(value, dict) and sorted(set(envs) - set(value)):
            fail(key, value, f"a value for every env in envs {envs} (missing {sorted(set(envs) - set(value))})")
    from ..splits import ENVS_WITH_VAL

    if profile["eval"]["split"] == "val" and sorted(set(envs) - set(ENVS_WITH_VAL)):
        fail("eval.split", "val", f"'test' for envs {sorted(set(envs) - set(ENVS_WITH_VAL))} "
             f"(only {list(ENVS_WITH_VAL)} have a validation split)")
    alpha, iterations = profile["revision"]["alpha"], profile["iterations"]
    if isinstance(alpha, list):
        if len(alpha) != iterations or not all(_is_number(a) and a <= 1 for a in alpha):
            fail("revision.alpha", alpha, f"one number <= 1, or a list of {iterations} numbers <= 1 "
                 f"(one per iteration; iterations = {iterations})")
    elif not (_is_number(alpha) and alpha <= 1):
        fail("revision.alpha", alpha, "a number <= 1 or a list with one per iteration")
    general = profile["sft"]["general_data"]
    if general and not Path(general).expanduser().exists():
        fail("sft.general_data", general, "an existing local JSONL/parquet chat file")
    model = profile["model"]
    looks_local = model.startswith((".", "/", "~")) or model.count("/") > 1  # a hub name is "org/name"
    if model not in ("tiny", "micro") and looks_local and not Path(model).expanduser().exists():
        fail("model", model, "tiny, micro, a hub name (org/name) or an existing local model folder")


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
    validate_profile(profile, f"{path}" + (f" with overrides {overrides}" if overrides else ""))
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
    """The good-leaf threshold of an iteration (1-based; the list has one per iteration)."""
    alphas = profile["revision"]["alpha"]
    return float(alphas[iteration - 1] if isinstance(alphas, list) else alphas)
