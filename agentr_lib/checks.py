"""What a setting accepts: each check returns None when a value is fine, else what it expects,
in words (a profile's validation and a notebook's parameter check both say it). Imports
nothing of the project, so that a stage's config (MCTSConfig, SFTConfig, ...) can own its
fields' checks, and `setting` attaches a meaning and a check to a config field."""

from __future__ import annotations

from dataclasses import field
from typing import Any, Callable

Check = Callable[[Any], "str | None"]


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def int_at_least(low: int) -> Check:
    return lambda v: None if is_int(v) and v >= low else f"an integer >= {low}"


def number(low: float, high: float | None = None, open_low: bool = False) -> Check:
    def check(v: Any) -> str | None:
        ok = is_number(v) and (v > low if open_low else v >= low) and (high is None or v <= high)
        bound = f"> {low}" if open_low else f">= {low}"
        return None if ok else f"a number {bound}" + (f" and <= {high}" if high is not None else "")
    return check


def one_of(*choices: str) -> Check:
    return lambda v: None if v in choices else f"one of {list(choices)}"


def boolean(v: Any) -> str | None:
    return None if isinstance(v, bool) else "true or false"


def text(v: Any) -> str | None:
    return None if isinstance(v, str) else "a string"


def optional(check: Check) -> Check:
    return lambda v: None if v is None else (None if check(v) is None else f"null or {check(v)}")


def per_env_values(check: Check) -> Check:
    """One value for every env, or a mapping env -> value (checked against `envs` later)."""
    def per_env_check(v: Any) -> str | None:
        if isinstance(v, dict):
            bad = {k: x for k, x in v.items() if check(x) is not None}
            return f"a mapping env -> {check(next(iter(bad.values())))}" if bad else None
        return None if check(v) is None else f"{check(v)}, or a mapping env -> value"
    return per_env_check


def setting(default: Any, check: Check, meaning: str, notebooks: str = "") -> Any:
    """A config field that is also a profile key: its default, the `check` of what it accepts,
    its one-line `meaning` and the notebooks (by number, "01 04") that take it as a parameter.
    agentr_lib.profiles builds SETTINGS, the validation and docs/settings.md from them."""
    return field(default=default, metadata={"check": check, "meaning": meaning, "notebooks": notebooks})
