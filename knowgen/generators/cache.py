"""A disk cache in front of any generator: the same request is drawn once.

The key is a SHA-256 over the generator's description (its ``describe()``
when it has one, else its class and simple attributes), ``key_extra``, the
prompt, the SHA-256 of each reference file's bytes (so a renamed copy hits,
an edited file misses) and the seed. Images are PNG files
``<cache_dir>/<key[:2]>/<key>.png``, written to a temporary file in the same
folder and renamed into place, so concurrent writers and killed processes
never leave a half-written entry. A cache file that cannot be read is drawn
again and replaced.

Example:
    >>> gen = CachedGenerator(Compositor(size=256), "~/.cache/knowgen/images")
    >>> gen.generate('"HELLO"', []) is not None
    True
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from knowgen.errors import ToolError
from knowgen.fileio import save_png_atomic

logger = logging.getLogger(__name__)

_SIMPLE = (str, int, float, bool, type(None))


def describe_generator(generator: Any) -> dict[str, Any]:
    """The generator's ``describe()``, else its class and simple public attributes."""
    if callable(getattr(generator, "describe", None)):
        return dict(generator.describe())
    cls = type(generator)
    attrs = {k: v for k, v in sorted(vars(generator).items())
             if not k.startswith("_") and isinstance(v, _SIMPLE)}
    return {"generator": f"{cls.__module__}.{cls.__qualname__}", **attrs}


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes.

    Raises:
        ToolError: when the file cannot be read.
    """
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except FileNotFoundError:
        raise ToolError(f"Reference image {path} does not exist; pass files that exist.") from None
    except OSError as exc:
        raise ToolError(f"Reference image {path} cannot be read ({exc}).") from None
    return digest.hexdigest()


class CachedGenerator:
    """Wraps ``inner`` and keeps every image it draws as a PNG on disk.

    Args:
        inner: Any generator.
        cache_dir: Folder of the cache (created when missing).
        key_extra: Extra text mixed into every key, e.g. the model's name and
            revision when ``inner`` cannot describe the model itself (an ``http``
            client only knows its URL).

    Attributes:
        hits: Requests answered from disk.
        misses: Requests drawn by ``inner``.
    """

    def __init__(self, inner: Any, cache_dir: str | Path, key_extra: str = ""):
        self.inner = inner
        self.cache_dir = Path(cache_dir).expanduser()
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.key_extra = str(key_extra)
        self._config = json.dumps(describe_generator(inner), sort_keys=True, default=str)
        self.hits = self.misses = 0
        self._lock = threading.Lock()

    def describe(self) -> dict[str, Any]:
        """The inner generator's description plus ``key_extra``."""
        return {**describe_generator(self.inner), "cache_key_extra": self.key_extra}

    def key(self, prompt: str, references: Sequence[str | Path], seed: int = 0) -> str:
        """The cache key of one request (hex SHA-256)."""
        record = {"config": self._config, "extra": self.key_extra, "prompt": prompt,
                  "references": [file_digest(p) for p in references], "seed": int(seed)}
        return hashlib.sha256(json.dumps(record, sort_keys=True).encode("utf-8")).hexdigest()

    def path_for(self, key: str) -> Path:
        """Where the image of ``key`` lives."""
        return self.cache_dir / key[:2] / f"{key}.png"

    def generate(self, prompt: str, references: Sequence[str | Path], seed: int = 0
                 ) -> Image.Image:
        """The cached image of this request, or ``inner``'s new one (then stored).

        Raises:
            knowgen.errors.ToolError: when a reference file cannot be read, or as ``inner`` raises.
        """
        refs = list(references)
        key = self.key(prompt, refs, seed)
        path = self.path_for(key)
        cached = self._read(path)
        if cached is not None:
            with self._lock:
                self.hits += 1
            return cached
        image = self.inner.generate(prompt, refs, seed=seed).convert("RGB")
        with self._lock:
            self.misses += 1
        self._write(path, image)
        return image

    @staticmethod
    def _read(path: Path) -> Image.Image | None:
        if not path.is_file():
            return None
        try:
            with Image.open(path) as img:
                img.load()
                return img.convert("RGB")
        except (OSError, ValueError) as exc:
            logger.warning("cache file %s is unreadable (%s); drawing it again", path, exc)
            return None

    @staticmethod
    def _write(path: Path, image: Image.Image) -> None:
        save_png_atomic(image, path)


def cached_generator(generator: str, cache_dir: str, key_extra: str = "") -> CachedGenerator:
    """Build ``generator`` (a spec) from the registry and cache it in ``cache_dir``.

    Suits a registry entry, e.g. ``cached:generator="http:url=http://h:8100",cache_dir=/c``.
    """
    from knowgen.registry import GENERATORS

    return CachedGenerator(GENERATORS.create(generator), cache_dir, key_extra)
