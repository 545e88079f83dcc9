"""The model registry (agentr_lib.models) is what the runtime reads: a model's folder is found
there, and a missing pretrained model is made through its builder hook, without the runtime
importing any builder (issue 31: model building out of the runtime)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from agentr_lib import layout, models


def test_importing_the_runtime_imports_no_builder():
    """The hook is a string, so the import walk of tests/test_imports.py cannot see it: check the
    modules a fresh process really loads."""
    code = ("import sys, agentr_lib.layout, agentr_lib.profiles; "
            "print(sorted(m for m in sys.modules if m.startswith('agentr_lib.build')))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_the_builder_hook_names_the_warm_start_builder():
    from agentr_lib.build import smol_warm

    module, _, function = models.PRETRAINED_BUILDER.partition(":")
    assert module == smol_warm.__name__ and getattr(smol_warm, function) is smol_warm.resolve


def test_a_pretrained_model_is_made_by_the_hook_on_first_use(tmp_path, monkeypatch):
    from agentr_lib.build import smol_warm

    made = []
    monkeypatch.setattr(smol_warm, "resolve", lambda name: made.append(name) or tmp_path / name)
    assert layout.model_path("smollm2-135m-bc-lora-32") == str(tmp_path / "smollm2-135m-bc-lora-32")
    assert made == ["smollm2-135m-bc-lora-32"]
    with pytest.raises(ValueError, match="not a pretrained model"):
        models.pretrained_dir("tiny")


def test_an_embedded_model_is_its_cache_folder_and_anything_else_passes_through(tmp_path):
    assert layout.model_path("micro", seed=3) == str(models.model_dir_for(models.resolve_spec("micro", seed=3)))
    assert layout.model_path(str(tmp_path)) == str(tmp_path)
    assert layout.model_path("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"
