"""Atomic file writes and readable load errors: a crash mid-write never leaves a half file
that a rerun would mistake for a finished result."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write `text` to `path` through a temp file in the same folder + rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 1) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """Load JSON; a corrupt file raises ValueError naming the file and the position."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})") from err


def _jsonl_line(record: Any) -> str:
    """One record as one line. ASCII-escaped, so no character inside a string (U+0085,
    U+2028, ...) can be taken for a line break by any reader."""
    return json.dumps(record, ensure_ascii=True) + "\n"


def append_jsonl(path: str | os.PathLike, record: Any) -> None:
    """Append one record as a line; flushed and fsynced so a crash loses at most this line.

    A torn last line (a crash mid-append) is cut off first, so the new record starts on a
    line of its own instead of being glued to the fragment."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+b") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size:
            handle.seek(max(0, size - 1))
            if handle.read(1) != b"\n":
                handle.seek(0)
                data = handle.read()
                keep = data.rfind(b"\n") + 1  # 0 when the whole file is one torn line
                handle.truncate(keep)
                warnings.warn(f"{path}: dropped a torn last line ({size - keep} bytes) before appending", stacklevel=2)
        handle.seek(0, os.SEEK_END)
        handle.write(_jsonl_line(record).encode("ascii"))
        handle.flush()
        os.fsync(handle.fileno())


def write_jsonl(path: str | os.PathLike, records: Iterable[Any]) -> Path:
    """All records at once, atomically (temp file + rename)."""
    return atomic_write_text(path, "".join(_jsonl_line(record) for record in records))


def read_jsonl(path: str | os.PathLike) -> list[Any]:
    """Read a JSONL file, split on "\n" only (never on the other characters that
    `str.splitlines` treats as line breaks). A torn last line (a crash while appending) is
    skipped with a warning; any other bad line raises ValueError naming the file and line."""
    path = Path(path)
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            if number == len(lines) and not text.endswith("\n"):
                warnings.warn(f"{path}:{number}: skipped a torn last line (a crash while appending?)", stacklevel=2)
                break
            raise ValueError(f"{path}:{number}: not valid JSON ({err.msg})") from err
    return records


#: Files larger than this are identified by size + their first and last MiB (an 8B model's
#: 16 GB of weights would take minutes to hash in full; a retrained model changes both ends).
_FULL_HASH_LIMIT = 64 * 2**20


def _file_digest(path: Path, digest: Any) -> None:
    size = path.stat().st_size
    digest.update(str(size).encode())
    with path.open("rb") as handle:
        if size <= _FULL_HASH_LIMIT:
            for block in iter(lambda: handle.read(2**20), b""):
                digest.update(block)
        else:
            digest.update(handle.read(2**20))
            handle.seek(size - 2**20)
            digest.update(handle.read(2**20))


def fingerprint(path: str | os.PathLike, skip: Iterable[str] = ()) -> str | None:
    """A content digest of a file or a folder (names + bytes of every file below it; hidden
    files, temp files, the `cache-*.arrow` files that `datasets` adds beside a dataset its
    reader filters, and the top-level entries named in `skip` excluded), or None when the
    path does not exist. Identifies what a step was computed from, wherever the run folder lives."""
    path = Path(path)
    if not path.exists():
        return None
    digest = hashlib.sha256()
    skip = set(skip)

    def counted(file: Path) -> bool:
        parts = file.relative_to(path).parts
        derived = file.name.startswith("cache-") and file.suffix == ".arrow"
        return file.is_file() and parts[0] not in skip and not derived and not any(p.startswith(".") for p in parts)

    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if counted(p))
    for file in files:
        digest.update(file.relative_to(path).as_posix().encode() if file != path else b"")
        _file_digest(file, digest)
    return digest.hexdigest()[:16]
