"""One place for every setting (profiles.SETTINGS): the profile defaults, the validation, the
dataclass defaults, the pipeline's notebook parameters, docs/settings.md and the notebooks'
parameters cells all follow it, and a notebook that disagrees with the `tiny` profile fails."""

import dataclasses

import nbformat
import pytest

from agentr_lib import notebook_params, profiles
from agentr_lib.layout import NOTEBOOKS, ROOT
from agentr_lib.mcts import MCTSConfig
from agentr_lib.notebook_params import check_notebooks, expected_parameters, parameters_cell, problems, rewrite
from agentr_lib.pipeline import build_plan
from agentr_lib.profiles import SCHEMA, SETTINGS, load_profile, settings_markdown
from agentr_lib.revision import RevisionSettings
from agentr_lib.run_config import load_run_config
from agentr_lib.train import SFTConfig


def test_every_parameters_cell_agrees_with_the_tiny_profile():
    found = check_notebooks()
    assert found == [], "\n".join(found) + "\n(python -m agentr_lib.notebook_params --write rewrites them)"


def _cell(notebook: str) -> str:
    return parameters_cell(nbformat.read(NOTEBOOKS / f"{notebook}.ipynb", as_version=4)).source


def test_a_disagreeing_cell_is_named_and_rewritten():
    notebook = "01_mcts_collection"
    expected = expected_parameters()[notebook]
    lines = _cell(notebook).splitlines()
    depth = expected["MAX_DEPTH"][0]
    bad = [f"MAX_DEPTH = {depth + 5}  # {expected['MAX_DEPTH'][1]}" if line.startswith("MAX_DEPTH") else
           "C = 0.25  # exploration" if line.startswith("C ") else line
           for line in lines if not line.startswith("SIMULATIONS")] + ["EXTRA = 1  # not passed"]
    found = problems(notebook, "\n".join(bad), expected)
    where = f"notebooks/{notebook}.ipynb"
    assert f"{where}: MAX_DEPTH = {depth + 5}, the tiny profile gives {depth}" in found
    assert any(line.startswith(f"{where}: SIMULATIONS is missing") for line in found)
    assert f"{where}: EXTRA is not a parameter the pipeline passes" in found
    assert any(line.startswith(f"{where}: C's comment should be the setting's meaning") for line in found)
    assert problems(notebook, rewrite("\n".join(bad), expected), expected) == []
    assert problems(notebook, "MAX_DEPTH = 3 + 5  # x", expected)[0].endswith("line 1: the value must be a literal")


def test_a_changed_default_in_a_stage_config_reaches_every_consumer(monkeypatch, tmp_path):
    """What a newcomer does: change one default in one stage config (MCTSConfig's `c`, a field
    the `tiny` profile does not set); the profile's validation and values, docs/settings.md,
    the notebook parameters check and the pipeline's plan all follow, nothing else edited."""
    field = next(f for f in dataclasses.fields(MCTSConfig) if f.name == "c")
    monkeypatch.setattr(field, "default", 0.5)
    profile = load_profile("tiny")  # tiny.yaml does not set mcts.c
    assert profile["mcts"]["c"] == 0.5
    search = next(step for step in build_plan(profile, tmp_path, tmp_path) if step.notebook == "01_mcts_collection")
    assert search.parameters["C"] == 0.5
    assert load_run_config("tiny").stage(MCTSConfig).c == 0.5, "and the config a script builds from the run"
    assert "notebooks/01_mcts_collection.ipynb: C = 0.25, the tiny profile gives 0.5" in check_notebooks()
    assert "| `mcts.c` | `0.5` |" in profiles.settings_markdown()
    monkeypatch.setattr(field, "default", -1.0)  # a default its own check refuses fails every profile load
    with pytest.raises(profiles.ProfileError, match=r"mcts.c = -1.0: expected a number >= 0"):
        load_profile("tiny")


def test_dataclass_defaults_are_the_schemas():
    for config, section in ((MCTSConfig(), "mcts"), (SFTConfig(), "sft"), (RevisionSettings(), "revision")):
        shared = {f.name: f"{section}.{f.name}" for f in dataclasses.fields(config)}
        shared = {name: key for name, key in shared.items() if key in SCHEMA}
        assert len(shared) >= 4, (section, shared)
        for name, key in shared.items():
            schema = SCHEMA[key].default
            assert getattr(config, name) == (schema[0] if key == "revision.alpha" else schema), (section, name)


def test_the_schema_is_well_formed(tmp_path):
    notebooks = {path.stem.split("_", 1)[0] for path in NOTEBOOKS.glob("*.ipynb")}
    given: dict[tuple[str, str], str] = {}
    for setting in SETTINGS:
        assert setting.check(setting.default) is None, f"{setting.key}: its default fails its own check"
        assert setting.meaning and "\n" not in setting.meaning and setting.accepts(), setting.key
        for number in setting.notebooks.split():
            assert number in notebooks, f"{setting.key} names notebook {number}, which does not exist"
            assert (number, setting.param) not in given, f"{setting.key} and {given[number, setting.param]} both set {setting.param}"
            given[number, setting.param] = setting.key
    (tmp_path / "empty.yaml").write_text("{}\n")
    assert load_profile(tmp_path / "empty.yaml")["mcts"] == profiles.DEFAULTS["mcts"], "the defaults load as a profile"


def test_docs_settings_md_is_current():
    assert (ROOT / "docs" / "settings.md").read_text() == settings_markdown(), \
        "docs/settings.md is stale: python -m agentr_lib.profiles rewrites it"


def test_the_cells_reproduce_the_pipelines_first_steps():
    """Run by hand, 01-04 compute what the tiny pipeline's first steps compute (paths aside),
    and the figure notebooks read the run `make reproduce` writes."""
    expected = expected_parameters()
    assert expected["01_mcts_collection"]["MODEL"][0] == "tiny-disjoint"
    assert expected["01_mcts_collection"]["TASK_SPLIT"][0] == "search"
    assert expected["04_evaluation"]["MAKE_PREFIXES"][0] is True
    assert expected["10_figure3_training_trajectories"]["RUN_DIR"][0] == "data/runs/tiny"
    assert all(str(value).startswith(str(notebook_params.HAND_RUN)) for name, (value, _) in expected["02_revision_construction"].items()
               if name.endswith("_DIR"))


@pytest.mark.parametrize("notebook", sorted(expected_parameters()))
def test_every_parameter_has_a_comment(notebook):
    assert all(line.comment for line in notebook_params.read_cell(_cell(notebook)))
