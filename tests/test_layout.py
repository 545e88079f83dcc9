"""The project's own files install and describe everything it needs."""

import json
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_environment_yml_installs_the_package_with_python_311():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    assert "python=3.11" in deps and "pip" in deps
    pip_block = next(d["pip"] for d in deps if isinstance(d, dict))
    assert any(line.startswith("-e .[") for line in pip_block)


def test_gpu_extra_is_separate_and_pins_unsloth_compatible_versions():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not any("unsloth" in dep for dep in project["dependencies"])
    gpu = project["optional-dependencies"]["gpu"]
    assert any(dep.startswith("unsloth") for dep in gpu)
    assert "trl<=1.15" in gpu and "transformers<=5.17" in gpu


def test_ci_calls_the_readme_test_command():
    ci = (ROOT / ".ci/run").read_text()
    assert "make test" in ci and "OMP_NUM_THREADS" in ci
    assert "make test" in (ROOT / "README.md").read_text()


def test_notebooks_are_stored_clean_with_a_parameters_cell():
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    for path in notebooks:
        cells = json.loads(path.read_text())["cells"]
        for cell in cells:
            if cell["cell_type"] == "code":
                assert not cell.get("outputs") and cell.get("execution_count") is None, path
        tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, f"{path}: expected exactly one cell tagged 'parameters'"
