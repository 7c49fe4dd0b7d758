"""The README's two commands, as a new user runs them (the test command is what .ci/run runs)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import opentimelineio as otio
import pytest

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> tuple[str, str]:
    text = (ROOT / "README.md").read_text("utf-8")
    blocks = re.findall(r"```sh\n(.*?)\n```", text, re.S)
    demo = next(b for b in blocks if "reelscore demo" in b)
    tests = next(b for b in blocks if "pytest" in b)
    return demo.strip(), tests.strip()


def test_ci_runs_exactly_the_readme_test_command():
    _, tests = readme_commands()
    ci = (ROOT / ".ci" / "run").read_text("utf-8")
    assert tests in ci.splitlines()


@pytest.mark.slow
def test_demo_command_in_a_fresh_checkout(tmp_path):
    demo, _ = readme_commands()
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    checkout = tmp_path / "checkout"
    for name in files:
        src = ROOT / name
        if src.is_file():
            (checkout / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, checkout / name)
    proc = subprocess.run(["bash", "-c", demo], cwd=checkout, capture_output=True, text=True,
                          timeout=1200, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    folder = checkout / "reelscore-demo"
    scored = otio.adapters.read_from_file(str(folder / "demo_cut.scored.otio"))
    score = [t for t in scored.tracks if t.name == "Score"]
    assert len(score) == 1
    m = re.search(r"demo scored: 5 scenes, (-?[\d.]+) LUFS", proc.stdout.replace("\n", " "))
    assert m and abs(float(m.group(1)) + 14) <= 0.1, proc.stdout
