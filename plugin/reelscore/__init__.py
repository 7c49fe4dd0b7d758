"""reelscore: score a locked cut with generated music, frame-exact and loudness-normalised.

Pipeline API::

    from reelscore import score_timeline, ScoreSettings
    result = score_timeline(timeline, ScoreSettings(), work_dir=Path("job"))
    result.timeline  # a scored copy: the input plus a "Score" audio track
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reelscore._version import __version__

if TYPE_CHECKING:
    from reelscore.pipeline import ScoreResult, ScoreSettings, score_file, score_timeline

__all__ = ["ScoreResult", "ScoreSettings", "__version__", "score_file", "score_timeline"]


def __getattr__(name: str) -> Any:
    # Lazy: `import reelscore.timecode` must not pull in numpy, OTIO and the pipeline.
    if name in ("ScoreResult", "ScoreSettings", "score_file", "score_timeline"):
        from reelscore import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'reelscore' has no attribute {name!r}")
