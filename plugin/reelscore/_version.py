"""The one place the version is written; the build reads it (pyproject: tool.hatch.version)."""

__version__ = "0.1.0"
