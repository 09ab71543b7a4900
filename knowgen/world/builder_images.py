"""Rasterising flags and logos, naming flag colours and making look-alikes."""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path

import numpy as np
from PIL import Image

from knowgen.errors import DataError, MissingDependencyError

logger = logging.getLogger(__name__)

FLAG_SIZE = (240, 180)
LOGO_SIZE = 192
#: Logo height in pixels: the 24-unit icon box drawn inside a 32-unit canvas.
LOGO_BOX = 144

#: Names a flag colour can get, see :func:`flag_colours`.
FLAG_COLOUR_NAMES = ("white", "black", "grey", "red", "maroon", "orange", "brown", "yellow",
                     "green", "light blue", "blue", "purple")

_PATH_D_RE = re.compile(r'<path[^>]*\sd="([^"]+)"')


def render_svg(svg: bytes, width: int, height: int) -> Image.Image:
    """Rasterise ``svg`` to an RGB image of ``width`` x ``height`` on white.

    Raises:
        MissingDependencyError: when cairosvg is not installed.
        DataError: when the SVG cannot be drawn.
    """
    try:
        import cairosvg
    except (ImportError, OSError) as exc:  # OSError: the cairo C library is absent
        raise MissingDependencyError("cairosvg", "world-build", "Building the world") from exc
    try:
        png = cairosvg.svg2png(bytestring=svg, output_width=width, output_height=height)
    except Exception as exc:  # cairosvg raises many parser-specific errors
        raise DataError(f"Cannot rasterise an SVG: {exc}") from exc
    layer = Image.open(io.BytesIO(png)).convert("RGBA")
    canvas = Image.new("RGBA", layer.size, (255, 255, 255, 255))
    canvas.alpha_composite(layer)
    return canvas.convert("RGB")


def render_flag(svg_path: Path) -> Image.Image:
    """The flag in ``svg_path`` as a 240x180 RGB image."""
    return render_svg(svg_path.read_bytes(), *FLAG_SIZE)


def icon_path_data(svg_path: Path) -> str:
    """The ``d`` attribute of the single path of a simple-icons SVG.

    Raises:
        DataError: when the file holds no path.
    """
    match = _PATH_D_RE.search(svg_path.read_text(encoding="utf-8"))
    if not match:
        raise DataError(f"{svg_path} holds no <path d=...>; is it a simple-icons icon?")
    return match.group(1)


def render_logo(path_d: str, fill: str) -> Image.Image:
    """A 24x24-unit icon path filled with ``fill``, centred on a white 192x192 canvas."""
    pad = (32 - 24) / 2
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{LOGO_SIZE}" height="{LOGO_SIZE}" '
        f'viewBox="{-pad} {-pad} 32 32"><rect x="{-pad}" y="{-pad}" width="32" height="32" '
        f'fill="#FFFFFF"/><path fill="{fill}" d="{path_d}"/></svg>'
    )
    return render_svg(svg.encode("utf-8"), LOGO_SIZE, LOGO_SIZE)


#: Fill of a monochrome look-alike logo, and the grey used instead for near-black brands.
MONOCHROME_FILL = "#000000"
MONOCHROME_FILL_DARK_BRAND = "#8C8C8C"
#: A brand colour whose brightest channel is below this is near-black (see :func:`monochrome_fill`).
DARK_BRAND_MAX_CHANNEL = 64
#: Share of the canvas a usable logo must cover, and the least mean colour
#: difference between it and its monochrome look-alike on the drawn pixels.
MIN_LOGO_COVER = 0.02
MIN_LOOKALIKE_DIFF = 40.0


def monochrome_fill(hex_code: str) -> str:
    """The colour of a brand's monochrome look-alike: black, or grey for a near-black brand."""
    h = hex_code.lstrip("#")
    brightest = max(int(h[i:i + 2], 16) for i in (0, 2, 4))
    return MONOCHROME_FILL_DARK_BRAND if brightest < DARK_BRAND_MAX_CHANNEL else MONOCHROME_FILL


def usable_logo(logo: Image.Image, lookalike: Image.Image) -> bool:
    """True when ``logo`` shows a visible mark on white that its look-alike visibly differs from.

    The mark (pixels with a channel below 230) must cover :data:`MIN_LOGO_COVER`
    of the canvas, and the look-alike must differ from it by
    :data:`MIN_LOOKALIKE_DIFF` on average over the mark.
    """
    a = np.asarray(logo.convert("RGB"), dtype=np.int16)
    b = np.asarray(lookalike.convert("RGB"), dtype=np.int16)
    drawn = (a < 230).any(axis=2)
    if drawn.mean() < MIN_LOGO_COVER:
        return False
    return float(np.abs(a - b).max(axis=2)[drawn].mean()) > MIN_LOOKALIKE_DIFF


def _classify_pixels(rgb: np.ndarray) -> np.ndarray:
    """Name every pixel with an index into :data:`FLAG_COLOUR_NAMES`."""
    arr = rgb.reshape(-1, 3).astype(np.float32) / 255.0
    mx, mn = arr.max(axis=1), arr.min(axis=1)
    delta = mx - mn
    sat = np.where(mx > 0, delta / np.maximum(mx, 1e-6), 0.0)
    r, g, b = arr[:, 0], arr[:, 1], arr[:, 2]
    safe = np.maximum(delta, 1e-6)
    hue = np.where(mx == r, ((g - b) / safe) % 6, np.where(mx == g, (b - r) / safe + 2,
                                                           (r - g) / safe + 4)) * 60.0
    names = np.full(arr.shape[0], FLAG_COLOUR_NAMES.index("grey"))

    def put(mask: np.ndarray, name: str) -> None:
        names[mask] = FLAG_COLOUR_NAMES.index(name)

    chroma = (sat >= 0.25) & (mx >= 0.2)
    put(~chroma & (mx >= 0.8), "white")
    put(~chroma & (mx < 0.25), "black")
    put(chroma & ((hue < 15) | (hue >= 340)) & (mx < 0.6), "maroon")
    put(chroma & ((hue < 15) | (hue >= 340)) & (mx >= 0.6), "red")
    put(chroma & (hue >= 15) & (hue < 42) & (mx < 0.6), "brown")
    put(chroma & (hue >= 15) & (hue < 42) & (mx >= 0.6), "orange")
    put(chroma & (hue >= 42) & (hue < 70), "yellow")
    put(chroma & (hue >= 70) & (hue < 170), "green")
    light = (hue >= 170) & (hue < 225) & (mx >= 0.6) & ((sat < 0.75) | (hue < 200))
    put(chroma & (hue >= 170) & (hue < 265) & ~light, "blue")
    put(chroma & light, "light blue")
    put(chroma & (hue >= 265) & (hue < 340), "purple")
    return names


def flag_colours(img: Image.Image, min_share: float = 0.05, most: int = 4) -> list[str]:
    """English names of the 2-4 dominant colours of a flag, most common first.

    Every pixel is named by simple hue / saturation / brightness rules; names
    covering at least ``min_share`` of the flag are kept (at least two when the
    flag has two colours at all, at most ``most``).
    """
    counts = np.bincount(_classify_pixels(np.asarray(img.convert("RGB"))),
                         minlength=len(FLAG_COLOUR_NAMES))
    order = sorted(range(len(counts)), key=lambda i: (-counts[i], i))
    share = counts / counts.sum()
    grey = FLAG_COLOUR_NAMES.index("grey")  # mostly anti-aliased edges: needs a large share
    kept = [i for i in order if share[i] >= (3 * min_share if i == grey else min_share)][:most]
    for i in order:
        if len(kept) >= 2 or counts[i] == 0:
            break
        if i not in kept:
            kept.append(i)
    return [FLAG_COLOUR_NAMES[i] for i in kept]


def recolour_flag(img: Image.Image) -> Image.Image:
    """A visibly different flag: hue turned by 120 degrees (R,G,B -> B,R,G).

    Flags that only hold greys (the rotation changes nothing) are inverted instead.
    """
    arr = np.asarray(img.convert("RGB"))
    turned = arr[:, :, [2, 0, 1]]
    if np.abs(turned.astype(np.int16) - arr).mean() < 8:
        turned = 255 - arr
    return Image.fromarray(np.ascontiguousarray(turned), "RGB")


def save_png(img: Image.Image, path: Path) -> None:
    """Save ``img`` as an optimised PNG without metadata (byte-stable).

    An image whose every pixel is grey (the monochrome look-alike logos) is
    stored as 8-bit greyscale, which is lossless and about half the size; any
    other image as RGB.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = img.convert("RGB")
    arr = np.asarray(rgb)
    grey = bool((arr[:, :, 0] == arr[:, :, 1]).all() and (arr[:, :, 1] == arr[:, :, 2]).all())
    (rgb.convert("L") if grey else rgb).save(path, format="PNG", optimize=True)
