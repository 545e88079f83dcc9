"""Issue 34: inputs a hostile new user gives -- a malformed profile, a wrong-type notebook
parameter, an unwritable run folder, a model name that is nothing -- end in one line naming
the file, key or value and what to do, before anything runs where the input is known up front.
(A damaged step marker and the kernel that outlives a killed pipeline are in test_pipeline.py,
beside the state machine they belong to.)"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest

from agentr_lib.layout import NOTEBOOKS, ROOT
from agentr_lib.notebook_params import (ParameterError, check_parameters, expected_parameters, parameter_checks,
                                        parameters_cell)
from agentr_lib.pipeline import build_plan, main
from agentr_lib.profiles import PROFILES_DIR, ProfileError, load_profile


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# ---- 1. a malformed YAML profile --------------------------------------------------------


def test_a_malformed_yaml_profile_names_the_file_and_line(tmp_path, capsys):
    """Regression: a 52-line yaml traceback ending `in "<unicode string>", line 11`, no file."""
    bad = tmp_path / "bad.yaml"
    bad.write_text((PROFILES_DIR / "smoke.yaml").read_text().replace("iterations: 3", "iterations: [3", 1))
    with pytest.raises(ProfileError, match=rf"{bad}, line 11, column 5: not valid YAML"):
        load_profile(bad)
    assert main(["--profile", str(bad), "--dry-run"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert f"{bad}, line 11" in line and "line 10" in line, "the flow sequence opened on line 10 is named too"


# ---- 3. a wrong-type notebook parameter ----------------------------------------------------


def _hand_values(notebook: str) -> dict:
    return {name: value for name, (value, _) in expected_parameters()[notebook].items()}


@pytest.mark.parametrize("notebook, name, value, expected", [
    ("01_mcts_collection", "SIMULATIONS", "two", "an integer >= 1"),
    ("01_mcts_collection", "ITERATION", 0, "an integer >= 1"),
    ("01_mcts_collection", "TEMPERATURE", "hot", "a number >= 0"),
    ("01_mcts_collection", "ENVS", "textcraft", "a non-empty list of distinct names"),
    ("02_revision_construction", "ALPHA", [0.5], "a number <= 1"),
    ("02_revision_construction", "METHOD", "eto", "one of ['agent_r', 'direct_revision', 'good_only']"),
    ("03_sft_unsloth", "EPOCHS", 0, "a number > 0"),
    ("03_sft_unsloth", "INIT_MODEL", "tiny-typo", "a hub name (org/name)"),
    ("04_evaluation", "MAKE_PREFIXES", "yes", "true or false"),
    ("04_evaluation", "TASKS_PER_ENV", 2.5, "an integer >= 0"),
    ("10_figure3_training_trajectories", "RUN_DIR", 3, "a string"),
])
def test_a_wrong_notebook_parameter_is_named_with_what_it_expects(notebook, name, value, expected):
    """Regression: `-p SIMULATIONS two` failed after the model loaded, as
    `TypeError: '<' not supported between instances of 'str' and 'int'`, naming nothing."""
    values = {**_hand_values(notebook), name: value}
    with pytest.raises(ParameterError) as err:
        check_parameters(notebook, values)
    message = str(err.value)
    assert message.startswith(f"notebooks/{notebook}.ipynb: {name} = {value!r}: expected ") and expected in message, \
        message


def test_every_parameter_of_every_notebook_has_a_check_and_the_hand_values_pass():
    for notebook, expected in expected_parameters().items():
        assert set(expected) <= set(parameter_checks(notebook)), (notebook, set(expected) - set(parameter_checks(notebook)))
        check_parameters(notebook, {name: value for name, (value, _) in expected.items()})


@pytest.mark.parametrize("profile_name", ["smoke", "gpu-rehearsal"])
def test_every_value_the_pipeline_passes_passes_the_check(profile_name, tmp_path):
    """The check must never refuse what a valid profile gives (the models exist when each step runs)."""
    model = tmp_path / "model"
    model.mkdir()
    plan = build_plan(load_profile(profile_name, {"model": str(model)}), tmp_path / "run", tmp_path / "fig")
    for step in plan:
        for name in ("MODEL", "INIT_MODEL"):
            if name in step.parameters:
                Path(step.parameters[name]).mkdir(parents=True, exist_ok=True)
    for step in plan:
        check_parameters(step.notebook, step.parameters)


def test_each_notebook_checks_its_parameters_first():
    """The check is the first statement after the parameters cell (papermill injects its
    values between the two), so nothing runs -- no model loads -- on a bad value."""
    for notebook in expected_parameters():
        cells = nbformat.read(NOTEBOOKS / f"{notebook}.ipynb", as_version=4).cells
        index = cells.index(parameters_cell({"cells": cells}))
        first = next(cell for cell in cells[index + 1:] if cell.cell_type == "code")
        assert first.source.startswith("from agentr_lib.notebook_params import check_parameters\n\n"
                                       f'check_parameters("{notebook}", globals())'), (notebook, first.source[:200])


def test_papermill_with_a_wrong_type_parameter_stops_before_the_model_loads(tmp_path):
    """The issue's command, end to end: the error names the parameter, and cell 2's model load never ran."""
    out = tmp_path / "out.ipynb"
    run = subprocess.run([sys.executable, "-m", "papermill", str(NOTEBOOKS / "01_mcts_collection.ipynb"), str(out),
                          "-p", "SIMULATIONS", "two", "-p", "OUT_DIR", str(tmp_path / "mcts"), "--cwd", str(ROOT)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode != 0
    assert "ParameterError: notebooks/01_mcts_collection.ipynb: SIMULATIONS = 'two': expected an integer >= 1" \
        in run.stderr + run.stdout, run.stderr[-2000:]
    outputs = [output for cell in nbformat.read(out, as_version=4).cells for output in cell.get("outputs", [])]
    assert [output.get("ename") for output in outputs if output.output_type == "error"] == ["ParameterError"]
    assert not any("sampling with" in output.get("text", "") for output in outputs) and not (tmp_path / "mcts").exists()


# ---- 4. an unwritable run folder: OSError becomes one line ----------------------------------


def test_a_run_folder_that_cannot_be_created_is_one_line(tmp_path, capsys):
    """Regression: an OSError from RunLock was an 18-line traceback (OSError was not among the
    errors main() reports). A file where the runs folder should be is a real OSError even as root."""
    runs = tmp_path / "runs"
    runs.write_text("a file, not a folder")
    assert main(["--profile", "smoke", "--runs-root", str(runs), "--run-name", "r"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert f"{runs}/r" in line and "Not a directory" in line and "--runs-root" in line, line


def _as_nobody() -> list[str] | None:
    """A command prefix that runs as an unprivileged user (root ignores chmod), or None."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    return [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"] if setpriv else None


def test_a_read_only_finished_run_is_one_line_naming_the_folder():
    """The issue's case: `chmod -R a-w` a run and rerun it, as a user chmod binds."""
    prefix = _as_nobody()
    if prefix is None:
        pytest.skip("running as root without setpriv: chmod does not stop root")
    root = Path(tempfile.mkdtemp(prefix="agentr-ro-"))
    try:
        run_dir = root / "runs" / "r"
        (run_dir / "steps").mkdir(parents=True)
        (run_dir / "run.json").write_text("{}\n")
        for path in [root, root / "runs"]:
            path.chmod(0o755)
        for path in [run_dir / "steps", run_dir]:
            path.chmod(0o555)
        (run_dir / "run.json").chmod(0o444)
        run = subprocess.run(prefix + [sys.executable, "-m", "agentr_lib.pipeline", "--profile", "smoke",
                                       "--runs-root", str(root / "runs"), "--run-name", "r"],
                             capture_output=True, text=True, cwd=ROOT, timeout=300,
                             env={**os.environ, "HOME": str(root)})
        assert run.returncode == 2, run.stderr[-2000:]
        line = _one_error_line(run.stderr)
        assert "Permission denied" in line and str(run_dir) in line and "writable" in line, line
    finally:
        for path in [root / "runs" / "r", root / "runs" / "r" / "steps"]:
            path.chmod(0o755)
        shutil.rmtree(root)


# ---- a model name that is none of the accepted kinds ---------------------------------------


def test_a_model_name_that_is_nothing_fails_at_load(tmp_path, capsys):
    """Regression: `model: micro-typo` passed validation and --dry-run, then failed at step 2."""
    with pytest.raises(ProfileError, match=r"model = 'micro-typo': expected .*tiny.*a hub name \(org/name\)"):
        load_profile("smoke", {"model": "micro-typo"})
    profile = tmp_path / "typo.yaml"
    profile.write_text("model: micro-typo\n")
    assert main(["--profile", str(profile), "--dry-run"]) == 2
    assert "model = 'micro-typo'" in _one_error_line(capsys.readouterr().err)


def test_the_accepted_kinds_of_model_name_still_load(tmp_path, monkeypatch):
    from agentr_lib.models import EMBEDDED_MODELS

    for name in EMBEDDED_MODELS + ("Qwen/Qwen2.5-0.5B-Instruct", str(tmp_path)):
        assert load_profile("smoke", {"model": name})["model"] == name
    (tmp_path / "mymodel").mkdir()
    monkeypatch.chdir(tmp_path)
    assert load_profile("smoke", {"model": "mymodel"})["model"] == "mymodel", "an existing folder, named bare"
