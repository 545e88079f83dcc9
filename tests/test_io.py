"""Atomic writes and readable load errors."""

import json
import os

import pytest

from agentr_lib.io import append_jsonl, atomic_write_json, fingerprint, read_json, read_jsonl, write_jsonl


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


def test_jsonl_round_trips_characters_that_splitlines_takes_for_line_breaks(tmp_path):
    """Regression: a model reply with U+0085 (or U+2028, \\r, \\x0c) was written raw and
    `str.splitlines()` split the record in two, so the smoke pipeline failed by chance."""
    path = tmp_path / "log.jsonl"
    records = [{"a": "x\x85y"}, {"a": "p\u2028q\u2029r"}, {"a": "c\rd\x0ce\x1cf"}]
    for record in records:
        append_jsonl(path, record)
    assert read_jsonl(path) == records
    write_jsonl(tmp_path / "all.jsonl", records)
    assert read_jsonl(tmp_path / "all.jsonl") == records
    assert len(path.read_bytes().split(b"\n")) == len(records) + 1


def test_append_after_a_torn_line_starts_a_new_line(tmp_path):
    """Regression: a record appended after a crash mid-append was glued to the fragment."""
    path = tmp_path / "log.jsonl"
    append_jsonl(path, {"i": 1})
    with path.open("a") as handle:
        handle.write('{"i": 2, "tor')  # killed while appending
    with pytest.warns(UserWarning, match="torn"):
        append_jsonl(path, {"i": 3})
    assert read_jsonl(path) == [{"i": 1}, {"i": 3}]
    append_jsonl(path, {"i": 4})
    assert read_jsonl(path) == [{"i": 1}, {"i": 3}, {"i": 4}]
    only_fragment = tmp_path / "fragment.jsonl"
    only_fragment.write_text('{"i"')
    with pytest.warns(UserWarning):
        append_jsonl(only_fragment, {"i": 5})
    assert read_jsonl(only_fragment) == [{"i": 5}]


def test_fingerprint_follows_content_not_location(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    for folder in (first, second):
        (folder / "sub").mkdir(parents=True)
        (folder / "sub" / "w.bin").write_bytes(b"weights")
        (folder / "config.json").write_text("{}")
    (second / ".lock").write_text("ignored")
    (second / "sub" / "cache-3f2a.arrow").write_bytes(b"a reader's filter cache")
    assert fingerprint(first) == fingerprint(second) is not None
    (second / "sub" / "w.bin").write_bytes(b"weightz")
    assert fingerprint(first) != fingerprint(second)
    assert fingerprint(tmp_path / "missing") is None
    assert fingerprint(first / "config.json") == fingerprint(second / "config.json")
