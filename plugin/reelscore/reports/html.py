"""``report.html``: one self-contained page per job (inline CSS, the score sheet inline as SVG),
readable offline. Built from the job folder alone; what an interrupted run did not produce is
listed under "Missing" instead of failing the page.
"""

from __future__ import annotations

import os
from html import escape
from pathlib import Path
from typing import Any

from reelscore.fsutil import atomic_write_text
from reelscore.reports.draw import to_svg
from reelscore.reports.jobfolder import JobFolder

REPORT_NAME = "report.html"
CSS = """body{font:14px/1.4 Helvetica,Arial,sans-serif;margin:24px;color:#222}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}
table{border-collapse:collapse;margin:8px 0}th,td{border:1px solid #ccc;padding:3px 8px;
text-align:left;vertical-align:top}th{background:#f0f0f0}.sheet{overflow-x:auto}
.missing li,.warnings li{color:#a03000}"""


def _rows(pairs: list[tuple[str, Any]], cls: str) -> str:
    return "".join(f'<tr class="{cls}"><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>'
                   for k, v in pairs)


def _table(head: list[str], rows: list[list[Any]], cls: str) -> str:
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join(f'<tr class="{cls}">' + "".join(f"<td>{escape(str(c))}</td>" for c in r)
                   + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def _summary(job: JobFolder) -> list[tuple[str, Any]]:
    loud = job.manifest.get("loudness") if isinstance(job.manifest.get("loudness"), dict) else {}
    assert isinstance(loud, dict)
    delivered = loud.get("delivered") or {}
    pairs: list[tuple[str, Any]] = [("programme", job.title), ("job id", job.manifest.get("job_id", "")),
                                    ("reelscore", job.manifest.get("reelscore_version", ""))]
    if job.plan is not None:
        p = job.plan
        pairs += [("scored range", f"{p.range.record_in}-{p.range.record_out}"),
                  ("duration", f"{float(p.range.seconds):.3f} s ({p.range.duration} frames at "
                               f"{p.rate}{', drop frame' if p.drop_frame else ''})"),
                  ("scenes", f"{len(p.scenes)} by {p.scene_policy}"),
                  ("requests", len(p.requests))]
    pairs += [("provider", job.settings.get("provider", "?")),
              ("loudness target", f"{job.settings.get('target_lufs', '?')} LUFS, "
                                  f"{job.settings.get('true_peak', '?')} dBTP"),
              ("delivered", f"{delivered.get('integrated_lufs', '-')} LUFS, "
                            f"true peak {delivered.get('true_peak_dbtp', '-')} dBTP"
                            f"{' (limiter used)' if loud.get('limiter_used') else ''}")]
    if job.recut is not None and not job.recut.dry_run:
        pairs.append(("recut of job", f"{job.recut.previous_job_id}: {len(job.recut.kept)} "
                      f"stretch(es) kept, {len(job.recut.requests)} request(s) sent"))
    before, after = loud.get("before") or {}, loud.get("after") or {}
    if before:
        pairs.append(("loudness before / after", f"{before.get('integrated_lufs')} / "
                      f"{after.get('integrated_lufs')} LUFS (gain {loud.get('gain_db')} dB)"))
    return pairs


def _requests(job: JobFolder) -> list[list[Any]]:
    conform = {c.get("request"): c for c in job.manifest.get("conform") or []
               if isinstance(c, dict)}
    rows: list[list[Any]] = []
    recut = job.recut if job.recut is not None and not job.recut.dry_run else None
    sent_here = {g.id for g in recut.generated()} if recut is not None else None
    for req in job.plan.requests if job.plan is not None else []:
        if sent_here is not None and req.id not in sent_here:
            continue  # a recut update kept this music from the previous job
        rec = job.requests.get(req.id)
        c = conform.get(req.id, {})
        sent = (f"{len(rec.clips)} clip(s), {rec.total_seconds or 0:.2f} s, "
                f"{rec.total_bytes or 0} bytes") if rec is not None and rec.clips else "not sent"
        back = "-"
        if rec is not None and rec.response is not None:
            song = rec.response.metadata.get("song_id")
            back = (f"{rec.response.container}, {rec.response_bytes or 0} bytes, "
                    f"{rec.response.model or '?'}" + (f", song {song}" if song else ""))
        drift = (f"{c['drift_frames']:+.2f} frames ({c.get('action', '')})"
                 if "drift_frames" in c else "-")
        rows.append([req.id, f"{req.range.record_in}-{req.range.record_out}",
                     rec.status if rec is not None else "not sent", sent, back, drift])
    return rows


def _warnings(job: JobFolder) -> list[str]:
    out: list[str] = []
    if job.plan is not None:
        out += job.plan.ignored + job.plan.notes
    for e in job.manifest.get("events") or []:
        if isinstance(e, dict) and e.get("event") in ("refit", "resubmit", "resend"):
            out.append(f"{e['event']}: " + ", ".join(f"{k}={v}" for k, v in e.items()
                                                    if k not in ("event", "at")))
    out += [f"request {rid}: {rec.error}" for rid, rec in job.requests.items() if rec.error]
    return out


def _links(job: JobFolder) -> list[tuple[str, Path]]:
    found: list[tuple[str, Path]] = []
    wav = job.music_wav
    if wav is not None:
        found.append(("score WAV", wav))
    edit = job.outputs.get("edit")
    if isinstance(edit, str):  # recorded as named by the run (maybe relative to its cwd)
        for candidate in (Path(edit), job.dir.parent / Path(edit).name):
            if candidate.is_file():
                found.append(("scored edit", candidate))
                break
    for label, name in (("cue sheet (CSV)", "cues.csv"), ("cue sheet (XLSX)", "cues.xlsx"),
                        ("score sheet (PNG)", "sheet.png"),
                        ("score sheet (SVG)", "sheet.svg"), ("manifest", "manifest.json")):
        if (job.dir / name).is_file():
            found.append((label, job.dir / name))
    return found


def render_report(job: JobFolder, report_dir: Path, sheet_svg: str | None) -> str:
    links = "".join(
        f'<li><a href="{escape(Path(os.path.relpath(p.absolute(), report_dir.absolute())).as_posix())}">'
        f"{escape(label)}</a></li>" for label, p in _links(job))
    missing = "".join(f"<li>{escape(m)}</li>" for m in job.missing)
    warnings = "".join(f"<li>{escape(w)}</li>" for w in _warnings(job))
    sheet = sheet_svg or "<p>no score sheet (the run stopped before planning)</p>"
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>reelscore report - {escape(job.title)}</title><style>{CSS}</style></head><body>",
        f"<h1>reelscore report: {escape(job.title)}</h1>",
        f'<h2>Summary</h2><table id="summary">{_rows(_summary(job), "summary-row")}</table>',
        f'<h2>Missing</h2><ul class="missing" id="missing">{missing}</ul>' if missing else
        '<p id="complete">Complete: every request delivered and every output written.</p>',
        f'<h2>Score sheet</h2><div class="sheet">{sheet}</div>',
        "<h2>Requests</h2>" + _table(["request", "record in-out", "status", "sent",
                                      "came back", "drift"], _requests(job), "request-row"),
        f'<h2>Warnings</h2><ul class="warnings">{warnings or "<li>none</li>"}</ul>',
        f'<h2>Outputs</h2><ul class="outputs">{links}</ul>',
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def write_report(job: JobFolder, path: Path, *, sheet_svg: str | None = None) -> Path:
    """report.html at *path*; *sheet_svg* is the score sheet when the caller has drawn it already
    (drawing an hour's sheet decodes hundreds of thumbnails)."""
    from reelscore.reports.sheet import build_sheet

    svg = sheet_svg
    if svg is None and job.plan is not None:
        svg = to_svg(build_sheet(job))
    atomic_write_text(path, render_report(job, path.parent, svg))
    return path
