"""Rates, frames and timecode: exact rationals, never floats, until an ffmpeg command is built.

OTIO stores rates as doubles; 23.976, 23.98 and Hiero's 23.976024627685547 all mean 24000/1001.
Everything in reelscore works in integer frames at one exact ``Fraction`` rate per timeline.
"""

from __future__ import annotations

import functools
import re
from fractions import Fraction

from opentimelineio import opentime

from reelscore.errors import InputError

_NTSC_BASES = (24, 30, 48, 60, 120)


def exact_rate(rate: float | Fraction | str) -> Fraction:
    """Snap a rate to the exact rational it stands for (23.976 -> 24000/1001, 25.0 -> 25)."""
    if isinstance(rate, float):
        return _exact_float(rate)
    if isinstance(rate, str):
        text = rate.strip()
        if not text:
            raise InputError("empty frame rate", hint="use e.g. --rate 24, 25 or 30000/1001")
        try:
            value = Fraction(text)
        except (ValueError, ZeroDivisionError) as exc:
            raise InputError(
                f"cannot read frame rate {rate!r}", hint="use e.g. --rate 24, 25 or 30000/1001"
            ) from exc
        return exact_rate(value)
    value = Fraction(rate).limit_denominator(1_000_000) if isinstance(rate, float) else rate
    if value <= 0:
        raise InputError(f"frame rate must be positive, got {float(value):g}")
    for base in _NTSC_BASES:
        ntsc = Fraction(base * 1000, 1001)
        if abs(float(value) - float(ntsc)) < 0.005:
            return ntsc
    rounded = round(value)
    if rounded and abs(float(value) - rounded) < 0.0015:
        return Fraction(rounded)
    return value


@functools.lru_cache(maxsize=256)
def _exact_float(rate: float) -> Fraction:
    return exact_rate(Fraction(rate).limit_denominator(1_000_000))


def rate_str(rate: Fraction) -> str:
    return f"{rate.numerator}/{rate.denominator}" if rate.denominator != 1 else str(rate.numerator)


def rate_label(rate: Fraction) -> str:
    """Human label: 23.976, 24, 29.97."""
    if rate.denominator == 1:
        return str(rate.numerator)
    return f"{float(rate):.3f}".rstrip("0").rstrip(".")


def is_drop_frame_rate(rate: Fraction) -> bool:
    """29.97 and 59.94: the only rates SMPTE drop-frame timecode exists for."""
    return rate in (Fraction(30000, 1001), Fraction(60000, 1001))


def infer_drop_frame(rate: Fraction) -> bool:
    """OTIO's rule when a file records no flag (``to_timecode(drop_frame=None)``): drop frame at
    29.97 and 59.94, non-drop everywhere else."""
    return is_drop_frame_rate(rate)


def _dropped_per_minute(rate: Fraction) -> int:
    """Frame numbers skipped at the start of each minute (except every tenth): 2 at 29.97, 4 at 59.94."""
    return 2 * round(rate) // 30


def frames_to_tc(frames: int, rate: Fraction, *, drop_frame: bool = False) -> str:
    """Record timecode for an absolute frame count: ``HH:MM:SS;FF`` when *drop_frame* and the rate
    has drop frame (29.97, 59.94), else ``HH:MM:SS:FF`` counted at the nominal integer rate.

    Drop frame skips the frame *numbers* 00 and 01 (04 at 59.94: 00-03) at the start of every
    minute except minutes 00, 10, 20 ... so the label stays within a frame of the wall clock.
    Hours are not wrapped at 24. Negative counts get a leading ``-``.
    """
    if frames < 0:
        return "-" + frames_to_tc(-frames, rate, drop_frame=drop_frame)
    nominal = round(rate)
    sep = ":"
    if drop_frame and is_drop_frame_rate(rate):
        drop = _dropped_per_minute(rate)
        per_minute = nominal * 60 - drop
        per_ten = nominal * 600 - drop * 9
        tens, rest = divmod(frames, per_ten)
        skipped = drop * 9 * tens + (drop * ((rest - drop) // per_minute) if rest >= drop else 0)
        frames += skipped  # now a count of labels at the nominal rate
        sep = ";"
    ff = frames % nominal
    total_s = frames // nominal
    return f"{total_s // 3600:02d}:{total_s // 60 % 60:02d}:{total_s % 60:02d}{sep}{ff:02d}"


_TC = re.compile(r"^(\d{1,2})([:;.,])(\d{2})([:;.,])(\d{2})([:;.,])(\d{2,3})$")


def tc_to_frames(tc: str, rate: Fraction, *, drop_frame: bool = False) -> int:
    """Parse a record timecode to an absolute frame count.

    Separators may be ``:``, ``;``, ``.`` or ``,``. The label is read as drop frame when the rate
    has drop frame and either *drop_frame* (the timeline's flag) is set or the label contains a
    ``;``; otherwise as non-drop at the nominal rate. A drop-frame label that does not exist
    (``00:01:00;00`` at 29.97) raises InputError naming the nearest labels that do.
    """
    text = tc.strip()
    m = _TC.match(text)
    if not m:
        raise InputError(f"cannot read timecode {tc!r}",
                         hint="write it as HH:MM:SS:FF (or HH:MM:SS;FF for drop frame), e.g. 01:00:10:00")
    hh, _, mm, _, ss, _, ff = (m.group(i) for i in range(1, 8))
    h, mi, s, f = int(hh), int(mm), int(ss), int(ff)
    nominal = round(rate)
    if f >= nominal or mi > 59 or s > 59:
        raise InputError(
            f"timecode {tc!r} is not valid at {rate_label(rate)} fps",
            hint=f"frames run 00-{nominal - 1:02d}, minutes and seconds 00-59",
        )
    labels = ((h * 60 + mi) * 60 + s) * nominal + f
    if not (is_drop_frame_rate(rate) and (drop_frame or ";" in text)):
        return labels
    drop = _dropped_per_minute(rate)
    minutes = h * 60 + mi
    frames = labels - drop * (minutes - minutes // 10)
    if s == 0 and f < drop and mi % 10:
        first = frames + (drop - f)  # the first label of this minute that exists
        raise InputError(
            f"timecode {tc!r} does not exist in {rate_label(rate)} drop-frame timecode "
            f"(frames 00-{drop - 1:02d} are skipped at the start of every minute but each tenth)",
            hint=f"the nearest labels are {frames_to_tc(first - 1, rate, drop_frame=True)} and "
                 f"{frames_to_tc(first, rate, drop_frame=True)}",
        )
    return frames


def rt_frames(t: opentime.RationalTime, rate: Fraction) -> int:
    """A RationalTime as a whole number of frames at *rate* (rounded: OTIO doubles carry noise)."""
    src = _exact_float(float(t.rate))
    if src == rate:
        return round(t.value)
    return round(Fraction(t.value).limit_denominator(1_000_000) * rate / src)


def frames_to_seconds(frames: int | Fraction, rate: Fraction) -> Fraction:
    return Fraction(frames) / rate


def rt(frames: int | float, rate: Fraction) -> opentime.RationalTime:
    return opentime.RationalTime(frames, float(rate))


def tr(start: int | float, duration: int | float, rate: Fraction) -> opentime.TimeRange:
    return opentime.TimeRange(rt(start, rate), rt(duration, rate))
