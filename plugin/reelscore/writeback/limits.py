"""What each OTIO writer cannot hold, said before or after it writes.

Some edits make a writer raise (explained after the fact by :func:`write_failure`); some it would
write wrong without noticing (refused up front by :func:`check_writable`). Either way the user
gets an :class:`~reelscore.errors.OutputError` naming the limitation and the clip, and nothing is
left at the output path. The checks below describe the adapter versions reelscore pins.
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction

import opentimelineio as otio

from reelscore.errors import OutputError
from reelscore.timecode import exact_rate
from reelscore.writeback.score_track import ADAPTER_ERRORS, ADAPTER_LABELS

WRITE_HINT = "write .otio instead (it keeps everything), or .edl for the score track alone"


def _where(item: otio.core.Item) -> str:
    name = getattr(item, "name", "") or type(item).__name__
    return f"{type(item).__name__.lower()} {name!r}"


def _first(items: Iterator[str], limit: int = 3) -> list[str]:
    out: list[str] = []
    for it in items:
        if it not in out:
            out.append(it)
        if len(out) > limit:
            break
    return out


def _nested_tracks_in_tracks(tl: otio.schema.Timeline) -> Iterator[str]:
    for track in tl.find_children(descended_from_type=otio.schema.Track):
        if isinstance(track.parent(), otio.schema.Track):
            yield f"{_where(track)} is nested directly in a track (not in a stack)"


def _limits_fcp_xml(tl: otio.schema.Timeline) -> Iterator[str]:
    """Why the FCP 7 XML writer (1.0.0) raised on *tl*."""
    yield from _nested_tracks_in_tracks(tl)
    for clip in tl.find_clips():
        ref = clip.media_reference
        fcp = ref.metadata.get("fcp_xml") or {}
        if isinstance(ref, otio.schema.ImageSequenceReference):
            yield f"{_where(clip)} uses an image sequence (the adapter 1.0.0 cannot write them)"
        elif isinstance(ref, otio.schema.GeneratorReference):
            if "effecttype" not in fcp and not fcp.get("media"):
                yield (f"{_where(clip)} is a {ref.generator_kind!r} generator without FCP XML "
                       "effect data (only generators read from FCP XML can be written back)")
        elif isinstance(ref, otio.schema.ExternalReference) and ref.available_range is None:
            yield (f"{_where(clip)} has no media length (available_range), which FCP XML "
                   "files require (EDLs do not record it)")


def _corruptions_fcp_xml(tl: otio.schema.Timeline) -> Iterator[str]:
    """What the FCP 7 XML writer (1.0.0) would write *wrong* without raising."""
    first_at: dict[int, tuple[float, float] | None] = {}
    for item in tl.find_children():
        if not isinstance(item, otio.schema.Clip | otio.schema.Stack):
            continue
        # The writer turns a repeat of an identical clip into <clipitem id="..."/>, which
        # readers resolve to the first one's <start>/<end>: right only at the same position.
        key = hash(otio.core.serialize_json_to_string(item))
        try:
            r = item.range_in_parent()
            at: tuple[float, float] | None = (r.start_time.to_seconds(), r.duration.to_seconds())
        except (ValueError, otio.exceptions.OTIOError):
            at = None
        if key not in first_at:
            first_at[key] = at
        elif first_at[key] != at:
            yield (f"{_where(item)} is used again, identical, at another position (e.g. a "
                   "compound clip used twice); the adapter 1.0.0 writes the repeat as a "
                   "back-reference that readers place at the first use")


_FCPX_RATES = {24, 25, 30, 50, 60}


def _limits_fcpx_xml(tl: otio.schema.Timeline) -> Iterator[str]:
    yield from _nested_tracks_in_tracks(tl)
    rates: set[Fraction] = set()
    for item in tl.find_children(descended_from_type=otio.core.Item):
        if isinstance(item, otio.schema.Transition):
            continue
        rng = item.source_range or (item.trimmed_range() if not isinstance(item, otio.core.Composition) else None)
        if rng is not None:
            rates.add(exact_rate(rng.duration.rate))
    for rate in sorted(rates):
        if rate not in _FCPX_RATES:
            yield (f"the adapter writes only 24, 25, 30, 50 and 60 fps; this edit has "
                   f"{float(rate):.3f} fps items")
    for clip in tl.find_clips():
        ref = clip.media_reference
        if isinstance(ref, otio.schema.ImageSequenceReference | otio.schema.GeneratorReference):
            yield f"{_where(clip)} uses a {type(ref).__name__} (the adapter writes file media only)"
        elif isinstance(ref, otio.schema.ExternalReference) and ref.available_range is None:
            yield f"{_where(clip)} has no media length (available_range), which FCPX assets require"
    for item in tl.find_children():
        if isinstance(item, otio.schema.Gap | otio.schema.Clip | otio.schema.Stack):
            try:
                inside = item.trimmed_range_in_parent() is not None
            except ValueError:
                inside = False
            if not inside:
                yield (f"{_where(item)} lies outside its track's trimmed range (the adapter "
                       "places every item by its trimmed range)")
    video = [t for t in tl.tracks if isinstance(t, otio.schema.Track)
             and t.kind == otio.schema.TrackKind.Video]
    if not video:
        yield "there is no video track to be the primary storyline"
        return
    spine = video[0]
    spine_end = spine.trimmed_range().duration
    for track in tl.tracks:
        if not isinstance(track, otio.schema.Track) or track.kind != otio.schema.TrackKind.Audio:
            continue
        for i, item in enumerate(track):
            if isinstance(item, otio.schema.Clip):
                at = track.trimmed_range_of_child_at_index(i).start_time
                if at >= spine_end:
                    yield (f"audio {_where(item)} starts after the end of the primary storyline "
                           f"(video track 1); FCPX connects audio to it")


def _limits_aaf(tl: otio.schema.Timeline) -> Iterator[str]:
    edit_rate = exact_rate(tl.duration().rate)
    for item in tl.find_children():
        if isinstance(item, otio.schema.Transition):
            op = (item.metadata.get("AAF") or {}).get("OperationGroup")
            if not op or "PointList" not in (item.metadata.get("AAF") or {}):
                yield (f"{_where(item)} was not read from an AAF (the AAF writer needs the AAF "
                       "operation data of every transition)")
            continue
        if not isinstance(item, otio.schema.Clip):
            continue
        ref = item.media_reference
        if isinstance(ref, otio.schema.GeneratorReference):
            if ref.generator_kind != "Slug":
                yield f"{_where(item)} is a {ref.generator_kind!r} generator (AAF writes only slugs)"
            continue
        if ref.available_range is None:
            yield f"{_where(item)} has no media length (available_range), which AAF source mobs need"
        elif exact_rate(ref.available_range.duration.rate) != edit_rate:
            yield (f"{_where(item)}'s media is at {float(exact_rate(ref.available_range.duration.rate)):.3f} fps "
                   f"in a {float(edit_rate):.3f} fps edit (AAF needs one edit rate)")
        if exact_rate(item.duration().rate) != edit_rate:
            yield (f"{_where(item)} is at {float(exact_rate(item.duration().rate)):.3f} fps in a "
                   f"{float(edit_rate):.3f} fps edit (AAF needs one edit rate)")


# Explanations of a writer's failure (tried after it raised), and edits a writer would get wrong
# without raising (refused before writing).
_LIMITS = {"fcp_xml": _limits_fcp_xml, "fcpx_xml": _limits_fcpx_xml, "AAF": _limits_aaf}
_CORRUPTIONS = {"fcp_xml": _corruptions_fcp_xml}


def _cannot_hold(adapter: str, problems: list[str]) -> OutputError:
    more = " (and more)" if len(problems) > 3 else ""
    return OutputError(
        f"the {ADAPTER_LABELS.get(adapter, adapter)} writer cannot hold this edit: "
        + "; ".join(problems[:3]) + more,
        hint=WRITE_HINT,
    )


def write_failure(prepared: otio.schema.Timeline, adapter: str, exc: BaseException) -> OutputError:
    """An OutputError naming why *adapter* raised *exc* on *prepared* (when reelscore knows)."""
    check = _LIMITS.get(adapter)
    problems = _first(check(prepared)) if check is not None else []
    if problems:
        return _cannot_hold(adapter, problems)
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return OutputError(
        f"the {ADAPTER_LABELS.get(adapter, adapter)} writer failed on this edit: "
        f"{type(exc).__name__}{': ' + msg if msg else ''}",
        hint=WRITE_HINT,
    )


def check_writable(prepared: otio.schema.Timeline, adapter: str, *, dry_run: bool = False) -> None:
    """Raise OutputError if *adapter* would write *prepared* wrongly, naming the limitation.

    With *dry_run*, the text formats (FCP 7 XML, FCPX XML) are also written to a string first, so a
    writer that would raise is reported the same way (used by the hook, whose file OTIO writes).
    """
    corrupt = _CORRUPTIONS.get(adapter)
    problems = _first(corrupt(prepared)) if corrupt is not None else []
    if problems:
        raise _cannot_hold(adapter, problems)
    if dry_run and adapter in ("fcp_xml", "fcpx_xml"):
        try:
            otio.adapters.write_to_string(prepared, adapter_name=adapter)
        except ADAPTER_ERRORS as exc:
            raise write_failure(prepared, adapter, exc) from exc
