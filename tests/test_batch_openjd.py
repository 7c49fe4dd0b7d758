"""``reelscore batch --openjd``: an Open Job Description template a farm can run.

The template for two tiny edits is checked with openjd-model and ``openjd check``, holds no
secret, and runs to completion with the OpenJD CLI (``openjd run``: Render -> Generate -> Finish,
each task a ``reelscore batch`` of one edit resuming from its job folder) against the contract
server: each edit is written, each request generated once. ``score --stop-after`` stops where it
says and the full run goes on from the job folder without sending again.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import opentimelineio as otio
import pytest
from openjd.model import DocumentType, decode_job_template, document_string_to_object

from tests.contract_fixtures import TEST_KEY
from tests.contract_server import V2M, ContractServer
from tests.edits import build_timeline

R = Fraction(25)
BIN = Path(sys.executable).parent


@pytest.fixture()
def server() -> Iterator[ContractServer]:
    srv = ContractServer().start()
    srv.state.elevenlabs_key = TEST_KEY
    srv.state.max_concurrent = 3
    try:
        yield srv
    finally:
        srv.stop()


def env(tmp_path: Path) -> dict[str, str]:
    e = {**os.environ, "COLUMNS": "200", "ELEVENLABS_API_KEY": TEST_KEY,
         "XDG_CONFIG_HOME": str(tmp_path / "xdg"), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    e.pop("REELSCORE_CONFIG", None)
    return e


def edits(tmp_path: Path, coded_video) -> list[Path]:
    src = coded_video(frames=120, rate=R, source_id=54, gop=25, width=160, height=90)
    paths = []
    for i in range(2):
        tl = build_timeline([[("clip", src, 54, 3 + i * 20, 30), ("clip", src, 54, 70, 28)]], R,
                            start_frame=90000, name=f"reel{i}")
        path = tmp_path / "edits" / f"reel{i}.otio"
        path.parent.mkdir(exist_ok=True)
        otio.adapters.write_to_file(tl, str(path))
        paths.append(path)
    return paths


def reelscore(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reelscore", *args], capture_output=True,
                          text=True, env=env(tmp_path), check=False, timeout=600)


def config(tmp_path: Path, server: ContractServer) -> Path:
    path = tmp_path / "farm" / "reelscore.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(f'provider = "elevenlabs"\nbase_url = "{server.url}"\n', "utf-8")
    return path


def test_the_template_validates_and_runs_to_completion_with_openjd(tmp_path, coded_video,
                                                                   server):
    cut = edits(tmp_path, coded_video)
    template = tmp_path / "farm" / "job.yaml"
    outdir = tmp_path / "farm" / "out"
    proc = reelscore(tmp_path, "batch", *map(str, cut), "-o", str(outdir), "--openjd",
                     str(template), "--config", str(config(tmp_path, server)),
                     "--min-scene", "0.5", "--output-format", "pcm_48000", "--concurrency", "2")
    assert proc.returncode == 0, proc.stderr
    assert not outdir.exists(), "--openjd writes the template and runs nothing"
    text = template.read_text("utf-8")
    assert TEST_KEY not in text and "api_key" not in text

    job = decode_job_template(template=document_string_to_object(
        document=text, document_type=DocumentType.YAML))
    assert [s.name for s in job.steps] == ["Render", "Generate", "Finish"]
    assert [[d.dependsOn for d in s.dependencies or []] for s in job.steps] == [
        [], ["Render"], ["Generate"]]
    doc = json.loads(text)
    for step in doc["steps"]:
        (param,) = step["parameterSpace"]["taskParameterDefinitions"]
        assert param["type"] == "PATH" and param["range"] == [str(p) for p in cut]
    assert {p["name"]: p["default"] for p in doc["parameterDefinitions"]
            if p["type"] == "PATH"} == {"OutDir": "out", "Config": "reelscore.toml"}

    openjd = shutil.which("openjd", path=str(BIN))
    assert openjd is not None
    check = subprocess.run([openjd, "check", str(template)], capture_output=True, text=True,
                           check=False, timeout=120)
    assert check.returncode == 0 and "passes validation" in check.stdout, check.stderr

    run = subprocess.run([openjd, "run", str(template), "--step", "Finish", "--run-dependencies",
                          "-p", f"ReelscoreCommand={BIN / 'reelscore'}"],
                         capture_output=True, text=True, env=env(tmp_path), check=False,
                         timeout=900, cwd=tmp_path)
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-4000:]
    for i in range(len(cut)):
        out = outdir / f"reel{i}.scored.otio"
        scored = otio.adapters.read_from_file(str(out))
        assert scored.tracks[-1].name == "Score"
        manifest = json.loads((outdir / f"{out.name}.reelscore" / "manifest.json").read_text())
        assert [r["status"] for r in manifest["requests"].values()] == ["done"]
        assert len(manifest["runs"]) == 3, "render, generate and finish each opened the job"
    assert server.state.charges == 2 and len(server.state.requests_to(V2M)) == 2


def test_score_stops_after_each_stage_and_resumes(tmp_path, coded_video, server):
    cut = edits(tmp_path, coded_video)[0]
    out = tmp_path / "out.otio"
    common = ["--config", str(config(tmp_path, server)), "--min-scene", "0.5",
              "--output-format", "pcm_48000"]
    environ = env(tmp_path)
    environ.pop("ELEVENLABS_API_KEY")  # a render node needs no key
    proc = subprocess.run([sys.executable, "-m", "reelscore", "score", str(cut), "-o", str(out),
                           *common, "--stop-after", "render"], capture_output=True, text=True,
                          env=environ, check=False, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "stopped after render" in proc.stdout
    job = tmp_path / "out.otio.reelscore"
    assert len(list((job / "clips").glob("*.mp4"))) == 2 and not out.exists()
    assert server.state.requests_to(V2M) == []

    proc = reelscore(tmp_path, "score", str(cut), "-o", str(out), *common,
                     "--stop-after", "generate", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["answered"] == 1 and not out.exists()
    assert server.state.charges == 1

    proc = reelscore(tmp_path, "score", str(cut), "-o", str(out), *common)
    assert proc.returncode == 0, proc.stderr
    assert out.is_file() and server.state.charges == 1, "the stored answer was reused"
    proc = reelscore(tmp_path, "score", str(cut), "-o", str(tmp_path / "x.otio"),
                     "--stop-after", "finish")
    assert proc.returncode == 2 and "--stop-after 'finish': not a stage" in proc.stderr
