"""Environment registry: `make_env(name, **kw)` is the only constructor callers need."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .base import Env, ExpertStep

# name -> "module:Class"; imported lazily so that TextCraft users never start a JVM.
REGISTRY: dict[str, str] = {
    "textcraft": "agentr_lib.envs.textcraft:TextCraftEnv",
    "sciworld": "agentr_lib.envs.sciworld:ScienceWorldEnv",
    "webshop": "agentr_lib.envs.webshop:WebShopEnv",
}
ENV_NAMES: tuple[str, ...] = tuple(REGISTRY)


def env_class(name: str) -> type:
    """The class registered under `name` (its module imported, nothing started)."""
    if name not in REGISTRY:
        raise ValueError(f"unknown environment {name!r}; expected one of {sorted(REGISTRY)}")
    module_name, class_name = REGISTRY[name].split(":")
    return getattr(import_module(module_name), class_name)


def make_env(name: str, **kwargs) -> Env:
    """Build an environment by name ("textcraft", "sciworld", "webshop")."""
    return env_class(name)(**kwargs)


def per_env(value: Any, env: str) -> Any:
    """Settings such as task counts may be one value or a mapping env -> value."""
    if isinstance(value, dict):
        if env not in value:
            raise KeyError(f"no value for environment {env!r} in {value!r}")
        return value[env]
    return value


__all__ = ["Env", "ExpertStep", "ENV_NAMES", "REGISTRY", "env_class", "make_env", "per_env"]
