"""The README stays what a newcomer reads in ten minutes, and the documentation's links resolve."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
#: every hand-written document whose relative links must resolve (docs/*.md holds the generated settings too)
DOCUMENTS = sorted({README, *ROOT.glob("docs/*.md"), ROOT / "experiments" / "LOG.md",
                    ROOT / "experiments" / "results" / "README.md", ROOT / "benchmarks" / "README.md"})
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```")


def _prose_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, line) of every line outside fenced code blocks."""
    out, fenced = [], False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            out.append((number, line))
    return out


def github_anchor(heading: str) -> str:
    """The id GitHub gives a heading: lower-cased, punctuation but hyphens dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    return {github_anchor(line.lstrip("#")) for _, line in _prose_lines(path) if re.match(r"#{1,6} ", line)}


def test_readme_is_at_most_250_lines():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines; move detail to docs/ or experiments/LOG.md"


def test_no_readme_line_outside_tables_runs_over_120_characters():
    long = [(number, len(line)) for number, line in enumerate(README.read_text(encoding="utf-8").splitlines(), 1)
            if len(line) > 120 and not line.lstrip().startswith("|")]
    assert not long, f"README.md lines over 120 characters (line, length): {long}"


def test_the_readme_keeps_the_results_block_and_the_two_commands():
    text = README.read_text(encoding="utf-8")
    assert "<!-- results:begin" in text and "<!-- results:end -->" in text
    assert "make reproduce" in text and "make test" in text


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_relative_link_points_to_an_existing_file(document):
    if not document.exists():
        pytest.skip(f"{document.relative_to(ROOT)} is not in this checkout")
    broken = []
    for number, line in _prose_lines(document):
        for target in LINK.findall(line):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            path_part, _, anchor = target.partition("#")
            path = (document.parent / path_part).resolve() if path_part else document
            if not path.exists():
                broken.append(f"line {number}: {target} (no such file)")
            elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
                broken.append(f"line {number}: {target} (no heading #{anchor} in {path.name})")
    assert not broken, f"{document.relative_to(ROOT)}: " + "; ".join(broken)
