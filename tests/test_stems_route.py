"""``reelscore score --separate-tracks`` end to end: the service's music and SFX stems come back as
a ZIP, and both delivered WAVs got one gain computed on their sum (issue 11, item 4)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import opentimelineio as otio

from reelscore.loudness import measure
from reelscore.wavfile import read_wav
from tests.contract_fixtures import TEST_KEY, contract
from tests.edits import build_timeline

__all__ = ["contract"]  # fixture


def test_stems_keep_their_balance_and_the_sum_meets_the_target(tmp_path: Path, coded_video,
                                                               contract):
    rate = Fraction(25)
    src = coded_video(frames=300, rate=rate, source_id=31, gop=25)
    tl = build_timeline([[("clip", src, 31, 0, 100), ("clip", src, 31, 150, 125)]], rate,
                        start_frame=90000)
    edit = tmp_path / "cut.otio"
    otio.adapters.write_to_file(tl, str(edit))
    out = tmp_path / "scored.otio"
    env = {**os.environ, "ELEVENLABS_API_KEY": TEST_KEY, "XDG_CONFIG_HOME": str(tmp_path / "x"),
           "REELSCORE_NO_KEYRING": "1"}
    env.pop("REELSCORE_CONFIG", None)
    proc = subprocess.run(
        [sys.executable, "-m", "reelscore", "score", str(edit), "-o", str(out), "--json",
         "--provider", "elevenlabs", "--base-url", contract.url, "--separate-tracks",
         "--loudness", "ebu-r128"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr
    sent = contract.state.requests_to("/v1/music/video-to-music")
    assert len(sent) == 1 and ("separate_tracks", "true") in sent[0].fields

    manifest = json.loads(Path(json.loads(proc.stdout)["manifest"]).read_text())
    outputs = manifest["outputs"]
    music, sr = read_wav(Path(outputs["music_wav"]))
    sfx, sr2 = read_wav(Path(outputs["sfx_wav"]))
    assert sr == sr2 == 48000 and music.shape == sfx.shape

    # One gain for both: the delivered music-to-SFX level difference is the service's own.
    raw = manifest["loudness"]["stems"]
    assert raw["sfx_silent"] is False
    before_diff = raw["music_lufs_before"] - raw["sfx_lufs_before"]
    after_diff = measure(music, sr).integrated_lufs - measure(sfx, sr).integrated_lufs
    assert abs(before_diff) > 3  # the contract server's stems differ: a real balance to keep
    assert abs(after_diff - before_diff) < 0.05, (before_diff, after_diff)

    # The sum is what meets the spec (EBU R128 here: -23 LUFS, -1 dBTP).
    total = measure(music + sfx, sr)
    assert abs(total.integrated_lufs - (-23.0)) < 0.1
    assert total.true_peak_dbtp <= -1.0 + 0.05
    back = otio.adapters.read_from_file(str(out))
    assert [t.name for t in back.tracks][-2:] == ["Score", "Score SFX"]
