"""agentr: Agent-R (Yuan et al., 2025) as a thin, notebook-first library."""

__version__ = "0.1.0"
