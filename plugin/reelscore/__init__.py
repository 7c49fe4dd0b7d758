"""reelscore: score a locked cut with generated music, frame-exact and loudness-normalised."""

from __future__ import annotations

__version__ = "0.1.0"
