"""Image checks for untrusted files, and the downscaled copies the board keeps.

The header is read first and the claimed size checked against the caps
before a single pixel is decoded, so a small file that claims billions of
pixels (a decompression bomb) is refused cheaply.
"""

from __future__ import annotations

import io
import logging
import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from knowgen.leaderboard.report import Report, SubmissionLimits

logger = logging.getLogger(__name__)

#: Longest side of the images the board keeps.
BOARD_IMAGE_PX = 320
_READ_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError,
                UnidentifiedImageError, MemoryError)


def check_image(path: Path, rel: str, where: str, limits: SubmissionLimits,
                report: Report) -> bool:
    """True when ``path`` is an image within the caps that decodes completely.

    Problems (too many bytes, an unknown format, too many pixels claimed, a
    truncated or corrupt file) are added to ``report`` under ``where``.
    """
    size = path.stat().st_size
    if size > limits.max_image_bytes:
        report.error(where, f"image {rel!r} is {size:,} bytes; the cap is "
                     f"{limits.max_image_bytes:,}")
        return False
    claimed = png_size(path)
    if claimed is not None and not _size_ok(claimed, rel, where, limits, report):
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(path) as im:
                if not _header_ok(im, rel, where, limits, report):
                    return False
                im.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            report.error(where, f"image {rel!r} claims more pixels than the cap of "
                         f"{limits.max_image_pixels:,} (not decoded: a decompression bomb?)")
            return False
        except _READ_ERRORS as exc:
            reason = _reason(exc).replace(str(path), rel)
            report.error(where, f"image {rel!r} does not decode ({reason})")
            return False
    return True


def _header_ok(im: Image.Image, rel: str, where: str, limits: SubmissionLimits,
               report: Report) -> bool:
    if im.format not in limits.image_formats:
        report.error(where, f"image {rel!r} is {im.format or 'of an unknown format'}; "
                     f"accepted: {', '.join(limits.image_formats)}")
        return False
    return _size_ok(im.size, rel, where, limits, report)


def _size_ok(size: tuple[int, int], rel: str, where: str, limits: SubmissionLimits,
             report: Report) -> bool:
    w, h = size
    if w < 1 or h < 1 or max(w, h) > limits.max_image_side or w * h > limits.max_image_pixels:
        report.error(where, f"image {rel!r} claims {w} x {h} pixels; the caps are "
                     f"{limits.max_image_side} a side and {limits.max_image_pixels:,} in all "
                     "(not decoded: a decompression bomb?)")
        return False
    return True


def png_size(path: Path) -> tuple[int, int] | None:
    """Width and height from a PNG's IHDR chunk (None when ``path`` is not a PNG)."""
    with open(path, "rb") as fh:
        head = fh.read(24)
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) < 200 else text[:200] + "..."


def downscale(src: Path, dest: Path, max_px: int = BOARD_IMAGE_PX) -> Path:
    """Save a copy of ``src`` at most ``max_px`` a side; PNG, or JPEG when that is smaller.

    Only call it on files :func:`check_image` accepted (or trusted files).

    Returns:
        The written path: ``dest`` with the suffix ``.png`` or ``.jpg``.
    """
    with Image.open(src) as im:
        im.draft("RGB", (max_px, max_px))
        im.thumbnail((max_px, max_px))
        has_alpha = im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info
        im = im.convert("RGBA" if has_alpha else "RGB")
    png = io.BytesIO()
    im.save(png, format="PNG", optimize=True)
    data, suffix = png.getvalue(), ".png"
    if not has_alpha:
        jpg = io.BytesIO()
        im.save(jpg, format="JPEG", quality=85)
        if jpg.tell() < len(data):
            data, suffix = jpg.getvalue(), ".jpg"
    out = dest.with_suffix(suffix)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    return out
