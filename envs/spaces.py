"""Gymnasium spaces: free-form text, and the multimodal (text plus images) observation."""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

import numpy as np
from gymnasium.spaces import Box, Dict, Discrete, Text
from PIL import Image

logger = logging.getLogger(__name__)


class UnicodeText(Text):
    """A :class:`gymnasium.spaces.Text` that holds any unicode string up to ``max_length``.

    Gymnasium's ``Text`` only contains strings drawn from its charset. Observations
    of :class:`~knowgen.envs.searchgen.SearchGenEnv` are arbitrary text (page
    excerpts, names with accents, JSON), so membership here checks only the type
    and the length. Sampling still draws from the (alphanumeric) charset, which is
    a subset of the space.

    Args:
        max_length: Longest string in the space (characters).
        min_length: Shortest string in the space (characters).
        seed: Seed of the space's sampler.

    Example:
        >>> space = UnicodeText(100)
        >>> space.contains("Côte d'Ivoire — <tool_response>")
        True
    """

    def __init__(self, max_length: int, *, min_length: int = 0, seed: Any = None):
        super().__init__(max_length, min_length=min_length, seed=seed)

    def contains(self, x: Any) -> bool:
        """True for any ``str`` whose length lies within the bounds."""
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length

    @property
    def is_np_flattenable(self) -> bool:
        """Arbitrary unicode cannot be mapped onto the charset's indices."""
        return False

    def __repr__(self) -> str:
        return f"UnicodeText({self.min_length}, {self.max_length})"

    def __eq__(self, other: object, /) -> bool:
        return (
            isinstance(other, UnicodeText)
            and self.min_length == other.min_length
            and self.max_length == other.max_length
        )


IMAGE_ID_CHARSET = "IMG_0123456789,"
"""Characters of the comma-separated image id list of a ``dict`` observation."""


def multimodal_space(text_max_length: int, max_images: int, size: int) -> Dict:
    """The ``dict`` observation space of :class:`~knowgen.envs.searchgen.SearchGenEnv`.

    Args:
        text_max_length: Longest observation text.
        max_images: ``N``, the most images one observation carries.
        size: Side of each (letterboxed) square image.

    Returns:
        ``Dict(text=UnicodeText, images=Box(0, 255, (N, size, size, 3), uint8),
        image_ids=Text (comma-separated ids), num_images=Discrete(N + 1))``.
    """
    return Dict({
        "text": UnicodeText(text_max_length),
        "images": Box(0, 255, (max_images, size, size, 3), np.uint8),
        "image_ids": Text(max_length=max_images * 16, min_length=0, charset=IMAGE_ID_CHARSET),
        "num_images": Discrete(max_images + 1),
    })


@lru_cache(maxsize=64)
def letterbox(path: str, size: int) -> np.ndarray:
    """The image at ``path`` scaled to fit a ``size`` x ``size`` square, centred on black.

    Transparent pixels are laid on white first (flags and logos are often RGBA).
    The result is read-only and cached.

    Raises:
        OSError: when the file cannot be read as an image.
    """
    with Image.open(path) as img:
        img.load()
        rgba = img.convert("RGBA")
    flat = Image.new("RGB", rgba.size, (255, 255, 255))
    flat.paste(rgba, mask=rgba.getchannel("A"))
    scale = size / max(flat.size)
    fitted = flat.resize((max(1, round(flat.width * scale)), max(1, round(flat.height * scale))),
                         Image.Resampling.BILINEAR)
    canvas = Image.new("RGB", (size, size), (0, 0, 0))
    canvas.paste(fitted, ((size - fitted.width) // 2, (size - fitted.height) // 2))
    array = np.asarray(canvas, dtype=np.uint8)
    array.flags.writeable = False
    return array


def image_batch(entries: list[tuple[str, str]], max_images: int,
                size: int) -> tuple[np.ndarray, list[str]]:
    """Stack the first ``max_images`` readable images into a zero-padded batch.

    Args:
        entries: ``(img_id, local_path)`` pairs in the order the observation lists them.
        max_images: ``N``, the batch's first dimension.
        size: Side of each image.

    Returns:
        The ``(N, size, size, 3)`` uint8 batch and the ids of the images it holds
        (unreadable files are left out with a warning).
    """
    batch = np.zeros((max_images, size, size, 3), dtype=np.uint8)
    ids: list[str] = []
    for img_id, path in entries:
        if len(ids) == max_images:
            break
        try:
            batch[len(ids)] = letterbox(str(path), size)
        except (OSError, ValueError) as exc:
            logger.warning("Image %s at %r is left out of the observation: %s", img_id, path, exc)
            continue
        ids.append(img_id)
    return batch, ids


def multimodal_observation(text: str, entries: list[tuple[str, str]], max_images: int,
                           size: int) -> dict[str, Any]:
    """A ``dict`` observation: ``text`` plus the images of ``entries`` (see :func:`image_batch`)."""
    images, ids = image_batch(entries, max_images, size)
    return {"text": text, "images": images, "image_ids": ",".join(ids), "num_images": len(ids)}
