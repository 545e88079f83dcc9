"""One run's settings as one object: a profile (a YAML file of the keys it changes) plus the
command line's `--set KEY=VALUE` overrides, merged over every key's default and checked once,
by the same checks a profile file gets (profiles.validate_profile).

    config = load_run_config("tiny", parse_sets(["mcts.simulations=4", "eval.split=val"]))
    config.stage(MCTSConfig, seed=1)   # the search's config: every mcts.* key of this run

The pipeline plans from it (a notebook parameter is one of its values), run.json records it
with the overrides that made it, and a script builds a stage's config from it instead of
mapping profile keys to a config's fields by hand. A key is spelled one way everywhere: the
YAML's `section.name`, which `--set` takes as is.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, TypeVar

from .profiles import (SETTINGS, ProfileError, alpha_for, merged_profile, parse_set, profile_path, validate_profile,
                       value_of)

Config = TypeVar("Config")


@dataclass(frozen=True)
class RunConfig:
    """A validated run: `settings` holds every key nested by section (what load_profile
    returns, "name" included), `overrides` the dotted keys the command line changed, `notes`
    what loading changed on its own and says (an alpha list cut to fewer iterations), `source`
    the profile file it was loaded from (None: a profile handed over already loaded)."""

    settings: dict[str, Any]
    overrides: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    source: Path | None = None

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> "RunConfig":
        """A profile already loaded and validated (profiles.load_profile), with no overrides."""
        return cls(settings)

    @property
    def name(self) -> str:
        return self.settings["name"]

    def value(self, key: str) -> Any:
        """The value of a dotted key (`mcts.simulations`)."""
        return value_of(self.settings, key)

    def alpha(self, iteration: int) -> float:
        """The good-leaf threshold of an iteration (1-based)."""
        return alpha_for(self.settings, iteration)

    def stage(self, config: type[Config], **run_values: Any) -> Config:
        """The stage config `config` (MCTSConfig, RevisionSettings, SFTConfig, EvalConfig) with
        every field a profile key sets taken from this run, and `run_values` for the fields the
        run computes (an iteration's seed and alpha, the method, progress bars)."""
        owned = {s.field_name: copy.deepcopy(self.value(s.key)) for s in SETTINGS if s.owner is config}
        if not owned:
            owners = sorted({s.owner.__name__ for s in SETTINGS if s.owner is not None})
            raise TypeError(f"{config.__name__} owns no profile key; the stage configs are {', '.join(owners)}")
        clash = sorted(set(owned) & set(run_values))
        if clash:  # the run's setting would be silently replaced
            raise TypeError(f"{config.__name__}: {', '.join(clash)} come from the run's settings; change them with "
                            f"--set (keys {', '.join(s.key for s in SETTINGS if s.field_name in clash and s.owner is config)})")
        return config(**owned, **run_values)


def parse_sets(items: list[str]) -> dict[str, Any]:
    """`--set KEY=VALUE` arguments as {dotted key: value parsed as YAML}, in order; a key given
    twice is an error (which of two values would win is not something to guess)."""
    sets: dict[str, Any] = {}
    for item in items:
        key, value = parse_set(item)
        if key in sets and sets[key] != value:
            raise ProfileError(f"--set {key} is given twice ({sets[key]!r} and {value!r}); give it once")
        sets[key] = value
    return sets


def load_run_config(profile: str | Path, sets: Mapping[str, Any] | None = None) -> RunConfig:
    """A profile by name or path with `sets` ({dotted key: value}) applied, validated once.
    An unknown key is an error naming it and the nearest valid keys; a wrong value names the
    file, the key, the value and what is expected. When `iterations` is set and
    `revision.alpha` is not, a longer alpha list is cut to one per iteration, said in `notes`."""
    path = profile_path(profile)
    sets = dict(sets or {})
    settings = merged_profile(path, sets=sets)
    notes: list[str] = []
    alpha, iterations = settings["revision"]["alpha"], settings["iterations"]
    if ("iterations" in sets and "revision.alpha" not in sets and isinstance(alpha, list)
            and isinstance(iterations, int) and len(alpha) > iterations >= 1):
        settings["revision"]["alpha"] = alpha[:iterations]
        notes.append(f"iterations={iterations}: revision.alpha cut to its first values {alpha[:iterations]} "
                     "(one per iteration)")
    given = ", ".join(f"{key}={value!r}" for key, value in sets.items())
    validate_profile(settings, f"{path}" + (f" with --set {given}" if sets else ""))
    settings["name"] = path.stem
    return RunConfig(settings, sets, tuple(notes), path)


def recorded_run_config(profile: str | Path, run_dir: str | Path) -> RunConfig:
    """The run the pipeline started in `run_dir`: `profile` with the `--set` overrides its
    run.json recorded, so a worker process (shard, train_cli) plans exactly the steps, with
    exactly the parameters, that the pipeline did. No run.json yet: the profile alone."""
    from .io import read_json
    from .layout import RunLayout

    manifest_path = RunLayout(Path(run_dir)).manifest
    overrides = read_json(manifest_path).get("overrides", {}) if manifest_path.exists() else {}
    return load_run_config(profile, overrides)
