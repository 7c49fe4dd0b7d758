"""One drawing, two renderings: SVG written by hand and PNG rasterised with numpy and Pillow.

The drawing is a list of primitives in pixel coordinates. Both renderings carry everything:
shapes and pictures are rasterised with numpy at the columns the SVG puts them (a 1-px line at x
covers column ``floor(x)``), and text is drawn last with Pillow's built-in font (Aileron, shipped
inside the Pillow wheel: no system fonts needed), anchored as SVG anchors it (x = start of the
text, y = its baseline) at the SVG's font size.
"""

from __future__ import annotations

import base64
import struct
import zlib
from dataclasses import dataclass, field
from html import escape

import numpy as np
from numpy.typing import NDArray

RGB = NDArray[np.uint8]


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    w: float
    h: float
    fill: str
    cls: str = ""


@dataclass(frozen=True)
class Line:
    x1: float
    y1: float
    x2: float
    y2: float
    stroke: str
    cls: str = ""
    dash: bool = False
    data: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Bars:
    """Vertical bars, one per column: a waveform's envelope."""

    xs: NDArray[np.float64]
    top: NDArray[np.float64]
    bottom: NDArray[np.float64]
    stroke: str
    cls: str = ""


@dataclass(frozen=True)
class Polyline:
    points: list[tuple[float, float]]
    stroke: str
    cls: str = ""


@dataclass(frozen=True)
class Text:
    x: float
    y: float
    text: str
    size: int = 11
    fill: str = "#222222"
    cls: str = ""
    anchor: str = "start"  # or "end": x is where the text ends (SVG text-anchor)


@dataclass(frozen=True)
class Image:
    x: float
    y: float
    rgb: RGB  # (height, width, 3); drawn at its own size
    cls: str = ""


Item = Rect | Line | Bars | Polyline | Text | Image


@dataclass
class Drawing:
    width: int
    height: int
    items: list[Item] = field(default_factory=list)


def _rgb(colour: str) -> tuple[int, int, int]:
    c = colour.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


def _attrs(cls: str, data: dict[str, str] | None = None) -> str:
    out = f' class="{escape(cls)}"' if cls else ""
    for k, v in (data or {}).items():
        out += f' data-{escape(k)}="{escape(v)}"'
    return out


def _n(v: float) -> str:
    return f"{v:.2f}".rstrip("0").rstrip(".")


def to_svg(drawing: Drawing) -> str:
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{drawing.width}" '
             f'height="{drawing.height}" viewBox="0 0 {drawing.width} {drawing.height}" '
             'font-family="Helvetica, Arial, sans-serif">',
             f'<rect x="0" y="0" width="{drawing.width}" height="{drawing.height}" fill="#ffffff"/>']
    for it in drawing.items:
        if isinstance(it, Rect):
            parts.append(f'<rect x="{_n(it.x)}" y="{_n(it.y)}" width="{_n(it.w)}" '
                         f'height="{_n(it.h)}" fill="{it.fill}"{_attrs(it.cls)}/>')
        elif isinstance(it, Line):
            dash = ' stroke-dasharray="4 3"' if it.dash else ""
            parts.append(f'<line x1="{_n(it.x1)}" y1="{_n(it.y1)}" x2="{_n(it.x2)}" '
                         f'y2="{_n(it.y2)}" stroke="{it.stroke}"{dash}'
                         f'{_attrs(it.cls, it.data)}/>')
        elif isinstance(it, Bars):
            d = " ".join(f"M{_n(x)} {_n(t)}V{_n(max(b, t + 1))}"
                         for x, t, b in zip(it.xs, it.top, it.bottom))
            parts.append(f'<path d="{d}" stroke="{it.stroke}" fill="none"{_attrs(it.cls)}/>')
        elif isinstance(it, Polyline):
            pts = " ".join(f"{_n(x)},{_n(y)}" for x, y in it.points)
            parts.append(f'<polyline points="{pts}" stroke="{it.stroke}" fill="none"'
                         f'{_attrs(it.cls)}/>')
        elif isinstance(it, Text):
            end = ' text-anchor="end"' if it.anchor == "end" else ""
            parts.append(f'<text x="{_n(it.x)}" y="{_n(it.y)}" font-size="{it.size}" '
                         f'fill="{it.fill}"{end}{_attrs(it.cls)}>{escape(it.text)}</text>')
        else:
            uri = "data:image/png;base64," + base64.b64encode(png_bytes(it.rgb)).decode("ascii")
            h, w = it.rgb.shape[:2]
            parts.append(f'<image x="{_n(it.x)}" y="{_n(it.y)}" width="{w}" height="{h}" '
                         f'href="{uri}"{_attrs(it.cls)}/>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def rasterise(drawing: Drawing) -> RGB:
    """The drawing as an RGB array (text on top of everything else)."""
    canvas = np.full((drawing.height, drawing.width, 3), 255, dtype=np.uint8)
    for it in drawing.items:
        if isinstance(it, Rect):
            x0, y0 = max(0, round(it.x)), max(0, round(it.y))
            canvas[y0:max(y0, round(it.y + it.h)), x0:max(x0, round(it.x + it.w))] = _rgb(it.fill)
        elif isinstance(it, Line):
            _line(canvas, it.x1, it.y1, it.x2, it.y2, _rgb(it.stroke), dash=it.dash)
        elif isinstance(it, Bars):
            colour = _rgb(it.stroke)
            for x, t, b in zip(it.xs, it.top, it.bottom):
                _line(canvas, x, t, x, max(b, t + 1), colour)
        elif isinstance(it, Polyline):
            colour = _rgb(it.stroke)
            for (xa, ya), (xb, yb) in zip(it.points, it.points[1:]):
                _line(canvas, xa, ya, xb, yb, colour)
        elif isinstance(it, Image):
            h, w = it.rgb.shape[:2]
            x0, y0 = round(it.x), round(it.y)
            region = canvas[y0:y0 + h, x0:x0 + w]
            region[...] = it.rgb[:region.shape[0], :region.shape[1]]
    texts = [it for it in drawing.items if isinstance(it, Text)]
    return _draw_texts(canvas, texts) if texts else canvas


def _draw_texts(canvas: RGB, texts: list[Text]) -> RGB:
    from PIL import Image as PILImage
    from PIL import ImageDraw, ImageFont

    picture = PILImage.fromarray(canvas, "RGB")
    pen = ImageDraw.Draw(picture)
    fonts: dict[int, ImageFont.FreeTypeFont | ImageFont.ImageFont] = {}
    for it in texts:
        if it.size not in fonts:
            fonts[it.size] = ImageFont.load_default(size=it.size)
        pen.text((it.x, it.y), it.text, fill=_rgb(it.fill), font=fonts[it.size],
                 anchor="rs" if it.anchor == "end" else "ls")
    return np.asarray(picture, dtype=np.uint8).copy()


def _line(canvas: RGB, x1: float, y1: float, x2: float, y2: float,
          colour: tuple[int, int, int], *, dash: bool = False) -> None:
    """A one-pixel line; pixel column of x is ``floor(x)`` (as a 1-px SVG stroke at x covers)."""
    steps = int(max(abs(x2 - x1), abs(y2 - y1))) + 1
    xs = np.floor(np.linspace(x1, x2, steps)).astype(int)
    ys = np.floor(np.linspace(y1, y2, steps)).astype(int)
    keep = (xs >= 0) & (xs < canvas.shape[1]) & (ys >= 0) & (ys < canvas.shape[0])
    if dash:
        keep &= (np.arange(steps) % 7) < 4
    canvas[ys[keep], xs[keep]] = colour


def png_bytes(rgb: RGB) -> bytes:
    """An 8-bit RGB PNG (filter 0 on every row, zlib level 6)."""
    h, w = rgb.shape[:2]
    raw = np.zeros((h, 1 + w * 3), dtype=np.uint8)
    raw[:, 1:] = rgb.reshape(h, w * 3)

    def chunk(tag: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + tag + body
                + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw.tobytes(), 6)) + chunk(b"IEND", b""))
