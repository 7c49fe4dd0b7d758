"""Every limit of the video-to-music API, checked before anything is uploaded.

The same limits hold for ElevenLabs and for the proxies in front of it (reference/music_api.md
§3 and §11): 1-10 videos, at most 600 s and 200 MB together, a description of at most
``max_description`` characters, at most 10 tags, a known output format, C2PA with MP3 only.
"""

from __future__ import annotations

import re
import stat

from reelscore.errors import InputError
from reelscore.limits import (
    DEFAULT_MAX_DESCRIPTION,
    MAX_REQUEST_BYTES,
    MAX_REQUEST_SECONDS,
    MAX_TAGS,
    MAX_VIDEOS_PER_REQUEST,
)
from reelscore.providers.base import OUTPUT_FORMATS, GenerationRequest


def _mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB ({int(n):,} bytes)"


def validate_video_request(
    request: GenerationRequest,
    *,
    service: str,
    max_description: int = DEFAULT_MAX_DESCRIPTION,
    check_files: bool = True,
) -> list[str]:
    """Check every limit of the video-to-music API before anything is uploaded.

    Raises InputError naming the limit and the numbers; returns warnings (strings).
    """
    rid = request.request_id
    s = request.settings
    n = len(request.clips)
    plan_hint = ("the planner splits programmes into requests of at most 10 clips, 200 MB and "
                 "600 s; re-plan the job (or lower the clip bitrate)")
    if n == 0:
        raise InputError(f"request {rid} has no clips; {service} needs 1 to "
                         f"{MAX_VIDEOS_PER_REQUEST} videos")
    if n > MAX_VIDEOS_PER_REQUEST:
        raise InputError(
            f"request {rid} has {n} videos; {service} accepts at most {MAX_VIDEOS_PER_REQUEST} "
            "per request", hint=plan_hint)
    secs = request.total_seconds
    if secs > MAX_REQUEST_SECONDS + 1e-6:
        raise InputError(
            f"request {rid} is {secs:.3f} s long in {n} videos; {service} accepts at most "
            f"{MAX_REQUEST_SECONDS:.0f} s per request", hint=plan_hint)
    declared = request.total_bytes
    if declared > MAX_REQUEST_BYTES:
        raise InputError(
            f"request {rid} is {_mb(declared)} in {n} videos; {service} accepts at most "
            f"{_mb(MAX_REQUEST_BYTES)} per request", hint=plan_hint)
    if s.description is not None:
        d = s.description
        if not d.strip():
            raise InputError("the description is empty", hint="omit --description or write one")
        if len(d) > max_description:
            raise InputError(
                f"the description is {len(d)} characters; {service} accepts at most "
                f"{max_description}",
                hint="shorten --description (the limit is the provider option max_description)")
    if len(s.tags) > MAX_TAGS:
        raise InputError(f"{len(s.tags)} tags given; {service} accepts at most {MAX_TAGS}",
                         hint="drop some --tag values")
    for t in s.tags:
        if not t.strip():
            raise InputError("a tag is empty", hint="remove the empty --tag")
    if s.output_format not in OUTPUT_FORMATS:
        raise InputError(
            f"unknown output format {s.output_format!r}",
            hint="use one of: " + ", ".join(OUTPUT_FORMATS))
    if s.sign_with_c2pa and not s.output_format.startswith("mp3_"):
        raise InputError(
            f"C2PA signing works with MP3 output only, not {s.output_format!r}",
            hint="choose an mp3_* --output-format or drop --sign-c2pa")
    if s.model_id is not None and (not s.model_id.strip() or re.search(r"\s", s.model_id)):
        raise InputError(f"model id {s.model_id!r} is not valid", hint="e.g. music_v1")
    warnings: list[str] = []
    if s.seed is not None:
        warnings.append("video-to-music has no seed parameter; the seed was not sent")
    if check_files:
        actual = 0
        for i, clip in enumerate(request.clips, 1):
            try:
                st = clip.path.stat()
            except OSError as exc:
                raise InputError(
                    f"clip {i} of request {rid} ({str(clip.path)!r}) cannot be read: "
                    f"{exc.strerror}", hint="re-render the clips (run the job again)") from exc
            if not stat.S_ISREG(st.st_mode):
                raise InputError(f"clip {i} of request {rid} ({str(clip.path)!r}) is not a file")
            if clip.bytes and st.st_size != clip.bytes:
                raise InputError(
                    f"clip {i} of request {rid} ({str(clip.path)!r}) is {st.st_size:,} bytes but "
                    f"was rendered as {clip.bytes:,}; it changed since it was rendered",
                    hint="re-render the clips (delete them from the job folder and run again)")
            actual += st.st_size
        if actual > MAX_REQUEST_BYTES:
            raise InputError(
                f"request {rid} is {_mb(actual)} on disk in {n} videos; {service} accepts at "
                f"most {_mb(MAX_REQUEST_BYTES)} per request", hint=plan_hint)
    return warnings
