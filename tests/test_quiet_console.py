"""Issue 31 item 6: vLLM's start-up noise (a Triton notice, two FutureWarnings of torch's, a
C++ NUMA notice) reaches neither a notebook's outputs nor the pipeline's console, and a real
warning still shows. Filtered where each comes from (agentr_lib/llm/vllm.py), not by hiding stderr."""

from __future__ import annotations

import os
import subprocess
import sys

import nbformat
import pytest

from agentr_lib.layout import ROOT, model_path

NOISE = ("Triton is installed, but doesn't include CPU backend", "torch.distributed.reduce_op",
         "NUMA binding: Using MEMBIND policy", "Loading safetensors checkpoint shards")

#: loads the shipped micro model through our vllm module, samples, then warns for real
_SCRIPT = """
import warnings
from agentr_lib.layout import model_path
from agentr_lib.llm import load_policy

policy = load_policy("vllm", model_path("micro-fluent"), seed=0, kv_cache_gb=0.02)
print(policy.generate([[{"role": "user", "content": "hi"}]], n=1, temperature=0.0, max_new_tokens=4))
warnings.warn("a real warning")
"""


def _require_vllm() -> None:
    pytest.importorskip("vllm", reason="no vllm wheel for this platform: the project falls back to hf")


def test_vllm_start_up_is_quiet_and_real_warnings_still_show():
    _require_vllm()
    run = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, cwd=ROOT, timeout=600,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip().startswith("[[")
    for noise in NOISE:
        assert noise not in run.stderr, (noise, run.stderr)
    assert "UserWarning: a real warning" in run.stderr


def test_only_the_named_native_lines_are_dropped(capfd):
    from agentr_lib.llm.vllm import NATIVE_STARTUP_NOISE, _stderr_lines_dropped

    with _stderr_lines_dropped(NATIVE_STARTUP_NOISE):
        os.write(2, b"[W utils.cpp:68] Warning: NUMA binding: Using MEMBIND policy for memory allocation on (0)\n"
                    b"a real native error\n")
    assert capfd.readouterr().err == "a real native error\n"


def test_a_notebook_that_starts_vllm_shows_no_stderr(tmp_path):
    """What a notebook of a `tiny` run (backend auto: vllm where installed) shows: the engine's
    start-up leaves no stderr output, and a warning the cell raises still does."""
    _require_vllm()
    import papermill

    from agentr_lib.pipeline import kernel_options

    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.cells = [nbformat.v4.new_code_cell(
        "import warnings\nfrom agentr_lib.llm import load_policy\n"
        f"policy = load_policy('vllm', {model_path('micro-fluent')!r}, seed=0, kv_cache_gb=0.02)\n"
        "warnings.warn('a real warning')")]
    nbformat.write(notebook, tmp_path / "in.ipynb")
    papermill.execute_notebook(str(tmp_path / "in.ipynb"), str(tmp_path / "out.ipynb"), cwd=str(ROOT),
                               progress_bar=False, kernel_name="python3", **kernel_options())
    outputs = nbformat.read(tmp_path / "out.ipynb", as_version=4).cells[0].outputs
    stderr = "".join(output.get("text", "") for output in outputs if output.get("name") == "stderr")
    assert "UserWarning: a real warning" in stderr
    assert stderr.strip().splitlines()[0].endswith("UserWarning: a real warning"), stderr
