"""Named configurations (alignment-handbook style recipes): `smoke`, `tiny`, `gpu-rehearsal`,
`consumer-gpu`, `paper`, and the schema behind them.

SETTINGS lists every key a profile may set: its default, what it accepts (checked when a
profile loads, before anything runs) and a one-line meaning, and the notebooks that take it
as a parameter (the key's last part in upper case: `mcts.max_depth` -> `MAX_DEPTH` in 01).
A stage's keys are its config's fields (MCTSConfig, RevisionSettings, SFTConfig, EvalConfig
own their defaults, checks and meanings, made by checks.setting): this module imports the
algorithms, never the other way round. DEFAULTS, the validation, the pipeline's notebook
parameters and docs/settings.md all derive from SETTINGS (`python -m agentr_lib.profiles`
writes the document; a test checks the notebooks' parameters cells against the `tiny`
profile). A misspelled key is an error that names the valid ones, so a typo never silently
falls back to a default.
"""

from __future__ import annotations

import copy
import difflib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable

import yaml

from ..checks import (Check, boolean, int_at_least, is_number, number, one_of, optional, per_env_values,
                      text)
from ..envs import per_env  # noqa: F401 (the notebooks and shard read it here, with the profile)
from ..evaluate import EvalConfig
from ..mcts import MCTSConfig
from ..models import EMBEDDED_MODELS, PRETRAINED_MODELS
from ..revision import METHODS, RevisionSettings
from ..train import SFTConfig

PROFILES_DIR = Path(__file__).resolve().parent

#: The keys in which the `gpu-rehearsal` profile may differ from `consumer-gpu`, and why; every
#: other key is the same (tests/test_profiles.py checks it), so the rehearsal runs the GPU
#: profile's path: its backends, LoRA settings, verifier, environments and turn limits.
REHEARSAL_CHANGES: dict[str, str] = {
    "description": "the profile's own", "hardware": "the profile's own", "expected_minutes": "the profile's own",
    "model": "micro-fluent (micro's 23k parameters, built in ~2 min, taught to write the actions and "
             "judgment lines the path parses) instead of an 8B model",
    "sft.backend": "auto (hf on a CPU): Unsloth needs a CUDA GPU",
    "single_task": "the paper profile's single-task models (Table 6), rehearsed too",
    "iterations": "two: enough for an iteration to sample with the previous one's adapter",
    "methods": "Agent-R alone: Direct-Revision judges no step and differs only in its splice (the smoke profile runs it)",
    "revision.alpha": "-1: the micro model (almost) never succeeds, so every leaf counts as good (one per iteration)",
    "revision.beta": "0: with every reward 0 a bad leaf must tie its good one",
    "mcts.tasks_per_env": "size", "mcts.simulations": "size", "mcts.n_gen": "size", "mcts.max_depth": "size",
    "mcts.batch_trees": "size", "mcts.max_new_tokens": "size", "revision.max_pairs_per_tree": "size",
    "sft.epochs": "size", "eval.tasks_per_env": "size", "eval.max_new_tokens": "size",
    "sft.max_seq_length": "the micro model's context (2048 positions)",
}


class ProfileError(ValueError):
    """A profile value of the wrong type or range; the message names the file, key and value."""


class UnknownKey(ProfileError, KeyError):
    """A key no setting has (a typo in a profile file or a `--set`); the message names it and
    the nearest valid keys. A KeyError too, as a missing key is; printed as its message (a
    KeyError alone would print it quoted)."""

    __str__ = ValueError.__str__


def _names(choices: Callable[[], tuple[str, ...]]) -> Check:
    """A non-empty list of distinct names from `choices()`."""
    def check(v: Any) -> str | None:
        allowed = choices()
        ok = isinstance(v, list) and v and all(x in allowed for x in v) and len(set(v)) == len(v)
        return None if ok else f"a non-empty list of distinct names from {list(allowed)}"
    return check


def _env_names() -> tuple[str, ...]:
    from ..envs import ENV_NAMES

    return ENV_NAMES


def _backend(v: Any) -> str | None:
    from ..llm import BACKENDS

    return None if v in BACKENDS else f"one of {list(BACKENDS)}"


def _endpoints(v: Any) -> str | None:
    """A list of distinct http(s) URLs (the served backend's vLLM servers), possibly empty."""
    ok = isinstance(v, list) and all(isinstance(x, str) and x.startswith(("http://", "https://")) for x in v)
    return None if ok and len(set(v)) == len(v) else "a list of distinct http(s):// URLs (empty: none)"


def _alpha(v: Any) -> str | None:
    """Its length is checked against `iterations` in validate_profile."""
    ok = (is_number(v) and v <= 1) or (isinstance(v, list) and all(is_number(a) and a <= 1 for a in v))
    return None if ok else "a number <= 1 or a list with one per iteration"


def _model(v: Any) -> str | None:
    """One of three kinds, told apart by spelling: a name layout declares (embedded or
    pretrained), an existing local folder, or a hub name `org/name` (one slash, not a path:
    it cannot be checked offline). Anything else -- a bare name layout does not know, such as
    a typo of one it does, or a path that does not exist -- would fail only at step 2."""
    expected = f"{', '.join(EMBEDDED_MODELS + PRETRAINED_MODELS)}, a hub name (org/name) or an existing local model folder"
    if not (isinstance(v, str) and v.strip()):
        return expected
    if v in EMBEDDED_MODELS + PRETRAINED_MODELS or Path(v).expanduser().exists():
        return None
    hub_name = v.count("/") == 1 and not v.startswith((".", "/", "~")) and all(v.split("/"))
    return None if hub_name else expected


def _chat_file(v: Any) -> str | None:
    if v is None:
        return None
    if not isinstance(v, str):
        return "null or a string"
    return None if not v or Path(v).expanduser().exists() else "an existing local JSONL/parquet chat file"


# ---- the schema ------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """One profile key: `key` (dotted: section.name), its `default`, the `check` of what it
    accepts, its one-line `meaning`, and the notebooks (by number, e.g. "01 04") that take it
    as the parameter `param` (the key's last part in upper case). A key a stage config owns
    (`owner`, its field `field_name`) reads its default from the config's field each time, so
    a changed default in the config is the profiles' default too; `value` is the default of
    a key no stage owns."""

    key: str
    value: Any
    check: Check
    meaning: str
    notebooks: str = ""
    owner: type | None = None
    field_name: str = ""

    @property
    def default(self) -> Any:
        if self.owner is None:
            return self.value
        return next(f.default for f in fields(self.owner) if f.name == self.field_name)

    @property
    def param(self) -> str:
        return self.key.rpartition(".")[2].upper()

    def accepts(self) -> str:
        """What the check expects, in words (what it says about a value nothing accepts)."""
        return self.check(_Unacceptable()) or ""


def _stage(section: str, config: type) -> tuple[Setting, ...]:
    """The keys a stage config owns: its fields made by checks.setting, in their order (the key
    is `section.field`: one spelling for the YAML, the field and the notebook parameter)."""
    return tuple(Setting(f"{section}.{f.name}", None, f.metadata["check"],
                         f.metadata["meaning"], f.metadata["notebooks"], owner=config, field_name=f.name)
                 for f in fields(config) if "meaning" in f.metadata)


class _Unacceptable:
    """A value no check accepts: what a check says about it is what it expects."""


SETTINGS: tuple[Setting, ...] = (
    Setting("description", "", text, "one line saying what the profile is for"),
    Setting("hardware", "", text, "the machine it is meant for"),
    Setting("expected_minutes", None, optional(number(0, open_low=True)),
            "the expected wall time of the profile's whole pipeline (the progress estimate starts from it; a run of part "
            "of it, --iterations 1 of 3 or --only, is given its share)"),
    Setting("model", "tiny", _model, "the base model: an embedded one (" + ", ".join(EMBEDDED_MODELS) + "; built offline), a pretrained one ("
            + ", ".join(PRETRAINED_MODELS) + "; converted offline from a PyPI package), a model folder or a hub name",
            "00"),
    Setting("backend", "hf", _backend, "policy backend for search, the model verifier and evaluation", "01 02 04"),
    Setting("llm.endpoints", [], _endpoints,
            "the running vLLM servers' URLs the served backend samples through (backend: served; empty for the "
            "in-process backends); docs/scale-out.md", "01 02 04"),
    Setting("envs", ["textcraft"], _names(_env_names), "the environments a run searches, trains and evaluates on"),
    Setting("methods", ["agent_r", "direct_revision"], _names(lambda: METHODS),
            "the training methods, one model each (Figure 3's lines)"),
    Setting("iterations", 3, int_at_least(1), "self-training iterations (search, revision, SFT, evaluation)"),
    Setting("single_task", False, boolean, "also train one model per environment (Table 6, Figure 6)"),
    Setting("seed", 0, int_at_least(0), "the run's seed (iteration k's search, revision and SFT use seed + k)"),
    Setting("mcts.tasks_per_env", 30, per_env_values(int_at_least(1)),
            "training tasks per environment, a seeded sample (or a mapping env -> n)", "01"),
    Setting("mcts.task_split", "train", one_of("train", "search"),
            "the goals searched: train (every training goal; the tiny model was warm-started on all of them) or "
            "search (the third of them the tiny-disjoint model, the CPU default's, was never shown; TextCraft only)", "01"),
    *_stage("mcts", MCTSConfig),
    Setting("revision.alpha", [0.5, 0.7, 1.0], _alpha,
            "good leaf: score above alpha (1.0 means reward 1); one per iteration, the paper raises it each round"),
    *_stage("revision", RevisionSettings),
    Setting("revision.replay_check", True, boolean,
            "replay each splice in the environment and record whether it still succeeds", "02"),
    Setting("sft.backend", "auto", one_of("auto", "hf", "unsloth"),
            "training backend: auto (unsloth on a CUDA GPU with the package, else hf), hf or unsloth", "03"),
    *_stage("sft", SFTConfig),
    Setting("sft.general_data", "", _chat_file,
            "a local JSONL/parquet file of general chat data to mix in (empty: none; none ships)", "03"),
    Setting("sft.eta", 0.2, number(0, 0.99), "share of general data in the mix when general_data is set (paper: 0.2)",
            "03"),
    *_stage("eval", EvalConfig),
)

SCHEMA: dict[str, Setting] = {setting.key: setting for setting in SETTINGS}

#: What the notebook parameters that are values of the run (not settings: the pipeline computes
#: them from the profile and the layout) accept, checked by notebook_params.check_parameters
#: like the settings a notebook takes. Paths are not required to exist: a notebook run by hand
#: creates its output folders, and a missing input folder is named by the code that reads it.
RUN_VALUES: dict[str, Check] = {
    "ITERATION": int_at_least(1), "SEED": int_at_least(0), "EXPERT_TASKS": int_at_least(1),
    "MODEL": _model, "INIT_MODEL": _model, "ENVS": _names(_env_names), "METHOD": one_of(*METHODS),
    "ALPHA": lambda v: None if is_number(v) and v <= 1 else "a number <= 1",
    "LABEL": text, "MAKE_PREFIXES": boolean, "PREFIXES_DIR": text,
    **{name: (lambda v: None if isinstance(v, str) and v else "a folder path, as a string")
       for name in ("OUT_DIR", "TREES_DIR", "DATASET_DIR", "RUN_DIR", "FIGURES_DIR")},
}


def _nested_defaults() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for setting in SETTINGS:
        section, _, name = setting.key.rpartition(".")
        (out.setdefault(section, {}) if section else out)[name] = copy.deepcopy(setting.default)
    return out


#: Every key with its default, nested by section (what a profile file is merged over:
#: load_profile rebuilds it from SETTINGS each time).
DEFAULTS: dict[str, Any] = _nested_defaults()


def value_of(profile: dict[str, Any], key: str) -> Any:
    """A profile's value of a dotted key."""
    section, _, name = key.rpartition(".")
    return profile[section][name] if section else profile[name]


def notebook_settings(profile: dict[str, Any], notebook: str) -> dict[str, Any]:
    """The parameters a notebook (e.g. "01_mcts_collection") takes from the profile as is:
    {PARAM: value} for every setting that names the notebook's number."""
    number = notebook.split("_", 1)[0]
    return {s.param: copy.deepcopy(value_of(profile, s.key)) for s in SETTINGS if number in s.notebooks.split()}


def settings_markdown() -> str:
    """docs/settings.md: every key with its default, what it accepts, its meaning and the
    notebook parameter it becomes."""
    lines = ["# Settings", "",
             "Every key a profile (`agentr_lib/profiles/*.yaml`) may set, generated from the stage configs'",
             "fields (MCTSConfig, RevisionSettings, SFTConfig, EvalConfig) and `agentr_lib.profiles.SETTINGS`",
             "by `python -m agentr_lib.profiles` (a test checks it is current). A notebook parameter takes",
             "the value as is; the pipeline adds the values of the run (paths, iteration, per-iteration",
             "seed and alpha). On the command line, `--set KEY=VALUE` changes a key for one run, spelled",
             "as here, the value read as YAML: `python -m agentr_lib.pipeline --profile tiny --set",
             "mcts.simulations=4 --set methods=[agent_r]` (agentr_lib/run_config.py).", "",
             "| key | default | accepts | meaning | notebook parameter |", "|---|---|---|---|---|"]
    for s in SETTINGS:
        where = ", ".join(f"{number}: `{s.param}`" for number in s.notebooks.split()) or ""
        default_text = yaml.safe_dump(s.default, default_flow_style=True).strip().removesuffix("...").strip()
        lines.append(f"| `{s.key}` | `{default_text}` | {s.accepts()} | {s.meaning} | {where} |")
    return "\n".join(lines) + "\n"


def validate_profile(profile: dict[str, Any], source: str) -> None:
    """Every value's type and range (each setting's check), then what depends on several keys
    (a value for every env, one alpha per iteration, the validation split's envs): one
    ProfileError naming `source`, the key, the value and what is expected."""

    def fail(key: str, value: Any, expected: str) -> None:
        raise ProfileError(f"{source}: {key} = {value!r}: expected {expected}")

    for setting in SETTINGS:
        problem = setting.check(value_of(profile, setting.key))
        if problem is not None:
            fail(setting.key, value_of(profile, setting.key), problem)
    envs = profile["envs"]
    for key in ("mcts.tasks_per_env", "eval.tasks_per_env", "eval.max_turns"):
        value = value_of(profile, key)
        if isinstance(value, dict) and sorted(set(envs) - set(value)):
            fail(key, value, f"a value for every env in envs {envs} (missing {sorted(set(envs) - set(value))})")
    from ..splits import ENVS_WITH_CARVED_SPLITS

    without = sorted(set(envs) - set(ENVS_WITH_CARVED_SPLITS))
    for key, carved, plain, what in (("eval.split", "val", "test", "a validation split"),
                                     ("mcts.task_split", "search", "train", "a search split")):
        if value_of(profile, key) == carved and without:
            fail(key, carved, f"{plain!r} for envs {without} (only {list(ENVS_WITH_CARVED_SPLITS)} have {what})")
    alpha, iterations = profile["revision"]["alpha"], profile["iterations"]
    if isinstance(alpha, list) and len(alpha) != iterations:
        fail("revision.alpha", alpha, f"one number <= 1, or a list of {iterations} numbers <= 1 "
             f"(one per iteration; iterations = {iterations})")


def available_profiles() -> list[str]:
    return sorted(path.stem for path in PROFILES_DIR.glob("*.yaml"))


def nearest_keys(key: str, valid: list[str]) -> list[str]:
    """The valid keys most like `key` (a typo's likely intent), at most three."""
    return difflib.get_close_matches(key, valid, n=3, cutoff=0.5)


def _merge(defaults: dict, overrides: dict, where: str, source: str) -> dict:
    merged = copy.deepcopy(defaults)
    for key, value in overrides.items():
        if key not in defaults:
            near = nearest_keys(key, list(defaults))
            raise UnknownKey(f"{source}: unknown key {where}{key!r}"
                             + (f" (did you mean {', '.join(repr(k) for k in near)}?)" if near else "")
                             + f"; valid keys: {', '.join(sorted(defaults))}")
        if isinstance(defaults[key], dict):
            if not isinstance(value, dict):
                raise TypeError(f"{source}: {where}{key!r} must be a mapping, got {value!r}")
            merged[key] = _merge(defaults[key], value, f"{where}{key}.", source)
        else:
            merged[key] = value
    return merged


def apply_sets(profile: dict[str, Any], sets: dict[str, Any], source: str) -> dict[str, Any]:
    """The profile with each dotted key of `sets` (`mcts.simulations`, spelled as the YAML
    spells it) replaced by its value; a key no setting has is an UnknownKey naming it and the
    nearest valid keys. Values are checked later, with the whole profile (validate_profile)."""
    out = copy.deepcopy(profile)
    for key, value in sets.items():
        if key not in SCHEMA:
            near = nearest_keys(key, list(SCHEMA)) or [k for k in SCHEMA if k.startswith(key.partition(".")[0] + ".")]
            raise UnknownKey(f"{source}: --set {key}: unknown key; nearest valid keys: {', '.join(near[:6])} "
                             "(docs/settings.md lists every key)")
        section, _, name = key.rpartition(".")
        (out[section] if section else out)[name] = copy.deepcopy(value)
    return out


def parse_set(text: str) -> tuple[str, Any]:
    """`KEY=VALUE` from the command line: the dotted key and the value parsed as YAML (`4` is
    an integer, `[agent_r]` a list, `null` None, `val` a string)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ProfileError(f"--set {text!r}: expected KEY=VALUE, e.g. --set mcts.simulations=4")
    try:
        return key.strip(), yaml.safe_load(raw)
    except yaml.YAMLError as err:
        raise ProfileError(f"--set {text}: the value {raw!r} is not valid YAML ({err.problem})") from None


def _read_yaml(path: Path) -> Any:
    """A profile file's YAML; a syntax error is a ProfileError naming the file, the line and
    column of the problem and where the construct it broke began (yaml's own message names
    only "<unicode string>")."""
    try:
        return yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        if mark is None:
            raise ProfileError(f"{path}: not valid YAML ({err}); fix the file's syntax") from None
        context = getattr(err, "context_mark", None)
        began = (f" ({err.context} at line {context.line + 1}, column {context.column + 1})"
                 if context is not None and err.context else "")
        raise ProfileError(f"{path}, line {mark.line + 1}, column {mark.column + 1}: not valid YAML: "
                           f"{err.problem}{began}; fix the file's syntax") from None


def profile_path(name_or_path: str | Path) -> Path:
    """A profile's file: agentr_lib/profiles/<name>.yaml for a bare name, else the path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PROFILES_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        raise FileNotFoundError(f"no profile {str(name_or_path)!r}; available: {', '.join(available_profiles())}")
    return path


def merged_profile(path: Path, overrides: dict | None = None, sets: dict[str, Any] | None = None) -> dict[str, Any]:
    """A profile file merged over the defaults, then nested `overrides`, then dotted `sets`;
    not yet validated (the caller validates once, with every change in)."""
    raw = _read_yaml(path)
    if not isinstance(raw, dict):
        raise TypeError(f"{path}: a profile must be a mapping of keys, got {type(raw).__name__}")
    profile = _merge(_nested_defaults(), raw, "", str(path))
    if overrides:
        profile = _merge(profile, overrides, "", f"{path} with overrides")
    return apply_sets(profile, sets or {}, str(path))


def load_profile(name_or_path: str | Path, overrides: dict | None = None) -> dict[str, Any]:
    """A profile by name (agentr_lib/profiles/<name>.yaml) or path, merged over DEFAULTS, with
    nested `overrides` ({"mcts": {"simulations": 4}}), validated. The pipeline's command line
    goes through run_config.load_run_config, which takes `--set` overrides."""
    path = profile_path(name_or_path)
    profile = merged_profile(path, overrides)
    validate_profile(profile, f"{path}" + (f" with overrides {overrides}" if overrides else ""))
    profile["name"] = path.stem
    return profile


def alpha_for(profile: dict, iteration: int) -> float:
    """The good-leaf threshold of an iteration (1-based; the list has one per iteration)."""
    alphas = profile["revision"]["alpha"]
    return float(alphas[iteration - 1] if isinstance(alphas, list) else alphas)
