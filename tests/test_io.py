"""Atomic writes and readable load errors."""

import json
import os

import pytest

from agentr_lib.io import append_jsonl, atomic_write_json, read_json, read_jsonl


def test_atomic_write_leaves_no_temp_file_and_normal_permissions(tmp_path):
    path = atomic_write_json(tmp_path / "sub" / "x.json", {"a": 1})
    assert read_json(path) == {"a": 1}
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]
    assert os.stat(path).st_mode & 0o044, "readable by group/others like any other file"


def test_corrupt_json_names_the_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"a": ')
    with pytest.raises(ValueError, match="bad.json"):
        read_json(path)


def test_jsonl_skips_a_torn_last_line_but_not_a_torn_middle_line(tmp_path):
    path = tmp_path / "log.jsonl"
    append_jsonl(path, {"i": 1})
    append_jsonl(path, {"i": 2})
    with path.open("a") as handle:
        handle.write('{"i": 3')  # a crash while appending
    assert read_jsonl(path) == [{"i": 1}, {"i": 2}]
    path.write_text(json.dumps({"i": 1}) + "\n{oops\n" + json.dumps({"i": 2}) + "\n")
    with pytest.raises(ValueError, match="log.jsonl:2"):
        read_jsonl(path)
