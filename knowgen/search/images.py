"""Safe image download: guarded fetch, validation, RGB PNG conversion and a disk cache.

Every image a web backend hands to the agent comes through
:class:`ImageDownloader`, which

1. fetches the URL through :class:`~knowgen.net.http.SafeFetcher` (SSRF guard,
   redirects checked, a byte cap: a larger body is refused, not cut);
2. checks the ``Content-Type`` (web pages, SVG and other non-raster types are
   refused; a missing or generic binary type is left to the decoder);
3. reads only the header first and refuses images with more than
   ``max_pixels`` pixels before anything is decoded (decompression bombs);
4. decodes the image fully (a truncated or corrupt file is refused), applies
   its EXIF orientation, flattens transparency onto white, converts to RGB and
   shrinks it so its longest side is at most ``max_side``;
5. stores it as PNG in ``cache_dir`` under the SHA-256 of its URL, so the same
   URL is never downloaded twice.

Example:
    >>> hit = ImageDownloader("/tmp/knowgen-images").fetch("https://example.org/flag.png")
    >>> hit.local_path
    '/tmp/knowgen-images/3f/3f9c....png'
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import struct
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from PIL import Image, ImageOps, UnidentifiedImageError

from knowgen.errors import ConfigError, ToolError
from knowgen.fileio import save_png_atomic
from knowgen.net.http import FetchError, Resolver, SafeFetcher, ServiceClient
from knowgen.types import ImageHit

logger = logging.getLogger(__name__)

#: Default folder of downloaded images.
DEFAULT_CACHE_DIR = Path.home() / ".cache" / "knowgen" / "images"
#: Raster formats accepted (those the installed Pillow can read are used).
ACCEPTED_FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP", "ICO", "AVIF")
#: Content types that say "binary, type unknown": the decoder decides.
_GENERIC_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream",
                            "application/binary", "application/unknown"})
_HINTS = {401: "the image needs a login; choose another image",
          403: "the host refuses automated downloads; choose another image",
          404: "there is no image at this URL", 410: "the image is gone; choose another"}
_DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError,
                  struct.error, IndexError)


@dataclass(frozen=True)
class ImageCandidate:
    """An image a search result points at, before download.

    Attributes:
        url: The image URL.
        title: Caption or title.
        page_url: The page showing the image.
        score: Retrieval score.
        fallback_urls: Other URLs of the same image (e.g. a thumbnail), tried in order.
    """

    url: str
    title: str = ""
    page_url: str = ""
    score: float = 0.0
    fallback_urls: tuple[str, ...] = ()


def url_key(url: str) -> str:
    """The cache key of ``url``: the SHA-256 hex digest of the stripped URL."""
    return hashlib.sha256(str(url).strip().encode("utf-8")).hexdigest()


def _formats() -> list[str]:
    Image.init()
    return [f for f in ACCEPTED_FORMATS if f in Image.OPEN]


def decode_image(data: bytes, *, max_pixels: int, max_side: int, source: str = "the image"
                 ) -> Image.Image:
    """Validate and decode image bytes into an RGB image no larger than ``max_side``.

    The pixel count is checked from the header, before the pixels are decoded.

    Raises:
        ToolError: when the bytes are not a readable raster image or have too many pixels.
    """
    try:
        with Image.open(io.BytesIO(data), formats=_formats()) as img:
            width, height = img.size
            if width < 1 or height < 1 or width * height > max_pixels:
                logger.warning("Refused %s: %dx%d pixels (limit %d)", source, width, height,
                               max_pixels)
                raise ToolError(f"{source} is too large to use ({width}x{height} pixels; the "
                                f"limit is {max_pixels}). Choose another image.")
            if img.format == "JPEG":
                img.draft("RGB", (max_side, max_side))  # decode JPEGs at a reduced scale
            img.load()
            rgb = _to_rgb(ImageOps.exif_transpose(img))
    except ToolError:
        raise
    except Image.DecompressionBombError as exc:  # Pillow's own, looser, limit
        logger.warning("Refused %s: %s", source, exc)
        raise ToolError(f"{source} is too large to use (more pixels than Pillow decodes "
                        f"safely; the limit is {max_pixels}). Choose another image.") from None
    except _DECODE_ERRORS as exc:
        logger.warning("Could not decode %s: %s", source, exc)
        raise ToolError(f"{source} is not a readable image ({type(exc).__name__}). "
                        "Choose another image.") from None
    rgb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return rgb


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, (255, 255, 255))
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return img.convert("RGB")


def check_content_type(content_type: str, url: str) -> None:
    """Refuse responses whose ``Content-Type`` says they are not a raster image.

    Raises:
        ToolError: for web pages, SVG and other non-image types.
    """
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind in _GENERIC_TYPES or (kind.startswith("image/") and "svg" not in kind):
        return
    if "svg" in kind:
        why = "it is an SVG drawing; pick a PNG, JPEG, GIF or WebP image instead"
    elif kind in ("text/html", "application/xhtml+xml"):
        why = "it is a web page; read it with browse, or use an image URL from image_search"
    else:
        why = f"its content type is {kind}; use an image URL from image_search"
    logger.warning("Refused %s: content type %s", url[:200], kind)
    raise ToolError(f"{url[:200]} is not an image: {why}.")


class ImageDownloader:
    """Downloads, validates, converts and caches images.

    Args:
        cache_dir: Folder of the cached PNGs (default ``~/.cache/knowgen/images``).
        max_bytes: Largest download accepted.
        max_pixels: Most pixels (width x height) accepted, checked before decoding.
        max_side: Longest side of the stored PNG; larger images are shrunk.
        timeout: Seconds one connect or read may take.
        max_retries: Retries of a download after HTTP 429/5xx or a timeout.
        backoff_base: First retry delay in seconds.
        workers: Downloads in flight at once in :meth:`fetch_many`.
        allow_hosts: Hosts exempt from the SSRF guard (tests use ``127.0.0.1``).
        resolver: Host resolver for the guard (default: the system's).
    """

    def __init__(self, cache_dir: str | os.PathLike[str] | None = None, *,
                 max_bytes: int = 10_000_000, max_pixels: int = 40_000_000, max_side: int = 1024,
                 timeout: float = 15.0, max_retries: int = 1, backoff_base: float = 1.0,
                 workers: int = 4, allow_hosts: Iterable[str] = (),
                 resolver: Resolver | None = None):
        if max_pixels < 1 or max_side < 16 or workers < 1:
            raise ConfigError("max_pixels must be >= 1, max_side >= 16 and workers >= 1.")
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else DEFAULT_CACHE_DIR
        self.max_pixels, self.max_side, self.workers = int(max_pixels), int(max_side), int(workers)
        fetcher = SafeFetcher(timeout=timeout, max_bytes=max_bytes, allow_hosts=allow_hosts,
                              resolver=resolver)
        self.client = ServiceClient("The image host", fetcher, max_retries=max_retries,
                                    backoff_base=backoff_base)

    def path_for(self, url: str) -> Path:
        """Where the PNG of ``url`` is (or would be) cached."""
        key = url_key(url)
        return self.cache_dir / key[:2] / f"{key}.png"

    def fetch(self, url: str, *, title: str = "", page_url: str = "", score: float = 0.0
              ) -> ImageHit:
        """Bring the image at ``url`` to a local RGB PNG (from the cache when present).

        Raises:
            ToolError: when the URL is refused, cannot be fetched or is not a usable image.
        """
        url = str(url or "").strip()
        if not url:
            raise ToolError("No image URL given. Use a URL from an image_search result.")
        path = self.path_for(url)
        if not path.is_file():
            try:
                resp = self.client.call(url, headers={"Accept": "image/*,*/*;q=0.5"},
                                        hints=_HINTS)
            except FetchError as exc:
                raise ToolError(f"Could not download {url[:200]}: {exc}") from None
            check_content_type(resp.content_type, url)
            image = decode_image(resp.body, max_pixels=self.max_pixels, max_side=self.max_side,
                                 source=f"The image at {url[:200]}")
            try:
                self._store(image, path)
            except OSError as exc:
                logger.error("Cannot write the image cache %s: %s", self.cache_dir, exc)
                raise ToolError(f"Could not store the image from {url[:200]}: the image cache "
                                "is not writable, so downloads are unavailable.") from None
            logger.debug("Stored %s as %s", url, path)
        return ImageHit(title=title or _name_from_url(url), url=url, page_url=page_url,
                        local_path=str(path.resolve()), image_id=url_key(url)[:16],
                        score=float(score))

    def fetch_many(self, candidates: Sequence[ImageCandidate], top_k: int) -> list[ImageHit]:
        """Download candidates in parallel and keep the first ``top_k`` that work, in order.

        A candidate whose URL fails is retried with its ``fallback_urls``.

        Raises:
            ToolError: when there were candidates but not one could be used.
        """
        if top_k <= 0 or not candidates:
            return []
        with ThreadPoolExecutor(max_workers=min(self.workers, len(candidates))) as pool:
            outcomes = list(pool.map(self._try, candidates))
        hits = [o for o in outcomes if isinstance(o, ImageHit)][:top_k]
        if not hits:
            reasons = "; ".join(dict.fromkeys(str(o) for o in outcomes))[:600]
            raise ToolError(f"Found {len(candidates)} images but none could be downloaded "
                            f"({reasons}). Try another query.")
        return hits

    def _try(self, cand: ImageCandidate) -> ImageHit | str:
        error = "no URL"
        for url in (cand.url, *cand.fallback_urls):
            if not url:
                continue
            try:
                return self.fetch(url, title=cand.title, page_url=cand.page_url,
                                  score=cand.score)
            except ToolError as exc:
                error = str(exc)
                logger.warning("Skipped image %s: %s", url[:200], error)
        return error

    def _store(self, image: Image.Image, path: Path) -> None:
        save_png_atomic(image, path)


def _name_from_url(url: str) -> str:
    """A readable title from the last path segment of ``url``."""
    name = unquote(urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1])
    return name or urlsplit(url).hostname or url
