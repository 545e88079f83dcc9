"""The notebook-output check itself (tests/notebook_checks.py), figures inline under papermill
with the library imported, headless scripts still saving figures, and a pipeline kernel that
prints no TCP warning. The smoke-pipeline test applies the check to every executed notebook
of a run; the figure-notebook tests to notebooks 10-14."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import papermill
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from notebook_checks import problems

ROOT = Path(__file__).resolve().parents[1]


def _write(path: Path, outputs: list) -> Path:
    cell = new_code_cell("x", outputs=outputs, execution_count=1)
    notebook = new_notebook(cells=[cell])
    nbformat.write(notebook, str(path))
    return path


def test_clean_outputs_pass_and_each_kind_of_noise_is_named(tmp_path):
    image = new_output("display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "<Figure size 600x300>"})
    clean = _write(tmp_path / "10_clean.ipynb", [new_output("stream", name="stdout", text="saved a.png\n"), image,
                                                 new_output("stream", name="stderr", text="sft: 100%|####| 4/4\r")])
    assert problems(clean) == []
    cases = {
        "error output ValueError": [new_output("error", ename="ValueError", evalue="bad", traceback=[])],
        "stderr: [transformers] This is a friendly reminder": [
            new_output("stream", name="stderr", text="[transformers] This is a friendly reminder - ...\n")],
        "stray repr": [new_output("execute_result", data={"text/plain": "PosixPath('/tmp/x.json')"},
                                  execution_count=1)],
    }
    for expected, outputs in cases.items():
        found = problems(_write(tmp_path / "00_noisy.ipynb", outputs))
        assert len(found) == 1 and expected in found[0], found
    axes = new_output("execute_result", data={"text/plain": "<Axes: title={'center': 'tree'}>"}, execution_count=1)
    found = problems(_write(tmp_path / "01_no_figure.ipynb", [axes]))
    assert any("stray repr" in f for f in found) and any("no figure shown inline" in f for f in found)


def test_a_notebook_that_imports_the_library_shows_its_figure_inline(tmp_path):
    source = ("from agentr_lib.figures import save_figure\nimport matplotlib.pyplot as plt\n"
              f"fig, ax = plt.subplots()\nax.plot([0, 1])\nsave_figure(fig, {str(tmp_path)!r}, 'f')\n"
              "print('saved')")
    notebook = new_notebook(cells=[new_code_cell(source)])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, str(tmp_path / "in.ipynb"))
    papermill.execute_notebook(str(tmp_path / "in.ipynb"), str(tmp_path / "10_out.ipynb"), cwd=str(ROOT),
                               progress_bar=False, kernel_name="python3")
    assert problems(tmp_path / "10_out.ipynb") == []
    assert (tmp_path / "f.png").stat().st_size > 500 and (tmp_path / "f.pdf").exists()


def test_a_script_without_a_display_still_saves_figures(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "MPLBACKEND")}
    script = ("import matplotlib.pyplot as plt\nfrom agentr_lib.figures import save_figure\n"
              "fig, ax = plt.subplots()\nax.plot([0, 1])\n"
              f"save_figure(fig, {str(tmp_path)!r}, 'f')\nimport matplotlib\nprint(matplotlib.get_backend())")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert done.stdout.strip().lower() == "agg" and (tmp_path / "f.png").stat().st_size > 500


def test_pipeline_kernels_print_no_tcp_warning(tmp_path, capfd):
    from agentr_lib.pipeline import kernel_options

    notebook = new_notebook(cells=[new_code_cell("print(1 + 1)")])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, str(tmp_path / "in.ipynb"))
    if os.name != "posix":
        pytest.skip("IPC transport is POSIX only")
    papermill.execute_notebook(str(tmp_path / "in.ipynb"), str(tmp_path / "out.ipynb"), progress_bar=False,
                               kernel_name="python3", **kernel_options())
    assert "without encryption" not in capfd.readouterr().err
    assert problems(tmp_path / "out.ipynb", needs_figure=False) == []
