"""report.html (issue 16): written by every score, self-contained, opened in headless Chromium;
an interrupted job's report says what is missing."""

from __future__ import annotations

import json
import shutil
import subprocess
from fractions import Fraction
from html.parser import HTMLParser
from pathlib import Path

import opentimelineio as otio
import pytest

from tests.edits import build_timeline
from tests.test_cli import cli

CHROMIUM = Path("/usr/bin/chromium")


class Page(HTMLParser):
    """Summary rows (th -> td), links, request rows, missing items, external references."""

    def __init__(self) -> None:
        super().__init__()
        self.summary: dict[str, str] = {}
        self.links: list[str] = []
        self.external: list[str] = []
        self.missing: list[str] = []
        self.request_rows: list[list[str]] = []
        self.scene_lines = 0
        self._row: str | None = None
        self._cell: str | None = None
        self._cells: list[str] = []
        self._in_missing = False
        self._li = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "tr":
            self._row, self._cells = a.get("class"), []
        elif tag in ("th", "td") and self._row:
            self._cell = ""
        elif tag == "a" and a.get("href"):
            self.links.append(str(a["href"]))
        elif tag in ("script", "link", "img") or (tag == "image" and not str(
                a.get("href", "")).startswith("data:")):
            self.external.append(tag)
        elif tag == "ul" and a.get("id") == "missing":
            self._in_missing = True
        elif tag == "li" and self._in_missing:
            self._li, self._cell = True, ""
        elif tag == "line" and a.get("class") == "scene-boundary":
            self.scene_lines += 1

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell += data

    def handle_endtag(self, tag: str) -> None:
        if tag in ("th", "td") and self._cell is not None and self._row:
            self._cells.append(self._cell)
            self._cell = None
        elif tag == "tr" and self._row:
            if self._row == "summary-row":
                self.summary[self._cells[0]] = self._cells[1]
            elif self._row == "request-row":
                self.request_rows.append(self._cells)
            self._row = None
        elif tag == "li" and self._li:
            self.missing.append(self._cell or "")
            self._li, self._cell = False, None
        elif tag == "ul":
            self._in_missing = False


def parse(text: str) -> Page:
    page = Page()
    page.feed(text)
    return page


@pytest.fixture(scope="module")
def job(tmp_path_factory, coded_video) -> Path:
    folder = tmp_path_factory.mktemp("report")
    r = Fraction(25)
    a = coded_video(frames=300, rate=r, source_id=51, gop=50)
    tl = build_timeline([[("clip", a, 51, 0, 75), ("clip", a, 51, 150, 100)]], r,
                        start_frame=90000, name="Report")
    otio.adapters.write_to_file(tl, str(folder / "cut.otio"))
    proc = cli("score", "cut.otio", "-o", "scored.otio", "--seed", "6", cwd=folder)
    assert proc.returncode == 0, proc.stderr
    return folder / "scored.otio.reelscore"


def test_every_score_writes_a_self_contained_report(job):
    page = parse((job / "report.html").read_text("utf-8"))
    assert page.summary["scored range"] == "01:00:00:00-01:00:07:00"
    assert page.summary["scenes"] == "2 by cuts" and page.summary["requests"] == "1"
    assert page.summary["delivered"].startswith("-14.0 LUFS")
    assert page.scene_lines == 3 and page.external == [] and page.missing == []
    assert page.request_rows[0][:3] == ["r01", "01:00:00:00-01:00:07:00", "done"]
    assert page.request_rows[0][5].startswith("+0.00 frames")
    for href in page.links:  # relative links that resolve from the report's folder
        assert not href.startswith(("http", "/")) and (job / href).exists(), href
    assert {"cues.csv", "sheet.png", "manifest.json"} <= {Path(h).name for h in page.links}


@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed")
def test_headless_chromium_shows_the_summary_offline(job):
    proc = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--dump-dom", (job / "report.html").as_uri()],
        capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = parse(proc.stdout)
    assert dom.summary["scored range"] == "01:00:00:00-01:00:07:00"
    assert dom.summary["provider"] == "local"
    assert dom.scene_lines == 3  # the score sheet is in the page as SVG


def test_an_interrupted_job_reports_what_is_missing(job, tmp_path):
    broken = tmp_path / "job"
    shutil.copytree(job, broken)
    manifest = json.loads((broken / "manifest.json").read_text())
    manifest["requests"]["r01"]["status"] = "sent"
    for key in ("outputs", "loudness", "conform"):
        manifest.pop(key)
    (broken / "manifest.json").write_text(json.dumps(manifest))
    for name in ("report.html", "cues.csv"):
        (broken / name).unlink()
    shutil.rmtree(broken / "audio")
    proc = cli("report", str(broken))
    assert proc.returncode == 0, proc.stderr
    assert "missing" in proc.stdout
    moved = cli("report", str(job), "-o", str(tmp_path / "r.html"))  # another cwd and folder
    assert moved.returncode == 0, moved.stderr
    links = parse((tmp_path / "r.html").read_text("utf-8")).links
    assert all((tmp_path / h).exists() for h in links) and any(
        h.endswith("scored.otio") for h in links)
    page = parse((broken / "report.html").read_text("utf-8"))
    assert any("request r01" in m and "sent" in m for m in page.missing)
    assert any("score WAV" in m for m in page.missing)
    assert any("scored edit" in m for m in page.missing)
    assert page.request_rows[0][2] == "sent" and page.summary["scored range"]
