"""The score reelscore already placed on a Resolve timeline: the job an update builds on.

reelscore places its music (:mod:`reelscore.resolve.placement`) as the job's delivered WAV,
``<job folder>/audio/<name>.score.wav``, on a new audio track (``Score`` by default). An audio
item whose media pool item's ``File Path`` is the WAV a job's manifest names as its
``recut_basis.music_wav`` is that job's score (the job folder is two levels above the WAV, as
``reelscore score --previous`` finds it from an edit's score clip). :func:`previous_score_job`
returns the job of the topmost such item (the latest score placed), else None: then the dialog
offers no update.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reelscore.job import MANIFEST_NAME, read_recut_basis
from reelscore.resolve.api import Ref, as_int


def job_of_wav(path: Any) -> Path | None:
    """The job folder whose manifest names *path* as its delivered music, else None."""
    if not path:
        return None
    wav = Path(str(path))
    manifest = wav.parent.parent / MANIFEST_NAME
    if not manifest.is_file():
        return None
    try:
        data = json.loads(manifest.read_text("utf-8"))
    except (OSError, ValueError):  # unreadable: not a job an update could build on
        return None
    basis = read_recut_basis(data) if isinstance(data, dict) else None
    if basis is None or Path(basis.music_wav).resolve() != wav.resolve():
        return None
    return manifest.parent


def previous_score_job(timeline: Ref) -> Path | None:
    """The job of the latest reelscore score on *timeline*'s audio tracks (see the docstring)."""
    count = as_int(timeline.probe("GetTrackCount", "audio"), 0) or 0
    for index in range(count, 0, -1):
        for item in timeline.probe("GetItemListInTrack", "audio", index) or []:
            mpi = item.GetMediaPoolItem()
            job = job_of_wav(mpi.GetClipProperty("File Path") if mpi is not None else None)
            if job is not None:
                return job
    return None
