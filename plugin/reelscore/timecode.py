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
    return rate in (Fraction(30000, 1001), Fraction(60000, 1001))


def frames_to_tc(frames: int, rate: Fraction, *, drop_frame: bool = False) -> str:
    """Record timecode for an absolute frame count (NDF unless asked, as Resolve and EDLs do)."""
    if frames < 0:
        return "-" + frames_to_tc(-frames, rate, drop_frame=drop_frame)
    if drop_frame and is_drop_frame_rate(rate):
        return opentime.to_timecode(opentime.RationalTime(frames, float(rate)), float(rate), True)
    # Non-drop: nominal integer rate, computed here so float rates cannot shift a frame.
    nominal = round(rate)
    ff = frames % nominal
    total_s = frames // nominal
    return f"{total_s // 3600:02d}:{total_s // 60 % 60:02d}:{total_s % 60:02d}:{ff:02d}"


_TC = re.compile(r"^(\d{1,2})[:;.](\d{2})[:;.](\d{2})([:;.])(\d{2,3})$")


def tc_to_frames(tc: str, rate: Fraction) -> int:
    """Parse ``HH:MM:SS:FF`` (``;`` before the frames = drop frame) to an absolute frame count."""
    m = _TC.match(tc.strip())
    if not m:
        raise InputError(f"cannot read timecode {tc!r}", hint="write it as HH:MM:SS:FF, e.g. 01:00:10:00")
    hh, mm, ss, sep, ff = m.groups()
    nominal = round(rate)
    if int(ff) >= nominal or int(mm) > 59 or int(ss) > 59:
        raise InputError(
            f"timecode {tc!r} is not valid at {rate_label(rate)} fps",
            hint=f"frames run 00-{nominal - 1:02d}, minutes and seconds 00-59",
        )
    if sep == ";" and is_drop_frame_rate(rate):
        return round(opentime.from_timecode(tc.strip(), float(rate)).value)
    return ((int(hh) * 60 + int(mm)) * 60 + int(ss)) * nominal + int(ff)


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
