"""The edit's audio mixed down, checked by samples whose origin is known.

Every source is a WAV whose content says where it comes from: a tone of its own frequency, or
single-sample clicks at known file samples with their own amplitudes. Edits are built with OTIO
at 24 fps (2000 samples a frame at 48 kHz) and 29.97 (1601.6), so every expected position below
is plain arithmetic on the numbers of the edit, not the code under test.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import opentimelineio as otio
import pytest

from reelscore.errors import InputError, MediaError, OfflineMediaError
from reelscore.mixdown import audio_tracks, mix_edit_audio, offline_audio
from reelscore.timeline import normalise
from reelscore.wavfile import write_wav

SR = 48000
R24 = 24.0


def tone(freq: float, seconds: float, rate: int = SR, channels: int = 2,
         amp: float = 0.25) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    x = (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.repeat(x[:, None], channels, axis=1)


def clicks(positions: dict[int, float], length: int, channels: int = 2) -> np.ndarray:
    x = np.zeros((length, channels), dtype=np.float32)
    for pos, amp in positions.items():
        x[pos] = amp
    return x


def wav(path: Path, samples: np.ndarray, rate: int = SR) -> Path:
    write_wav(path, samples, rate, bits=32)
    return path


def clip(name: str, path: Path, src_in: int, frames: int, rate: float = R24,
         avail_start: int = 0, enabled: bool = True) -> otio.schema.Clip:
    ref = otio.schema.ExternalReference(
        target_url=str(path),
        available_range=otio.opentime.TimeRange(otio.opentime.RationalTime(avail_start, rate),
                                                otio.opentime.RationalTime(100000, rate)))
    c = otio.schema.Clip(name=name, media_reference=ref, source_range=otio.opentime.TimeRange(
        otio.opentime.RationalTime(src_in, rate), otio.opentime.RationalTime(frames, rate)))
    c.enabled = enabled
    return c


def gap(frames: int, rate: float = R24) -> otio.schema.Gap:
    return otio.schema.Gap(source_range=otio.opentime.TimeRange(
        otio.opentime.RationalTime(0, rate), otio.opentime.RationalTime(frames, rate)))


def edit_of(tracks: list[tuple[str, list[otio.core.Item]]], rate: float = R24,
            video_frames: int = 0, path: Path | None = None, start: int = 0):
    tl = otio.schema.Timeline(name="mix")
    tl.global_start_time = otio.opentime.RationalTime(start, rate)
    if video_frames:
        v = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
        v.append(gap(video_frames, rate))
        tl.tracks.append(v)
    for name, items in tracks:
        t = otio.schema.Track(name=name, kind=otio.schema.TrackKind.Audio)
        for it in items:
            t.append(it)
        tl.tracks.append(t)
    return normalise(tl, path=path, rate=Fraction(rate).limit_denominator(1001))


def peak_freq(x: np.ndarray, rate: int = SR) -> float:
    mono = x.mean(axis=1) if x.ndim == 2 else x
    spectrum = np.abs(np.fft.rfft(mono * np.hanning(len(mono))))
    return float(np.fft.rfftfreq(len(mono), 1 / rate)[int(np.argmax(spectrum))])


def level_at(x: np.ndarray, freq: float, rate: int = SR) -> float:
    """Amplitude of *freq* in *x* (first channel), by projection."""
    t = np.arange(len(x)) / rate
    ch = x[:, 0].astype(np.float64)
    return float(2 * np.hypot(np.mean(ch * np.sin(2 * np.pi * freq * t)),
                              np.mean(ch * np.cos(2 * np.pi * freq * t))))


@pytest.fixture()
def media(tmp_path: Path) -> dict[str, Path]:
    return {
        "a440": wav(tmp_path / "a440.wav", tone(440, 6)),
        "b1000": wav(tmp_path / "b1000.wav", tone(1000, 6)),
        "c2500": wav(tmp_path / "c2500.wav", tone(2500, 6)),
        # clicks at file samples 100_000 (+0.5), 100_001 (-0.25), 130_000 (+0.75)
        "clk": wav(tmp_path / "clk.wav", clicks({100_000: 0.5, 100_001: -0.25, 130_000: 0.75},
                                               6 * SR)),
    }


def test_tracks_are_numbered_and_unknown_names_list_the_others(media: dict[str, Path]) -> None:
    edit = edit_of([("DX", [clip("a", media["a440"], 0, 24)]),
                    ("MX", [clip("b", media["b1000"], 0, 24), clip("c", media["c2500"], 0, 24)])],
                   video_frames=48)
    tracks = audio_tracks(edit)
    assert [(t.index, t.name, t.enabled, t.clips) for t in tracks] == [
        (1, "DX", True, 1), (2, "MX", True, 2)]
    with pytest.raises(InputError) as err:
        mix_edit_audio(edit, 0, 24, tracks=["Dialogue"])
    assert "'Dialogue'" in err.value.message and "A1 'DX'" in err.value.message \
        and "A2 'MX'" in err.value.message


def test_clicks_land_on_their_samples_and_gaps_are_silent(media: dict[str, Path]) -> None:
    # Source in at frame 48 (= file sample 96_000): the click at file sample 100_000 is 4_000
    # samples into the clip; the clip sits at record frame 10 (sample 20_000) -> mix sample 24_000.
    edit = edit_of([("FX", [gap(10), clip("clk", media["clk"], 48, 24), gap(6),
                            clip("clk2", media["clk"], 60, 10)])], video_frames=60)
    mix = mix_edit_audio(edit, 0, 60)
    assert mix.shape == (60 * 2000, 2) and mix.dtype == np.float32
    # second clip: in at frame 60 (file 120_000), at record frame 40 (80_000): click 130_000
    # -> 90_000; the first clip ends at file 144_000, so 130_000 is in it too -> 54_000.
    expected = {24_000: 0.5, 24_001: -0.25, 54_000: 0.75, 90_000: 0.75}
    nonzero = {int(i): round(float(mix[i, 0]), 6) for i in np.flatnonzero(mix[:, 0])}
    assert nonzero == expected
    assert np.array_equal(mix[:, 0], mix[:, 1])
    # a range starting mid-edit: sample 0 is frame 11's sample (22_000)
    part = mix_edit_audio(edit, 11, 20)
    assert part.shape == (40_000, 2)
    assert {int(i) for i in np.flatnonzero(part[:, 0])} == {2_000, 2_001, 32_000}


def test_tones_sound_where_their_clips_sit_and_muted_parts_are_absent(
        media: dict[str, Path]) -> None:
    muted = otio.schema.Track(name="muted", kind=otio.schema.TrackKind.Audio)
    edit = edit_of([("A", [clip("a", media["a440"], 0, 24), gap(12),
                           clip("c-off", media["c2500"], 0, 12, enabled=False),
                           clip("b", media["b1000"], 24, 24)])], video_frames=72)
    muted.append(clip("c", media["c2500"], 0, 72))
    muted.enabled = False
    edit.timeline.tracks.append(muted)
    mix = mix_edit_audio(edit, 0, 72)
    assert peak_freq(mix[0:48_000]) == pytest.approx(440, abs=2)
    assert np.max(np.abs(mix[48_000:96_000])) == 0.0  # gap, then a disabled clip
    assert peak_freq(mix[96_000:144_000]) == pytest.approx(1000, abs=2)
    assert level_at(mix, 2500) < 1e-4  # the muted track
    # stereo at unity: the file's sample values come through unchanged
    assert np.max(np.abs(mix[:48_000])) == pytest.approx(0.25, abs=1e-3)
    # the muted track, asked for by name, is heard
    only = mix_edit_audio(edit, 0, 72, tracks=["muted"])
    assert level_at(only, 2500) == pytest.approx(0.25, abs=0.01)
    assert level_at(only, 440) < 1e-4


def test_29_97_positions_follow_the_frame_to_sample_rule(tmp_path: Path) -> None:
    ntsc = 30000 / 1001
    src = wav(tmp_path / "clk.wav", clicks({16_016: 1.0}, 4 * SR))  # file frame 10 exactly
    # clip in at frame 10 (file sample 16_016), at record frame 7: frame 7 starts at sample
    # floor(7 * 1601.6 + 0.5) = 11_211
    edit = edit_of([("A", [gap(7, ntsc), clip("k", src, 10, 20, rate=ntsc)])], rate=ntsc,
                   video_frames=30)
    mix = mix_edit_audio(edit, 0, 30)
    assert mix.shape[0] == 48_048  # floor(30 * 1601.6 + 0.5)
    assert list(np.flatnonzero(mix[:, 0])) == [11_211]


def test_mono_44k1_and_5_1_sources_fold_by_the_documented_rule(tmp_path: Path) -> None:
    mono = wav(tmp_path / "m.wav", tone(440, 3, rate=44100, channels=1, amp=0.5), rate=44100)
    six = np.zeros((3 * SR, 6), dtype=np.float32)
    six[:, 0] = tone(300, 3, channels=1, amp=0.4)[:, 0]  # FL
    six[:, 2] = tone(700, 3, channels=1, amp=0.4)[:, 0]  # FC
    six[:, 3] = tone(60, 3, channels=1, amp=0.4)[:, 0]  # LFE: left out
    six[:, 5] = tone(1100, 3, channels=1, amp=0.4)[:, 0]  # BR
    surround = wav(tmp_path / "s.wav", six)
    edit = edit_of([("A", [clip("mono", mono, 0, 24), clip("six", surround, 0, 24)])],
                   video_frames=48)
    mix = mix_edit_audio(edit, 0, 48)
    first = mix[1000:47_000]
    assert level_at(first, 440) == pytest.approx(0.5 * 0.7071, abs=0.005)
    assert np.allclose(first[:, 0], first[:, 1])
    second = mix[49_000:95_000]
    left, right = second[:, :1], second[:, 1:]
    assert level_at(left, 300) == pytest.approx(0.4, abs=0.005)
    assert level_at(right, 300) < 1e-3
    assert level_at(left, 700) == pytest.approx(0.4 * 0.7071, abs=0.005)
    assert level_at(right, 700) == pytest.approx(0.4 * 0.7071, abs=0.005)
    assert level_at(right, 1100) == pytest.approx(0.4 * 0.7071, abs=0.005)
    assert level_at(left, 60) < 1e-3 and level_at(right, 60) < 1e-3


def test_offline_and_unreadable_audio_are_listed_before_decoding(
        tmp_path: Path, media: dict[str, Path]) -> None:
    junk = tmp_path / "junk.wav"
    junk.write_text("not audio")
    edit = edit_of([("DX", [clip("gone", tmp_path / "gone.wav", 0, 24),
                            clip("junk", junk, 0, 24), clip("ok", media["a440"], 0, 24)])],
                   video_frames=72, start=86400)
    bad = offline_audio(edit, 0, 72)
    assert [(b.clip, b.track, b.timecode) for b in bad] == [
        ("gone", 1, "01:00:00:00"), ("junk", 1, "01:00:01:00")]
    assert bad[0].problem == "offline" and "cannot be read" in bad[1].problem
    with pytest.raises(MediaError) as err:
        mix_edit_audio(edit, 0, 72)
    assert "'gone'" in str(err.value) and "'junk'" in str(err.value)
    # only offline: the offline error with the relink hint
    with pytest.raises(OfflineMediaError) as off:
        mix_edit_audio(edit, 0, 24)
    assert "--media-root" in str(off.value)
    assert offline_audio(edit, 48, 24) == []


def test_aac_sources_land_within_a_few_samples_after_a_seek(tmp_path: Path) -> None:
    """AAC in .m4a: an input seek alone lands up to 480 samples off; the pre-rolled seek does
    not. Clicks survive AAC as short bursts whose peak is within 3 samples of the click."""
    from reelscore.ffmpeg_cli import base_args, run

    src = wav(tmp_path / "k.wav", clicks({s: 0.9 for s in (250_000, 390_000, 555_555)}, 14 * SR))
    m4a = tmp_path / "k.m4a"
    run(base_args() + ["-i", str(src), "-c:a", "aac", "-b:a", "192k", str(m4a)], "aac")
    # in at frame 120 (file sample 240_000), at record frame 5 (10_000), 200 frames long
    edit = edit_of([("A", [gap(5), clip("k", m4a, 120, 200)])], video_frames=205)
    mix = mix_edit_audio(edit, 0, 205)
    for file_sample in (250_000, 390_000):
        expected = 10_000 + file_sample - 240_000
        window = np.abs(mix[expected - 2000:expected + 2000, 0])
        assert abs(int(np.argmax(window)) - 2000) <= 3, file_sample
    assert np.max(np.abs(mix[:10_000])) == 0.0


def test_an_audio_crossfade_is_equal_power(media: dict[str, Path]) -> None:
    # a (440 Hz) cut to b (1000 Hz) at frame 24 with a 6+6 frame crossfade: samples
    # [36_000, 60_000); a plays on past its out point, b starts before its in point.
    edit = edit_of([("A", [clip("a", media["a440"], 0, 24),
                           otio.schema.Transition(in_offset=otio.opentime.RationalTime(6, R24),
                                                  out_offset=otio.opentime.RationalTime(6, R24)),
                           clip("b", media["b1000"], 24, 24)])], video_frames=48)
    mix = mix_edit_audio(edit, 0, 48)
    amp = 0.25
    before, after = mix[30_000:34_800], mix[61_000:65_800]  # whole cycles of both tones
    assert level_at(before, 440) == pytest.approx(amp, abs=0.005) and level_at(before, 1000) < 1e-3
    assert level_at(after, 1000) == pytest.approx(amp, abs=0.005) and level_at(after, 440) < 1e-3
    middle = mix[46_800:49_200]  # around the cut, the middle of the crossfade
    a, b = level_at(middle, 440), level_at(middle, 1000)
    assert a == pytest.approx(amp * 0.7071, abs=0.01) and b == pytest.approx(amp * 0.7071, abs=0.01)
    quarter = mix[40_800:43_200]  # a quarter in: cos(pi/8), sin(pi/8); power stays constant
    a, b = level_at(quarter, 440), level_at(quarter, 1000)
    assert a == pytest.approx(amp * 0.9239, abs=0.01) and b == pytest.approx(amp * 0.3827, abs=0.01)


def test_nested_stacks_sound_with_their_trims(media: dict[str, Path]) -> None:
    inner = otio.schema.Stack(name="compound", source_range=otio.opentime.TimeRange(
        otio.opentime.RationalTime(12, R24), otio.opentime.RationalTime(24, R24)))
    t = otio.schema.Track(name="inner A", kind=otio.schema.TrackKind.Audio)
    t.extend([gap(20), clip("k", media["clk"], 48, 40)])  # clicks at file 100_000/130_000
    inner.append(t)
    edit = edit_of([("A", [gap(10), inner])], video_frames=40)
    # the stack's frame 12 sounds at record frame 10; its clip starts at stack frame 20
    # (record 18, sample 36_000) with file sample 96_000: click 100_000 -> 40_000,
    # 130_000 -> 70_000 (the stack is trimmed at its frame 36 = record 34 = sample 68_000).
    mix = mix_edit_audio(edit, 0, 40)
    assert {int(i) for i in np.flatnonzero(mix[:, 0])} == {40_000, 40_001}


def test_fcp7_xml_audio_levels_are_applied(tmp_path: Path, media: dict[str, Path]) -> None:
    """Written by OTIO's own FCP 7 XML adapter, with an "Audio Levels" filter (level 0.5)
    added to the audio clip as Premiere writes it, then read back through load_edit."""
    from xml.etree import ElementTree

    from reelscore.timeline import load_edit

    tl = otio.schema.Timeline(name="levels")
    tl.global_start_time = otio.opentime.RationalTime(0, R24)
    v = otio.schema.Track(name="V1")
    v.append(gap(24))
    a = otio.schema.Track(name="A1", kind=otio.schema.TrackKind.Audio)
    a.append(clip("a", media["a440"], 0, 24))
    tl.tracks.extend([v, a])
    path = tmp_path / "levels.xml"
    otio.adapters.write_to_file(tl, str(path))
    tree = ElementTree.parse(path)
    item = tree.getroot().find(".//audio/track/clipitem")
    assert item is not None
    item.append(ElementTree.fromstring(
        "<filter><effect><name>Audio Levels</name><effectid>audiolevels</effectid>"
        "<effectcategory>audiolevels</effectcategory><effecttype>audiolevels</effecttype>"
        "<mediatype>audio</mediatype><parameter authoringApp=\"PremierePro\">"
        "<parameterid>level</parameterid><name>Level</name><valuemin>0</valuemin>"
        "<valuemax>3.98109</valuemax><value>0.5</value></parameter></effect></filter>"))
    tree.write(path)
    edit = load_edit(path)
    mix = mix_edit_audio(edit, 0, 24)
    assert level_at(mix[2000:46_000], 440) == pytest.approx(0.125, abs=0.003)


def test_aaf_clip_gain_is_read_from_the_adapters_metadata(samples_dir: Path) -> None:
    """Avid's "Mono Audio Gain" as the AAF adapter keeps it (the sample is at unity); a copy
    of the same effect at 1/2 reads as 0.5, and the walk applies it to the clip's piece."""
    import copy

    from reelscore.mixdown_layout import build_layout
    from reelscore.mixdown_levels import clip_gain, effect_gain
    from reelscore.timeline import load_edit

    edit = load_edit(samples_dir / "2997fps-DFTC.aaf")
    clips = [c for t in edit.timeline.audio_tracks() for c in t.find_clips()]
    assert clips and all(clip_gain(c) == 1.0 for c in clips)
    effect = clips[0].effects[0]
    assert effect_gain(effect) == 1.0
    half = copy.deepcopy(effect)
    half.metadata["AAF"]["Parameters"]["Amplitude multiplier"] = "50000000/100000000"
    assert effect_gain(half) == 0.5
    clips[0].effects.append(half)
    layout = build_layout(edit.timeline, Fraction(0), Fraction(10))
    assert [p.gain for p in layout.pieces if p.track == 1] == [0.5]
    assert {p.gain for p in layout.pieces if p.track != 1} == {1.0}
    assert [t.name for t in audio_tracks(edit)] == ["Audio 1"] * 6
