"""Scene proxies through Resolve's render queue, so grades, titles, effects and Fusion comps are in
the picture the music is made for.

Per clip: ``MarkIn`` = absolute first frame, ``MarkOut`` = ``MarkIn + frames - 1`` (inclusive,
resolve_api.md §6), a unique ``CustomName`` in a private ``TargetDir``, one job added, started,
polled against a deadline (status text is localized, so completion is judged from
``IsRenderingInProgress()``, ``CompletionPercentage`` and the file), verified by decoding the
output and counting its frames, then deleted. The user's state is put back when the renderer is
closed: current page, current timeline, render format/codec, render mode, and the render settings
(saved as a temporary preset first, since there is no ``GetRenderSettings``). Jobs the user had
queued are never touched.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reelscore import ffmpeg_cli
from reelscore.errors import ReelscoreError
from reelscore.plan import EncodeSettings, PlannedVideo
from reelscore.resolve.api import Ref, ResolveRenderError, as_int, same_object
from reelscore.timecode import frames_to_tc, rt_frames

if TYPE_CHECKING:
    from reelscore.settings import ProgressSink

log = logging.getLogger(__name__)

# Format/codec ids, not UI names ("H.264" fails, "H264" works).
PROXY_FORMAT = ("mp4", "H264")
# A known preset to start from, so a previously loaded "Audio Only" preset cannot leak in.
BASE_PRESETS = ("H.264 Master", "YouTube - 1080p", "YouTube 1080p")
FAILED_WORDS = ("fail", "cancel", "error")


@dataclass(frozen=True)
class RenderedRange:
    path: Path
    mark_in: int
    mark_out: int
    frames: int
    seconds: float  # time the job took


@dataclass
class _SavedState:
    page: str | None = None
    timeline: Any = None
    format_codec: tuple[str, str] | None = None
    mode: int | None = None
    preset: str | None = None


class ResolveRenderer:
    """Implements reelscore.render.Renderer through Resolve's render queue."""

    name = "resolve"
    # One render queue and one set of render settings: one clip at a time.
    max_workers: int | None = 1
    # Resolve decodes in its own process; no ffmpeg decoder of ours to share the cores with.
    decoder_threads: int | None = None

    def __init__(
        self,
        resolve: Ref,
        project: Ref,
        timeline: Ref,
        *,
        start_frame: int,
        rate: Fraction,
        drop_frame: bool = False,
        timeout_s: float | None = None,
        poll_s: float = 0.2,
        export_audio: bool = False,
        progress: ProgressSink | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.resolve = resolve
        self.project = project
        self.timeline = timeline
        self.start_frame = start_frame
        self.rate = rate
        self.drop_frame = drop_frame  # how the timeline shows timecode, for messages
        self.timeout_s = timeout_s
        self.poll_s = poll_s
        self.export_audio = export_audio
        self.progress = progress
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep
        self._saved: _SavedState | None = None
        self._jobs: list[str] = []
        self.rendered: list[RenderedRange] = []
        self.restore_problems: list[str] = []

    # ------------------------------------------------------------------------- open / close

    def __enter__(self) -> ResolveRenderer:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        """Save the user's state and switch to the Deliver page on this timeline."""
        if self._saved is not None:
            return
        saved = _SavedState()
        page = self.resolve.probe("GetCurrentPage")
        saved.page = page if isinstance(page, str) and page else None
        saved.timeline = self.project.probe("GetCurrentTimeline")
        format_codec = self.project.probe("GetCurrentRenderFormatAndCodec")
        if isinstance(format_codec, dict) and format_codec.get("format"):
            saved.format_codec = (str(format_codec["format"]), str(format_codec.get("codec", "")))
        mode = self.project.probe("GetCurrentRenderMode")
        saved.mode = mode if isinstance(mode, int) and not isinstance(mode, bool) else None
        name = f"reelscore-restore-{uuid.uuid4().hex[:8]}"
        if self.project.probe("SaveAsNewRenderPreset", name):
            saved.preset = name
        else:
            log.warning("could not save the current render settings as a preset; they will "
                        "keep reelscore's values after the run")
        self._saved = saved
        self.resolve.probe("OpenPage", "deliver")
        if not same_object(saved.timeline, self.timeline.obj):
            self.project.call("SetCurrentTimeline", self.timeline.obj, expect="true",
                              hint="the timeline may have been deleted; reopen it and run again")

    def close(self) -> None:
        """Delete our jobs and put the user's state back (problems are logged, not raised)."""
        problems: list[str] = []
        if self._jobs and self.project.probe("IsRenderingInProgress"):
            self.project.probe("StopRendering")  # interrupted mid-render: stop our job first
        for job in list(self._jobs):
            if not self.project.probe("DeleteRenderJob", job):
                problems.append(f"render job {job} could not be deleted from the queue")
            self._jobs.remove(job)
        saved = self._saved
        self._saved = None
        if saved is None:
            return
        if saved.preset:
            if not self.project.probe("LoadRenderPreset", saved.preset):
                problems.append("the saved render settings could not be reloaded")
            if not self.project.probe("DeleteRenderPreset", saved.preset):
                problems.append(f"temporary render preset {saved.preset!r} could not be deleted")
        if saved.format_codec and not self.project.probe("SetCurrentRenderFormatAndCodec", *saved.format_codec):
            problems.append(f"render format/codec {saved.format_codec} could not be restored")
        if saved.mode is not None and not self.project.probe("SetCurrentRenderMode", saved.mode):
            problems.append(f"render mode {saved.mode} could not be restored")
        if (saved.timeline is not None and not same_object(saved.timeline, self.timeline.obj)
                and not self.project.probe("SetCurrentTimeline", saved.timeline)):
            problems.append("the previously current timeline could not be reselected")
        if saved.page and not self.resolve.probe("OpenPage", saved.page):
            problems.append(f"page {saved.page!r} could not be reopened")
        for p in problems:
            log.warning("Resolve state: %s", p)
        self.restore_problems.extend(problems)

    # ------------------------------------------------------------------------------- render

    def cache_key(self, video: PlannedVideo, encode: EncodeSettings) -> None:
        """Never reuse a clip: the grades, titles and effects it shows are invisible to us."""
        return None

    def render_video(self, video: PlannedVideo, out_path: Path, encode: EncodeSettings) -> None:
        """The Renderer protocol: ``video.timeline_range`` is stack time at the timeline rate.

        Serialised: the pipeline may call from several threads, but Resolve has one render
        queue and one set of render settings.
        """
        if encode.fraction_rate != self.rate:
            raise ResolveRenderError(
                f"proxy rate {encode.rate} differs from the timeline rate {self.rate}: Resolve "
                "renders scene clips at the timeline rate",
                hint="use --render ffmpeg for proxies at another rate",
            )
        rng = video.timeline_range
        first = self.start_frame + rt_frames(rng.start_time, self.rate)
        count = rt_frames(rng.duration, self.rate)
        with self._lock:
            self.render_range(
                first, count, Path(out_path), width=encode.width, height=encode.height,
                bitrate_kbps=encode.video_kbps, audio=encode.audio,
            )
        if self.progress is not None:
            self.progress.advance("render", count)

    def render_range(
        self,
        first: int,
        count: int,
        out_path: Path,
        *,
        width: int,
        height: int,
        bitrate_kbps: int | None = None,
        audio: bool | None = None,
    ) -> RenderedRange:
        """Render absolute frames ``first .. first+count-1`` to *out_path* (H.264 .mp4)."""
        if count <= 0:
            raise ReelscoreError(f"cannot render {count} frames (at frame {first})")
        self.open()
        mark_in, mark_out = first, first + count - 1
        where = (f"{frames_to_tc(mark_in, self.rate, drop_frame=self.drop_frame)}-"
                 f"{frames_to_tc(mark_out, self.rate, drop_frame=self.drop_frame)}")
        tmp_dir = out_path.parent / f".resolve-render-{uuid.uuid4().hex[:8]}"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._prepare_settings()
            settings: dict[str, Any] = {
                "SelectAllFrames": False,
                "MarkIn": mark_in,
                "MarkOut": mark_out,
                "TargetDir": str(tmp_dir),
                "CustomName": f"reelscore_{out_path.stem}",
                "ExportVideo": True,
                "ExportAudio": self.export_audio if audio is None else audio,
                "FormatWidth": width,
                "FormatHeight": height,
            }
            if bitrate_kbps:
                settings["VideoQuality"] = bitrate_kbps
            if settings["ExportAudio"]:  # the clips' sound: AAC at 48 kHz, as reelscore's own
                settings.update({"AudioCodec": "aac", "AudioSampleRate": 48000})
            self.project.call("SetRenderSettings", settings, expect="true",
                              hint="a setting was refused; check the timeline's render resolution")
            job = self.project.call(
                "AddRenderJob", expect="text",
                hint="the Deliver page refused the job: check the render location is writable",
            )
            self._jobs.append(job)
            timeout = self.timeout_s or 120.0 + 10.0 * float(count / self.rate)
            took = self._run(job, where, timeout)
            produced = self._output_of(job, tmp_dir)
            frames = count_frames(produced)
            if frames != count:
                raise ResolveRenderError(
                    f"Resolve rendered {frames} frames for {where} (MarkIn {mark_in}, MarkOut "
                    f"{mark_out}), expected {count}",
                    hint="the render range did not hold; check for a render preset that forces "
                    "the whole timeline, or use --render ffmpeg",
                )
            if settings["ExportAudio"] and not ffmpeg_cli.probe(produced).has_audio:
                raise ResolveRenderError(
                    f"Resolve rendered {where} without sound, but the clips must carry the "
                    "timeline's audio (--use-audio-as-reference)",
                    hint="check that the timeline's audio tracks are enabled and that no "
                    "render preset turns audio export off, or use --render ffmpeg")
            out_path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(produced, out_path)
            self._delete_job(job)
            result = RenderedRange(out_path, mark_in, mark_out, frames, took)
            self.rendered.append(result)
            return result
        finally:
            shutil.rmtree(tmp_dir, ignore_errors=True)

    # -------------------------------------------------------------------------------- steps

    def _prepare_settings(self) -> None:
        presets = self.project.probe("GetRenderPresetList")
        if isinstance(presets, list):
            for name in BASE_PRESETS:
                if name in presets and self.project.probe("LoadRenderPreset", name):
                    break
        self.project.probe("SetCurrentRenderMode", 1)  # single clip
        self.project.call(
            "SetCurrentRenderFormatAndCodec", *PROXY_FORMAT, expect="true",
            hint="this Resolve cannot render H.264 MP4 (Linux Free builds lack H.264 encoding); "
            "use --render ffmpeg",
        )

    def _run(self, job: str, where: str, timeout: float) -> float:
        began = self._clock()
        deadline = began + timeout
        self.project.call("StartRendering", [job], False, expect="true",
                          hint="another render may be running; wait for it or stop it")
        while True:
            status = self.project.probe("GetRenderJobStatus", job)
            status = status if isinstance(status, dict) else {}
            text = str(status.get("JobStatus", "")).lower()
            if any(w in text for w in FAILED_WORDS):
                raise ResolveRenderError(
                    f"Resolve render job for {where} ended {status.get('JobStatus')!r}"
                    + (f": {status['Error']}" if status.get("Error") else ""),
                    hint="render that range on the Deliver page to see Resolve's error, or use "
                    "--render ffmpeg",
                )
            pct = float(as_int(status.get("CompletionPercentage"), 0) or 0)
            if not self.project.probe("IsRenderingInProgress"):
                return self._clock() - began
            if self._clock() > deadline:
                self.project.probe("StopRendering")
                raise ResolveRenderError(
                    f"Resolve render of {where} did not finish within "
                    f"{deadline - began:.0f} s (at {pct:.0f} %)",
                    hint="raise --render-timeout, or check the Deliver page for a stalled job",
                )
            self._sleep(self.poll_s)

    def _output_of(self, job: str, tmp_dir: Path) -> Path:
        jobs = self.project.probe("GetRenderJobList")
        entry = next((j for j in jobs or [] if isinstance(j, dict) and j.get("JobId") == job), None)
        candidates: list[Path] = []
        if entry and entry.get("OutputFilename"):
            candidates.append(Path(str(entry.get("TargetDir") or tmp_dir)) / str(entry["OutputFilename"]))
        candidates += sorted(p for p in tmp_dir.iterdir() if p.is_file())
        for c in candidates:
            if c.is_file() and c.stat().st_size > 0:
                return c
        status = self.project.probe("GetRenderJobStatus", job)
        raise ResolveRenderError(
            f"Resolve reported the render job done but wrote no file in {tmp_dir} "
            f"(status {status!r})",
            hint="check disk space and that the folder is writable by Resolve",
        )

    def _delete_job(self, job: str) -> None:
        if job in self._jobs and self.project.probe("DeleteRenderJob", job):
            self._jobs.remove(job)


def count_frames(path: Path) -> int:
    """Decode every frame (tiny) and count: a container's duration can round either way."""
    try:
        frames = ffmpeg_cli.decode_gray_frames(path, width=16, height=16,
                                               purpose=f"counting frames of {path.name}")
    except ReelscoreError as exc:
        raise ResolveRenderError(f"Resolve's render {path.name} has no readable video: {exc}",
                                 hint="a loaded 'Audio Only' preset can do this; use --render ffmpeg") from exc
    return int(frames.shape[0])
