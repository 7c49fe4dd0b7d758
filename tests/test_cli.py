"""The `reelscore` command as a user runs it: exit codes, one-line actionable errors, outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import opentimelineio as otio
import pytest

from tests.edits import build_timeline


def cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    full_env.pop("ELEVENLABS_API_KEY", None)
    return subprocess.run([sys.executable, "-m", "reelscore", *args], capture_output=True,
                          text=True, cwd=cwd, env=full_env, check=False, timeout=600)


@pytest.fixture()
def cut(tmp_path, coded_video) -> Path:
    r = Fraction(25)
    a = coded_video(frames=300, rate=r, source_id=21, gop=50)
    tl = build_timeline([[("clip", a, 21, 0, 75), ("clip", a, 21, 150, 100)]], r,
                        start_frame=90000)
    path = tmp_path / "cut.otio"
    otio.adapters.write_to_file(tl, str(path))
    return path


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path, cut):
    out = tmp_path / "out.otio"
    proc = cli("score", str(cut), "-o", str(out), "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "01:00:00:00-01:00:07:00" in proc.stdout and "2 scene(s) by cuts" in proc.stdout
    assert "r01v02: 01:00:03:00-01:00:07:00 (100 frames)" in proc.stdout
    assert not out.exists() and not (tmp_path / "out.otio.reelscore").exists()


def test_plan_json(cut):
    proc = cli("plan", str(cut), "--json", "--range", "01:00:01:00", "01:00:05:00")
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    assert plan["schema_version"] == "reelscore.plan/1"
    assert plan["range"] == {"start": 25, "duration": 100, "rate": "25",
                             "record_in": "01:00:01:00", "record_out": "01:00:05:00"}


def test_score_writes_edit_wav_and_summary(tmp_path, cut):
    out = tmp_path / "scored.otio"
    proc = cli("score", str(cut), "-o", str(out), "--seed", "4", "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["scenes"] == 2 and summary["record_in"] == "01:00:00:00"
    assert abs(summary["integrated_lufs"] + 14) <= 0.1 and summary["true_peak_dbtp"] <= -1
    assert out.exists() and Path(summary["music_wav"]).exists()
    assert "offline sketch engine" in proc.stderr


@pytest.mark.parametrize(("args", "code", "needle"), [
    (["score", "missing.otio", "-o", "x.otio"], 2, "edit file not found"),
    (["score", "{cut}", "-o", "x.otio", "--range", "01:00:05:00", "01:00:01:00"], 2, "OUT is exclusive"),
    (["score", "{cut}", "-o", "x.otio", "--range", "00:59:00:00", "01:00:01:00"], 2, "outside the timeline"),
    (["score", "{cut}", "-o", "x.otio", "--scenes", "markers"], 2, "no markers"),
    (["score", "{cut}", "-o", "x.otio", "--scenes", "sideways"], 2, "use cuts, markers or clips"),
    (["score", "{cut}", "-o", "{cut}", "--force"], 3, "never modifies its input"),
    (["score", "{cut}", "-o", "nofolder/x.otio"], 3, "does not exist"),
    (["score", "{cut}", "-o", "x.otio", "--provider", "nosuch"], 2, "unknown provider"),
    (["plan", "{samples}/screening_example.edl"], 2, "--rate"),
    (["plan", "{samples}/simple_cut.otio"], 2, "clip(s) are offline"),
])
def test_errors_are_one_actionable_message(tmp_path, cut, samples_dir, args, code, needle):
    args = [a.replace("{cut}", str(cut)).replace("{samples}", str(samples_dir)) for a in args]
    proc = cli(*args, cwd=tmp_path)
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr


def test_debug_shows_the_traceback(tmp_path):
    proc = cli("score", "missing.otio", "-o", "x.otio", "--debug", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" in proc.stderr


@pytest.mark.parametrize("debug", [False, True])
def test_other_libraries_log_only_with_debug(debug):
    """Adapters log through the root logger (the AAF adapter's Fraction(0,0) lines): those show
    with --debug only; reelscore's own warnings always."""
    script = ("import logging\nfrom reelscore.console import configure_logging\n"
              f"configure_logging({debug})\n"
              "logging.warning('adapter says Fraction(0,0)')\n"
              "logging.getLogger('reelscore.render').warning('our own warning')\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, check=True)
    assert "our own warning" in proc.stderr
    assert ("Fraction(0,0)" in proc.stderr) is debug
