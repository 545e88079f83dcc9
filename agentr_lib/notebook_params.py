"""The notebooks' parameters cells, checked against (and written from) the one place their
values come from.

A parameters cell is a block of plain globals, one comment each (the nanoGPT style):

    MAX_DEPTH = 8  # a node at this many actions is terminal

Its values are those of the pipeline's first step of that notebook under the `tiny` profile,
so a notebook run by hand reproduces the CPU default: the settings a notebook takes as is
(profiles.SETTINGS says which) with the schema's meaning as their comment, and the values of
the run (paths under data/runs/manual/ for 00-04, data/runs/tiny/ for the figure notebooks,
which read a finished pipeline run; the iteration, its seed and alpha; `tiny` for the model,
which layout.model_path resolves) with the notebook's own comment.

    python -m agentr_lib.notebook_params          # what disagrees (exit status 1 if anything)
    python -m agentr_lib.notebook_params --write  # rewrite the disagreeing values and comments
"""

from __future__ import annotations

import ast
import io
import json
import sys
import tokenize
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .layout import HAND_RUN, NOTEBOOKS, RUNS, ROOT

#: the profile every notebook's parameters cell reproduces
HAND_PROFILE = "tiny"


@dataclass
class Line:
    """One assignment of a parameters cell."""

    name: str
    value: Any
    comment: str
    source: str  # the line as written


def parameters_cell(notebook: dict) -> dict:
    """The cell tagged `parameters` of a notebook (nbformat dict)."""
    cells = [c for c in notebook["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ValueError(f"expected exactly one cell tagged 'parameters', found {len(cells)}")
    return cells[0]


def read_cell(source: str, where: str = "parameters cell") -> list[Line]:
    """The assignments of a parameters cell, parsed with ast: each statement must be
    `NAME = <literal>` on one line with a `# comment` (ValueError naming the line otherwise)."""
    tree = ast.parse(source)
    comments = {token.start[0]: token.string.lstrip("#").strip()
                for token in tokenize.generate_tokens(io.StringIO(source).readline) if token.type == tokenize.COMMENT}
    lines = source.splitlines()
    out = []
    for statement in tree.body:
        if not (isinstance(statement, ast.Assign) and len(statement.targets) == 1
                and isinstance(statement.targets[0], ast.Name) and statement.lineno == statement.end_lineno):
            raise ValueError(f"{where}, line {statement.lineno}: expected one `NAME = value  # comment` per line")
        try:
            value = ast.literal_eval(statement.value)
        except ValueError:
            raise ValueError(f"{where}, line {statement.lineno}: the value must be a literal") from None
        out.append(Line(statement.targets[0].id, value, comments.get(statement.lineno, ""),
                        lines[statement.lineno - 1]))
    return out


def expected_parameters() -> dict[str, dict[str, tuple[Any, str | None]]]:
    """{notebook: {NAME: (value, the setting's meaning or None for a value of the run)}} for
    every notebook the pipeline runs: its first step under the `tiny` profile."""
    from .pipeline import build_plan, model_for_profile
    from .profiles import SETTINGS, load_profile

    profile = load_profile(HAND_PROFILE)
    base_model = model_for_profile(profile)
    figures = Path("figures") / HAND_PROFILE
    by_hand = build_plan(profile, HAND_RUN, figures)
    finished_run = build_plan(profile, RUNS.relative_to(ROOT) / HAND_PROFILE, figures)

    def as_written(value: Any) -> Any:  # the embedded model by its name, as a reader writes it
        return profile["model"] if value == base_model else value

    out: dict[str, dict[str, tuple[Any, str | None]]] = {}
    for step in [s for s in by_hand if not s.after_all] + [s for s in finished_run if s.after_all]:
        if step.notebook in out:
            continue
        number = step.notebook.split("_", 1)[0]
        meanings = {s.param: s.meaning for s in SETTINGS if number in s.notebooks.split()}
        out[step.notebook] = {name: (as_written(value), meanings.get(name)) for name, value in step.parameters.items()}
    return out


class ParameterError(ValueError):
    """A notebook parameter of the wrong type or range; the message names the notebook, the
    parameter, its value and what is expected."""


def parameter_checks(notebook: str) -> dict[str, Callable[[Any], str | None]]:
    """{NAME: check} for a notebook's parameters: the schema's check of each setting the
    notebook takes (profiles.SETTINGS), else the check of a value of the run (profiles.RUN_VALUES)."""
    from .profiles import RUN_VALUES, SETTINGS

    number = notebook.split("_", 1)[0]
    return {**RUN_VALUES, **{s.param: s.check for s in SETTINGS if number in s.notebooks.split()}}


def check_parameters(notebook: str, values: dict[str, Any]) -> None:
    """Check a notebook's parameters (its `globals()` after papermill's injected cell) as a
    profile's keys are checked: the first wrong one raises ParameterError, before the
    notebook loads a model -- a hand-run `-p SIMULATIONS two` was otherwise a TypeError deep in
    the search, naming nothing."""
    for name, check in parameter_checks(notebook).items():
        if name in values and (problem := check(values[name])) is not None:
            raise ParameterError(f"notebooks/{notebook}.ipynb: {name} = {values[name]!r}: expected {problem}")


def literal(value: Any) -> str:
    """A value as a parameters cell writes it (double-quoted strings, Python literals)."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in value.items()) + "}"
    return repr(value)


def _same(a: Any, b: Any) -> bool:
    """Equal as parameters: numbers by value (2 == 2.0), booleans only to booleans."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def problems(notebook: str, source: str, expected: dict[str, tuple[Any, str | None]]) -> list[str]:
    """Every way the cell disagrees with what the pipeline passes under `tiny`."""
    where = f"notebooks/{notebook}.ipynb"
    try:
        lines = read_cell(source, f"{where} parameters cell")
    except (SyntaxError, ValueError) as err:
        return [str(err)]
    found = {line.name: line for line in lines}
    out = [f"{where}: {name} is missing (the pipeline passes {literal(value)})"
           for name, (value, _) in expected.items() if name not in found]
    out += [f"{where}: {name} is not a parameter the pipeline passes" for name in found if name not in expected]
    for name, line in found.items():
        if name not in expected:
            continue
        value, meaning = expected[name]
        if not _same(line.value, value):
            out.append(f"{where}: {name} = {literal(line.value)}, the {HAND_PROFILE} profile gives {literal(value)}")
        if meaning is not None and line.comment != meaning:
            out.append(f"{where}: {name}'s comment should be the setting's meaning: {meaning!r}")
        if not line.comment:
            out.append(f"{where}: {name} has no comment")
    return out


def rewrite(source: str, expected: dict[str, tuple[Any, str | None]]) -> str:
    """The cell with every disagreeing value and setting comment replaced; parameters it lacks
    are added (a value of the run gets a comment to write by hand), unknown ones dropped."""
    lines = {line.name: line for line in read_cell(source)}
    out = []
    for name, (value, meaning) in expected.items():
        line = lines.get(name)
        if line is not None and _same(line.value, value) and (meaning is None or line.comment == meaning):
            out.append(line.source)
            continue
        comment = meaning if meaning is not None else (line.comment if line and line.comment else "TODO: what it is")
        out.append(f"{name} = {literal(value)}  # {comment}")
    return "\n".join(out)


def check_notebooks(write: bool = False, notebooks_dir: Path = NOTEBOOKS) -> list[str]:
    """Problems of every parameters cell (rewriting them first with `write`)."""
    import nbformat

    found: list[str] = []
    for notebook, expected in expected_parameters().items():
        path = notebooks_dir / f"{notebook}.ipynb"
        data = nbformat.read(path, as_version=4)
        cell = parameters_cell(data)
        if write and problems(notebook, cell.source, expected):
            cell.source = rewrite(cell.source, expected)
            text = nbformat.writes(data)
            path.write_text(text if path.read_text().endswith("\n") else text.rstrip("\n"))
            print(f"rewrote the parameters cell of notebooks/{path.name}")
        found += problems(notebook, cell.source, expected)
    return found


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    found = check_notebooks(write="--write" in args)
    print("\n".join(found) if found else "every parameters cell agrees with the tiny profile")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
