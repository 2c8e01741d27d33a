"""The digest's chart: open cases per day and the on-time rate per week, as a small PNG.

Drawn with Pillow (already on the machine as a dependency of the test homeserver, small, no
native toolchain): a manager needs the trend at a glance, not a plotting library.
matplotlib would bring numpy and tens of megabytes, and most of a second of import time,
into a bot that draws one picture a day. Pure: data in, PNG bytes out.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from PIL import Image, ImageDraw, ImageFont

WIDTH = 720
HEIGHT = 360
_MARGIN_LEFT = 48
_MARGIN_RIGHT = 16
_BACKGROUND = (255, 255, 255)
_INK = (40, 40, 40)
_GRID = (225, 225, 225)
_LINE = (37, 99, 235)
_GOOD = (22, 163, 74)
_BAD = (220, 38, 38)
_NONE = (200, 200, 200)
# At or above this share kept in time, a week's bar is green.
GOOD_RATE = 0.9


@dataclass(frozen=True)
class ChartData:
    open_per_day: Sequence[tuple[date, int]]  # cases open at the end of each day, oldest first
    rate_per_week: Sequence[tuple[date, float | None]]  # week start, share kept (None: none due)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow built without FreeType: the bitmap font, one size
        return ImageFont.load_default()


def render_chart(data: ChartData, title: str) -> bytes:
    """A PNG: open cases as a line (top), on-time rate per week as bars (bottom)."""
    image = Image.new("RGB", (WIDTH, HEIGHT), _BACKGROUND)
    draw = ImageDraw.Draw(image)
    small, normal = _font(11), _font(13)
    draw.text((_MARGIN_LEFT, 6), title, fill=_INK, font=normal)
    _open_cases(draw, data.open_per_day, (28, 178), small)
    _rates(draw, data.rate_per_week, (212, 330), small)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _x_positions(count: int) -> list[float]:
    span = WIDTH - _MARGIN_LEFT - _MARGIN_RIGHT
    if count <= 1:
        return [_MARGIN_LEFT + span / 2] * count
    return [_MARGIN_LEFT + span * i / (count - 1) for i in range(count)]


def _open_cases(
    draw: ImageDraw.ImageDraw,
    days: Sequence[tuple[date, int]],
    band: tuple[int, int],
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
) -> None:
    top, bottom = band
    draw.text((_MARGIN_LEFT, top), "Open cases per day", fill=_INK, font=font)
    top += 16
    peak = max((count for _, count in days), default=0)
    scale = max(peak, 1)
    for value in sorted({0, scale}):
        y = bottom - (bottom - top) * value / scale
        draw.line([(_MARGIN_LEFT, y), (WIDTH - _MARGIN_RIGHT, y)], fill=_GRID)
        draw.text((4, y - 6), str(value), fill=_INK, font=font)
    xs = _x_positions(len(days))
    points = [
        (x, bottom - (bottom - top) * count / scale) for x, (_, count) in zip(xs, days, strict=True)
    ]
    if len(points) > 1:
        draw.line(points, fill=_LINE, width=2)
    elif points:
        x, y = points[0]
        draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=_LINE)
    if days:
        for index in sorted({0, len(days) // 2, len(days) - 1}):
            label = days[index][0].isoformat()
            width = draw.textlength(label, font=font)
            x = min(max(xs[index] - width / 2, _MARGIN_LEFT), WIDTH - _MARGIN_RIGHT - width)
            draw.text((x, bottom + 3), label, fill=_INK, font=font)


def _rates(
    draw: ImageDraw.ImageDraw,
    weeks: Sequence[tuple[date, float | None]],
    band: tuple[int, int],
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
) -> None:
    top, bottom = band
    draw.text((_MARGIN_LEFT, top), "Promises kept in time, per week", fill=_INK, font=font)
    top += 16
    for share in (0.0, 0.5, 1.0):
        y = bottom - (bottom - top) * share
        draw.line([(_MARGIN_LEFT, y), (WIDTH - _MARGIN_RIGHT, y)], fill=_GRID)
        draw.text((4, y - 6), f"{int(share * 100)}%", fill=_INK, font=font)
    if not weeks:
        return
    span = WIDTH - _MARGIN_LEFT - _MARGIN_RIGHT
    slot = span / len(weeks)
    for index, (start, rate) in enumerate(weeks):
        left = _MARGIN_LEFT + slot * index + slot * 0.15
        right = _MARGIN_LEFT + slot * (index + 1) - slot * 0.15
        if rate is None:
            draw.line([(left, bottom - 1), (right, bottom - 1)], fill=_NONE, width=2)
        else:
            colour = _GOOD if rate >= GOOD_RATE else _BAD
            draw.rectangle([left, bottom - (bottom - top) * rate, right, bottom], fill=colour)
        if index in (0, len(weeks) - 1):
            label = start.isoformat()
            width = draw.textlength(label, font=font)
            x = min(max(left, _MARGIN_LEFT), WIDTH - _MARGIN_RIGHT - width)
            draw.text((x, bottom + 3), label, fill=_INK, font=font)
