"""A deterministic poster layout: pictures on top, captions on dark banners below.

:func:`compose` is the single drawing routine behind both the ``compositor``
generator and the ground-truth images of the offline world, so that an answer
holding the right references and the right quoted text reproduces the
ground truth pixel for pixel.

Layout (sizes scale with the canvas):

* a light background with a margin all round;
* up to :data:`MAX_IMAGES` pictures side by side in the upper area, each scaled
  to fit its panel with its aspect ratio kept, on a white mat with a thin frame;
* up to :data:`MAX_TEXTS` texts, each on its own full-width dark banner below
  the pictures, in large light letters that shrink until the line fits (a
  long text that would get small is broken over two lines instead); words are
  set wide apart so that OCR engines read the spaces back;
* with no pictures, the banners are centred on the canvas.

The function is pure: the same inputs always give identical pixels with a
given Pillow build (the font is the FreeType face that Pillow embeds, laid
out with its basic engine, so no system font is involved).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont, features

#: Bumped whenever the drawing changes (part of ground-truth cache keys).
LAYOUT_VERSION = "2"
MAX_IMAGES = 5
MAX_TEXTS = 3

BACKGROUND = (244, 244, 240)
MAT = (255, 255, 255)
FRAME = (120, 120, 124)
BANNER = (28, 32, 44)
INK = (250, 250, 250)

#: Layout constants as fractions of the canvas' shorter side (or height for banners).
_MARGIN = 0.045
_GAP = 0.03
_BANNER_H = 0.13
_MAT_PAD = 0.012
_TEXT_PAD = 0.035
_MIN_FONT = 8
#: Extra room between words, as a fraction of the font size (wide gaps keep OCR from
#: gluing words together).
_WORD_GAP = 1.1
#: Extra room between letters, as a fraction of the font size (keeps thin letters apart).
_TRACKING = 0.06
#: Largest font size as a fraction of the banner height, for one and for two lines.
_ONE_LINE = 0.62
_TWO_LINES = 0.42
#: A line whose font would fall below this share of the one-line maximum is wrapped.
_WRAP_BELOW = 0.55
_LINE_PITCH = 1.12

_SPACES = re.compile(r"\s+")


@functools.lru_cache(maxsize=64)
def _font(size: int) -> ImageFont.FreeTypeFont:
    if not features.check("freetype2"):  # pragma: no cover - unusual Pillow builds
        raise RuntimeError("Pillow was built without FreeType; install a standard Pillow wheel.")
    return ImageFont.load_default(size=size)  # type: ignore[return-value]


def clean_text(text: str) -> str:
    """Collapse whitespace runs to single spaces and strip the ends."""
    return _SPACES.sub(" ", text).strip()


def word_width(word: str, font: ImageFont.FreeTypeFont) -> float:
    """Advance width of ``word`` drawn letter by letter with the added tracking."""
    return sum(font.getlength(ch) for ch in word) + max(len(word) - 1, 0) * _TRACKING * font.size


def text_width(text: str, font: ImageFont.FreeTypeFont) -> float:
    """Advance width of ``text`` with the added tracking and the widened word gaps."""
    words = text.split(" ")
    gaps = (len(words) - 1) * (font.getlength(" ") + _WORD_GAP * font.size)
    return sum(word_width(w, font) for w in words) + gaps


def fit_font(text: str, max_width: int, max_size: int) -> ImageFont.FreeTypeFont:
    """Largest font (at most ``max_size`` px) whose rendering of ``text`` fits ``max_width``."""
    size = max(max_size, _MIN_FONT)
    while size > _MIN_FONT and text_width(text, _font(size)) > max_width:
        size -= 1
    return _font(size)


def compose(
    images: Sequence[Image.Image],
    texts: Sequence[str],
    size: tuple[int, int] = (512, 512),
) -> Image.Image:
    """Lay pictures and captions out on a clean poster.

    Args:
        images: Pictures to show side by side (the first :data:`MAX_IMAGES` are used).
        texts: Captions, one banner each (the first :data:`MAX_TEXTS` non-blank ones).
        size: Canvas ``(width, height)`` in pixels.

    Returns:
        A new RGB image of ``size``.

    Raises:
        ValueError: when ``size`` is too small to hold a layout.
    """
    width, height = int(size[0]), int(size[1])
    if width < 64 or height < 64:
        raise ValueError(f"Canvas {width}x{height} is too small; use at least 64x64 pixels.")
    lines = [t for t in (clean_text(str(x)) for x in texts) if t][:MAX_TEXTS]
    pictures = list(images)[:MAX_IMAGES]
    short = min(width, height)
    margin, gap = round(_MARGIN * short), round(_GAP * short)
    banner_h = round(_BANNER_H * height)

    canvas = Image.new("RGBA", (width, height), BACKGROUND + (255,))
    text_block = len(lines) * banner_h + max(len(lines) - 1, 0) * gap
    if pictures:
        bottom = height - margin - text_block - (gap if lines else 0)
        _draw_pictures(canvas, pictures, (margin, margin, width - margin, bottom), gap)
        banners_top = bottom + (gap if lines else 0)
    else:
        banners_top = (height - text_block) // 2
    for i, line in enumerate(lines):
        top = banners_top + i * (banner_h + gap)
        _draw_banner(canvas, line, (margin, top, width - margin, top + banner_h))
    return canvas.convert("RGB")


def _draw_pictures(
    canvas: Image.Image, pictures: list[Image.Image], box: tuple[int, int, int, int], gap: int
) -> None:
    left, top, right, bottom = box
    count = len(pictures)
    panel_w = (right - left - (count - 1) * gap) / count
    panel_h = bottom - top
    pad = max(1, round(_MAT_PAD * min(canvas.size)))
    draw = ImageDraw.Draw(canvas)
    for i, picture in enumerate(pictures):
        x0 = round(left + i * (panel_w + gap))
        x1 = round(left + i * (panel_w + gap) + panel_w)
        fitted = _fit(picture, x1 - x0 - 2 * pad, panel_h - 2 * pad)
        px = x0 + (x1 - x0 - fitted.width) // 2
        py = top + (panel_h - fitted.height) // 2
        draw.rectangle(
            (px - pad, py - pad, px + fitted.width + pad - 1, py + fitted.height + pad - 1),
            fill=MAT, outline=FRAME, width=max(1, pad // 3),
        )
        canvas.alpha_composite(fitted, (px, py))


def _fit(picture: Image.Image, max_w: int, max_h: int) -> Image.Image:
    """Scale ``picture`` (as RGBA) to fit ``max_w`` x ``max_h``, keeping its aspect ratio."""
    rgba = picture.convert("RGBA")
    max_w, max_h = max(1, max_w), max(1, max_h)
    scale = min(max_w / rgba.width, max_h / rgba.height)
    new_size = (max(1, min(max_w, round(rgba.width * scale))),
                max(1, min(max_h, round(rgba.height * scale))))
    if new_size == rgba.size:
        return rgba
    return rgba.resize(new_size, Image.Resampling.LANCZOS)


def wrap_lines(text: str, max_width: int, banner_h: int) -> tuple[list[str], ImageFont.FreeTypeFont]:
    """Split ``text`` into the one or two lines that allow the largest font in a banner.

    One line is kept unless breaking it at a word boundary gives clearly larger letters.

    Returns:
        The lines and the font to draw them with.
    """
    one = fit_font(text, max_width, round(banner_h * _ONE_LINE))
    words = text.split(" ")
    if len(words) < 2 or one.size >= _WRAP_BELOW * banner_h * _ONE_LINE:
        return [text], one
    best: tuple[list[str], ImageFont.FreeTypeFont] = ([text], one)
    best_key = (one.size, 0.0)
    for cut in range(1, len(words)):
        lines = [" ".join(words[:cut]), " ".join(words[cut:])]
        size = min(fit_font(line, max_width, round(banner_h * _TWO_LINES)).size for line in lines)
        widths = [text_width(line, _font(size)) for line in lines]
        key = (size, -abs(widths[0] - widths[1]))  # larger letters first, then balance
        if key > best_key:
            best, best_key = (lines, _font(size)), key
    return best


def _draw_banner(canvas: Image.Image, text: str, box: tuple[int, int, int, int]) -> None:
    left, top, right, bottom = box
    draw = ImageDraw.Draw(canvas)
    draw.rectangle(box, fill=BANNER)
    pad = round(_TEXT_PAD * canvas.width)
    lines, font = wrap_lines(text, right - left - 2 * pad, bottom - top)
    _, cap_top, _, cap_bottom = font.getbbox("H", anchor="ls")
    cap_h = cap_bottom - cap_top
    pitch = round(font.size * _LINE_PITCH)
    block_h = (len(lines) - 1) * pitch + cap_h
    baseline = round((top + bottom) / 2 - block_h / 2) + cap_h
    step = font.getlength(" ") + _WORD_GAP * font.size
    for n, line in enumerate(lines):
        x = (left + right) / 2 - text_width(line, font) / 2
        for word in line.split(" "):
            _draw_word(draw, word, (x, baseline + n * pitch), font)
            x += word_width(word, font) + step


def _draw_word(draw: ImageDraw.ImageDraw, word: str, origin: tuple[float, int],
               font: ImageFont.FreeTypeFont) -> None:
    x, baseline = origin
    for ch in word:
        draw.text((round(x), baseline), ch, font=font, fill=INK, anchor="ls")
        x += font.getlength(ch) + _TRACKING * font.size
