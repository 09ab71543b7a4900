"""Interface of image generators."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

from PIL import Image


@runtime_checkable
class ImageGenerator(Protocol):
    """Turns a prompt plus optional reference images into one image."""

    def generate(self, prompt: str, references: list[Path], seed: int = 0) -> Image.Image:
        """Return an RGB image for ``prompt``.

        Args:
            prompt: The generation prompt; it refers to references as "the first
                reference image", "the second reference image", ...
            references: Local files of the reference images, in order (may be empty:
                then the generator works from the text alone).
            seed: Random seed, for generators that sample.
        """
        ...
