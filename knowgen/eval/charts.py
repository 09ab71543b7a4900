"""Pictures for run reports, drawn with Pillow (no plotting library needed).

:func:`category_chart` draws per-category scores; :func:`thumbnail_uri` turns a
run image into a small embeddable data URI. The chart is a horizontal bar per category, so long category names stay
readable however many categories a benchmark has. Scores are shown x100, the
way K-Scores are reported, and each bar is coloured by its KnowGen group.
"""

from __future__ import annotations

import base64
import io
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from knowgen.types import KNOWGEN_GROUPS

logger = logging.getLogger(__name__)

#: Bar colour of each KnowGen group; anything else is drawn grey.
GROUP_COLOURS = {
    "science_and_knowledge": (59, 111, 182),
    "pop_culture_and_news": (217, 130, 43),
}
GROUP_LABELS = {
    "science_and_knowledge": "science & knowledge",
    "pop_culture_and_news": "pop culture & news",
}
OTHER_COLOUR = (138, 138, 138)
_INK = (33, 37, 41)
_GRID = (222, 226, 230)
_BG = (255, 255, 255)

WIDTH = 960
THUMB_PX = 256
_ROW = 34
_BAR = 22
_PAD = 24
_TITLE_SIZE = 22
_LABEL_SIZE = 16
_MAX_LABEL_CHARS = 30


_GROUP_OF = {c: g for g, cats in KNOWGEN_GROUPS.items() for c in cats}


@dataclass(frozen=True)
class ChartBar:
    """One bar: a category's overall score in [0, 1], its sample count and its group."""

    label: str
    value: float
    count: int = 0
    group: str = ""


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _short(label: str, limit: int = _MAX_LABEL_CHARS) -> str:
    label = " ".join(str(label).split())
    return label if len(label) <= limit else label[: limit - 1] + "…"


def _clip(value: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return 0.0
    return 0.0 if math.isnan(v) else min(1.0, max(0.0, v))  # NaN counts as 0


def category_chart(bars: Sequence[ChartBar], title: str = "Overall score by category") -> Image.Image:
    """Draw a horizontal bar chart of per-category scores.

    Args:
        bars: The bars, top to bottom. Values are clipped to [0, 1] and shown x100.
        title: The heading drawn above the bars.

    Returns:
        An RGB image, ``WIDTH`` pixels wide; its height grows with the number of bars.
    """
    label_font, title_font = _font(_LABEL_SIZE), _font(_TITLE_SIZE)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    labels = [_short(b.label) for b in bars]
    label_w = max([probe.textlength(t, font=label_font) for t in labels] + [60])
    left = _PAD + int(label_w) + 12
    right = WIDTH - _PAD - 110  # room for "100.0  n=999"
    top = _PAD + _TITLE_SIZE + 20
    n_rows = max(1, len(bars))
    axis_y = top + n_rows * _ROW + 6
    groups = [g for g in GROUP_COLOURS if any(b.group == g for b in bars)]
    if any(b.group not in GROUP_COLOURS for b in bars):
        groups.append("")
    height = axis_y + 28 + (30 if groups else 0) + _PAD

    img = Image.new("RGB", (WIDTH, height), _BG)
    draw = ImageDraw.Draw(img)
    draw.text((_PAD, _PAD), _short(title, 72), font=title_font, fill=_INK)
    span = right - left
    for tick in range(0, 101, 25):
        x = left + span * tick / 100
        draw.line([(x, top - 4), (x, axis_y)], fill=_GRID, width=1)
        draw.text((x, axis_y + 4), str(tick), font=label_font, fill=_INK, anchor="ma")
    if not bars:
        draw.text((left + span / 2, top + _ROW / 2), "no evaluated samples",
                  font=label_font, fill=_INK, anchor="mm")
    for i, (bar, label) in enumerate(zip(bars, labels)):
        cy = top + i * _ROW + _ROW / 2
        value = _clip(bar.value)
        colour = GROUP_COLOURS.get(bar.group, OTHER_COLOUR)
        draw.text((left - 12, cy), label, font=label_font, fill=_INK, anchor="rm")
        x1 = left + span * value
        if x1 > left:
            draw.rectangle([(left, cy - _BAR / 2), (x1, cy + _BAR / 2)], fill=colour)
        note = f"{100 * value:.1f}" + (f"  n={bar.count}" if bar.count else "")
        draw.text((x1 + 8, cy), note, font=label_font, fill=_INK, anchor="lm")
    draw.line([(left, top - 4), (left, axis_y)], fill=_INK, width=1)
    _legend(draw, groups, axis_y + 32, label_font)
    return img


def _legend(draw: ImageDraw.ImageDraw, groups: list[str], y: int,
            font: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> None:
    x = float(_PAD)
    for group in groups:
        colour = GROUP_COLOURS.get(group, OTHER_COLOUR)
        draw.rectangle([(x, y + 3), (x + 14, y + 17)], fill=colour)
        text = GROUP_LABELS.get(group, "other")
        draw.text((x + 20, y + 10), text, font=font, fill=_INK, anchor="lm")
        x += 20 + draw.textlength(text, font=font) + 28


def save_category_chart(bars: Sequence[ChartBar], path: str | Path,
                        title: str = "Overall score by category") -> Path:
    """Draw :func:`category_chart` and save it as a PNG at ``path``.

    Returns:
        The path written.
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    category_chart(bars, title).save(tmp, format="PNG", optimize=True)
    tmp.replace(out)
    logger.debug("Wrote chart %s", out)
    return out


def _number(value: Any) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    return float(value) if ok and not math.isnan(value) else 0.0


def chart_bars(summary: Mapping[str, Any]) -> list[ChartBar]:
    """The chart's bars: categories grouped (science, then pop culture), then any others."""
    cats = summary["scores"].get("categories", {})
    order = {c: i for i, c in enumerate(c for g in KNOWGEN_GROUPS.values() for c in g)}
    names = sorted(cats, key=lambda c: (order.get(str(c).lower(), len(order)), str(c)))
    return [ChartBar(str(c), _number(cats[c]["avg_scores"].get("overall")),
                     int(_number(cats[c].get("count"))),
                     _GROUP_OF.get(str(c).lower(), "")) for c in names]


def thumbnail_uri(path: Path, max_px: int = THUMB_PX) -> str:
    """A ``data:`` URI of the image at ``path``, downscaled to at most ``max_px`` a side.

    Raises:
        OSError: when the file is missing or is not an image Pillow can read.
    """
    try:
        with Image.open(path) as im:
            im.draft("RGB", (max_px, max_px))
            im.thumbnail((max_px, max_px))
            alpha = im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info
            im = im.convert("RGBA" if alpha else "RGB")
    except (Image.DecompressionBombError, ValueError, SyntaxError) as exc:
        raise OSError(f"cannot read image: {exc}") from exc
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=True)
    data, mime = buf.getvalue(), "image/png"
    if im.mode == "RGB" and len(data) > 24_000:  # photos: JPEG is much smaller
        jpg = io.BytesIO()
        im.save(jpg, format="JPEG", quality=85)
        if jpg.tell() < len(data):
            data, mime = jpg.getvalue(), "image/jpeg"
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
