"""Burnt-in text for review movies, drawn with a built-in 5x7 pixel font. Pure numpy.

No system font and no ffmpeg ``drawtext`` (often built without it) are needed: the font holds
the digits, the timecode separators ``: ; .``, ``-``, ``/``, a space and the capital letters
reviews use (scene ``S``, request ``R``, ``SC``, ``TC`` ...). :func:`burn` draws a line of text
white on a black box at the frame's bottom left, scaled to the frame's height (one font pixel per
90 lines of picture), leaving the rest of the frame untouched.
"""

from __future__ import annotations

import numpy as np

# 5 columns x 7 rows per glyph, one string per row, "#" = ink.
_GLYPHS: dict[str, tuple[str, ...]] = {
    "0": (" ### ", "#   #", "#  ##", "# # #", "##  #", "#   #", " ### "),
    "1": ("  #  ", " ##  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "),
    "2": (" ### ", "#   #", "    #", "   # ", "  #  ", " #   ", "#####"),
    "3": ("#####", "   # ", "  #  ", "   # ", "    #", "#   #", " ### "),
    "4": ("   # ", "  ## ", " # # ", "#  # ", "#####", "   # ", "   # "),
    "5": ("#####", "#    ", "#### ", "    #", "    #", "#   #", " ### "),
    "6": ("  ## ", " #   ", "#    ", "#### ", "#   #", "#   #", " ### "),
    "7": ("#####", "    #", "   # ", "  #  ", " #   ", " #   ", " #   "),
    "8": (" ### ", "#   #", "#   #", " ### ", "#   #", "#   #", " ### "),
    "9": (" ### ", "#   #", "#   #", " ####", "    #", "   # ", " ##  "),
    ":": ("     ", "  #  ", "  #  ", "     ", "  #  ", "  #  ", "     "),
    ";": ("     ", "  #  ", "  #  ", "     ", "  #  ", "  #  ", " #   "),
    ".": ("     ", "     ", "     ", "     ", "     ", " ##  ", " ##  "),
    "-": ("     ", "     ", "     ", "#####", "     ", "     ", "     "),
    "/": ("    #", "    #", "   # ", "  #  ", " #   ", "#    ", "#    "),
    " ": ("     ",) * 7,
    "A": (" ### ", "#   #", "#   #", "#####", "#   #", "#   #", "#   #"),
    "C": (" ### ", "#   #", "#    ", "#    ", "#    ", "#   #", " ### "),
    "E": ("#####", "#    ", "#    ", "#### ", "#    ", "#    ", "#####"),
    "N": ("#   #", "##  #", "# # #", "#  ##", "#   #", "#   #", "#   #"),
    "R": ("#### ", "#   #", "#   #", "#### ", "# #  ", "#  # ", "#   #"),
    "S": (" ####", "#    ", "#    ", " ### ", "    #", "    #", "#### "),
    "T": ("#####", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  "),
}
_W, _H = 5, 7
_MASKS = {ch: np.array([[c == "#" for c in row] for row in rows], dtype=bool)
          for ch, rows in _GLYPHS.items()}


def text_mask(text: str, scale: int = 1) -> np.ndarray:
    """The ink of *text* as a boolean (rows, columns) array; one blank column between glyphs.
    Characters the font lacks raise ValueError."""
    missing = sorted({c for c in text.upper() if c not in _MASKS})
    if missing:
        raise ValueError(f"the burn-in font has no {''.join(missing)!r}")
    gap = np.zeros((_H, 1), dtype=bool)
    parts: list[np.ndarray] = []
    for ch in text.upper():
        parts.extend((_MASKS[ch], gap))
    mask = np.concatenate(parts[:-1], axis=1) if parts else np.zeros((_H, 0), dtype=bool)
    return np.kron(mask, np.ones((scale, scale), dtype=bool)).astype(bool)


def scale_for(height: int) -> int:
    """Font pixels per picture line: 1 up to 179 lines, 2 from 180, ... (1 per 90 lines)."""
    return max(1, height // 90)


def burn(frame: np.ndarray, text: str) -> np.ndarray:
    """*frame* (height, width, 3) uint8 with *text* drawn at its bottom left, in place.

    The text sits on a black box one font pixel wider than the text on every side; text wider
    than the frame is cut at the right edge.
    """
    height, width = frame.shape[:2]
    s = scale_for(height)
    mask = text_mask(text, s)
    pad = s
    box_h, box_w = mask.shape[0] + 2 * pad, min(width, mask.shape[1] + 2 * pad)
    y0 = height - box_h - pad
    x0 = pad
    box_w = min(box_w, width - x0)
    frame[y0:y0 + box_h, x0:x0 + box_w] = 0
    ink = mask[:, : max(0, box_w - pad)]
    region = frame[y0 + pad:y0 + pad + ink.shape[0], x0 + pad:x0 + pad + ink.shape[1]]
    region[ink] = 255
    return frame
