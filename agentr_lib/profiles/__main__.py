"""`python -m agentr_lib.profiles`: write docs/settings.md from the schema (SETTINGS)."""

from pathlib import Path

from . import settings_markdown

path = Path(__file__).resolve().parents[2] / "docs" / "settings.md"
path.parent.mkdir(exist_ok=True)
path.write_text(settings_markdown())
print("wrote", path)
