"""The manifest's ``music_changes`` and ``recut`` entries, typed for reporting.

Both are written by the run as plain JSON (``steps/finishing.py``, ``recut_update.py``;
docs/manifest.md); here they are read strictly enough to draw and list them and loosely enough
that fields a later version adds are ignored. An entry that does not validate is reported as
missing by :func:`reelscore.reports.jobfolder.read_job_folder`, never raised.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Entry(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class CutCheck(_Entry):
    """One cut between scenes and where the music was measured to change nearest to it."""

    record_tc: str
    cut_frame: int  # from the scored range's first frame
    nearest_change_frames: float | None = None  # signed: positive = the music changes after

    @property
    def change_frame(self) -> float | None:
        """The measured change, in frames from the scored range's first frame."""
        if self.nearest_change_frames is None:
            return None
        return self.cut_frame + self.nearest_change_frames


class MusicChanges(_Entry):
    summary: str
    tolerance_frames: int
    hits: int = 0
    cuts: list[CutCheck] = Field(default_factory=list)

    def hit(self, cut: CutCheck) -> bool:
        d = cut.nearest_change_frames
        return d is not None and abs(d) <= self.tolerance_frames


class KeptOrigin(_Entry):
    job_id: str
    music_wav: str = ""
    old_start: int  # stack frames of the previous job
    old_end: int
    old_sample_start: int = 0


class KeptStretch(_Entry):
    """Music copied from the previous job to new stack frames ``new_start``-``new_end``."""

    new_start: int
    new_end: int
    origin: KeptOrigin


class GeneratedStretch(_Entry):
    """Music a recut generated anew: the stretch (or request) id, the new stack frames it covers
    without its handles (when the entry names no range, the plan's range of the request), and the
    requests that made it (none named: the id is the request)."""

    id: str
    new_start: int | None = None
    new_end: int | None = None
    requests: list[str] = Field(default_factory=list)


class RecutLineage(_Entry):
    previous_job_id: str
    previous_manifest: str = ""
    dry_run: bool = False
    kept: list[KeptStretch] = Field(default_factory=list)
    requests: list[GeneratedStretch | str] = Field(default_factory=list)
    stretches: list[GeneratedStretch] = Field(default_factory=list, alias="generated")

    def generated(self) -> list[GeneratedStretch]:
        """The generated stretches (``generated[]``, written by updates that send requests), else
        one per entry of ``requests``."""
        if self.stretches:
            return list(self.stretches)
        return [r if isinstance(r, GeneratedStretch) else GeneratedStretch(id=r)
                for r in self.requests]
