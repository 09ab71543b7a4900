"""The ``compositor`` generator: a deterministic layout engine, not a model.

It understands exactly two things in a request:

* the reference images, which it places side by side, in order, at most
  :data:`~knowgen.generators.layout.MAX_IMAGES` of them;
* the strings the prompt puts in double quotes (straight ``"..."`` or curly
  ``“...”``), which it prints on banners below the pictures, in order of first
  appearance, duplicates dropped, at most
  :data:`~knowgen.generators.layout.MAX_TEXTS` of them.

Everything else in the prompt is ignored. Without references it cannot know
what a flag or a logo looks like, so it "imagines" a picture: soft shapes and
colours derived from a hash of the prompt and the seed, the same every time.

Because it draws with the same :func:`~knowgen.generators.layout.compose` as
the ground truth of the offline world, a perfect answer (the official images
as references, the required text quoted in order) reproduces the ground
truth pixel for pixel. It runs on a CPU in milliseconds and is the default
generator of tests, demos and offline evaluation.

Example:
    >>> gen = Compositor(size=256)
    >>> gen.generate('A poster titled "HELLO"', []).size
    (256, 256)
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

from knowgen.errors import ConfigError, ToolError
from knowgen.generators.layout import MAX_IMAGES, MAX_TEXTS, compose
from knowgen.quoting import quoted_texts as _quoted

logger = logging.getLogger(__name__)

_PLACEHOLDER_SIZE = (480, 320)


def quoted_texts(prompt: str, limit: int = MAX_TEXTS) -> list[str]:
    """The quoted strings of ``prompt`` the compositor draws: at most ``limit`` of them.

    See :func:`knowgen.quoting.quoted_texts`.
    """
    return _quoted(prompt, limit)


def load_image(path: str | Path) -> Image.Image:
    """Open an image file fully (so that a broken file fails here, not later).

    Raises:
        ToolError: when the file is missing or is not a readable image.
    """
    try:
        with Image.open(path) as img:
            img.load()
            return img.copy()
    except FileNotFoundError as exc:
        raise ToolError(f"Reference image {path} does not exist; pass files that exist.") from exc
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ToolError(
            f"Reference image {path} cannot be read as an image ({exc}); pass PNG, JPEG, "
            "WebP or GIF files."
        ) from exc


def placeholder(prompt: str, seed: int = 0, size: tuple[int, int] = _PLACEHOLDER_SIZE) -> Image.Image:
    """An "imagined" picture: soft pastel shapes drawn from a hash of ``prompt`` and ``seed``.

    It depicts nothing in particular; the same inputs always give the same pixels.
    """
    digest = hashlib.sha256(f"{seed}\x00{prompt}".encode()).digest()
    rng = random.Random(digest)
    width, height = size

    def pastel() -> tuple[int, int, int]:
        return tuple(rng.randint(110, 235) for _ in range(3))  # type: ignore[return-value]

    top, bottom = pastel(), pastel()
    img = Image.new("RGB", size)
    draw = ImageDraw.Draw(img)
    for y in range(height):
        t = y / max(height - 1, 1)
        draw.line([(0, y), (width, y)], fill=tuple(round(a + (b - a) * t) for a, b in zip(top, bottom)))
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    shapes = ImageDraw.Draw(layer)
    for _ in range(rng.randint(3, 6)):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        rx, ry = rng.uniform(0.1, 0.35) * width, rng.uniform(0.1, 0.35) * height
        box = (cx - rx, cy - ry, cx + rx, cy + ry)
        fill = pastel() + (rng.randint(120, 200),)
        if rng.random() < 0.5:
            shapes.ellipse(box, fill=fill)
        else:
            shapes.rounded_rectangle(box, radius=min(rx, ry) / 2, fill=fill)
    scene = Image.alpha_composite(img.convert("RGBA"), layer).convert("RGB")
    return scene.filter(ImageFilter.GaussianBlur(radius=max(width, height) / 80))


class Compositor:
    """Deterministic layout engine registered as generator ``"compositor"``.

    Args:
        size: Width and height of the output image in pixels.

    Raises:
        ConfigError: when ``size`` is not an integer of at least 64.
    """

    def __init__(self, size: int = 512):
        if isinstance(size, bool) or not isinstance(size, int) or size < 64:
            raise ConfigError(f"compositor size must be an integer >= 64, got {size!r}.")
        self.size = size

    def generate(self, prompt: str, references: Sequence[str | Path], seed: int = 0) -> Image.Image:
        """Lay out the references and the quoted strings of ``prompt``.

        Args:
            prompt: Generation prompt; only its double-quoted strings are used.
            references: Reference image files, in order (the first five are used).
            seed: Varies the imagined picture when there are no references.

        Returns:
            An RGB image of ``size`` x ``size`` pixels.

        Raises:
            ToolError: when a reference file is missing or unreadable.
        """
        texts = quoted_texts(prompt)
        refs = list(references)
        if len(refs) > MAX_IMAGES:
            logger.debug("compositor uses the first %d of %d references", MAX_IMAGES, len(refs))
        images = [load_image(p) for p in refs[:MAX_IMAGES]]
        if not images:
            images = [placeholder(prompt, seed)]
        return compose(images, texts, (self.size, self.size))
