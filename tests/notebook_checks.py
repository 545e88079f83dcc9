"""What a researcher must never have to skip over in an executed notebook: an error output, a
warning (or any other text) on stderr, a stray repr (`<Axes ...>`, `PosixPath(...)`) as a
cell's result, or a figure notebook whose figure is not shown inline.

`problems(path)` renders the notebook to HTML with nbconvert (what JupyterLab and a reviewer
see), counts the inline images in the rendering, and reads the outputs themselves for the
rest. Used by the smoke-pipeline test on every executed notebook of the run, and by the
figure-notebook tests."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat

#: notebooks that must show at least one figure inline (by file-name prefix)
FIGURE_PREFIXES = ("01_", "02_", "03_", "04_", "10_", "11_", "12_", "13_")
#: a tqdm text progress bar line (tqdm falls back to stderr text without ipywidgets)
_PROGRESS = re.compile(r"\d+%\|")
_NOISE_REPR = re.compile(r"^(<(matplotlib|Axes|Figure|AxesSubplot)\b|(Posix|Windows)?Path\(|Text\()")
_IMAGE = re.compile(r'<img[^>]+src="data:image/(png|svg)')

_exporter = None


def render_html(path: str | Path) -> str:
    """The notebook rendered by nbconvert's HTML exporter (outputs as they are displayed)."""
    global _exporter
    from nbconvert import HTMLExporter

    if _exporter is None:
        _exporter = HTMLExporter()
    body, _ = _exporter.from_notebook_node(nbformat.read(str(path), as_version=4))
    return body


def problems(path: str | Path, needs_figure: bool | None = None) -> list[str]:
    """One line per problem in the executed notebook at `path` (empty: clean)."""
    path = Path(path)
    if needs_figure is None:
        needs_figure = path.name.startswith(FIGURE_PREFIXES)
    notebook = nbformat.read(str(path), as_version=4)
    found = []
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            where = f"{path.name} cell {index}"
            if output.output_type == "error":
                found.append(f"{where}: error output {output.ename}: {output.evalue}")
            elif output.output_type == "stream" and output.name == "stderr":
                lines = [line for line in re.split(r"[\r\n]+", output.text) if line.strip()
                         and not _PROGRESS.search(line)]
                if lines:
                    found.append(f"{where}: stderr: {lines[0][:300]}")
            elif output.output_type == "execute_result":
                text = output.get("data", {}).get("text/plain", "")
                if _NOISE_REPR.match(text):
                    found.append(f"{where}: stray repr as the cell's result: {text[:120]}")
    if needs_figure and not _IMAGE.search(render_html(path)):
        found.append(f"{path.name}: no figure shown inline")
    return found
