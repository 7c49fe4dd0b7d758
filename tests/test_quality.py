"""Lint and type checks run as part of the test suite, so CI runs them with the README command."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tool(name: str) -> list[str]:
    exe = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if exe is None:
        pytest.fail(f"{name} is not installed: pip install -e '.[dev]'")
    return [exe]


def test_ruff_clean():
    proc = subprocess.run(_tool("ruff") + ["check", "plugin", "otio_adapters", "resolve_scripts",
                                           "tests", "benchmarks"],
                          cwd=ROOT, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_mypy_clean():
    proc = subprocess.run(_tool("mypy") + ["--no-incremental"], cwd=ROOT, capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
