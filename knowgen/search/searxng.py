"""Web text and image search through a SearXNG instance, registered as ``searxng``.

SearXNG answers ``GET {base_url}/search?q=...&format=json`` with
``results: [{title, url, content, score}]``; with ``categories=images`` each
result also carries ``img_src`` (and often ``thumbnail_src``). The instance must
allow the JSON format (``search.formats`` in its ``settings.yml``).

The configured ``base_url`` is trusted (it is usually self-hosted on a private
address); image URLs found in results go through the SSRF guard like any other.

Example:
    >>> searx = SearxngSearch("http://127.0.0.1:8888")
    >>> searx.search("flag of Burkina Faso")
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

from knowgen.errors import ConfigError
from knowgen.net.http import FetchError, Resolver, SafeFetcher, ServiceClient
from knowgen.search.images import ImageCandidate, ImageDownloader
from knowgen.search.serper import clamp_top_k, host_list, json_object, result_items
from knowgen.types import ImageHit, SearchHit

logger = logging.getLogger(__name__)

_HINTS = {403: "the instance does not serve JSON; add 'json' to search.formats in its "
               "settings.yml",
          404: "no SearXNG at this base_url; check it",
          429: "the instance is limiting requests"}


class SearxngSearch:
    """Text and image results from a SearXNG metasearch instance.

    Args:
        base_url: Root URL of the instance, e.g. ``http://127.0.0.1:8888``.
        timeout: Seconds one request may take.
        max_retries: Retries after HTTP 429/5xx or a timeout.
        backoff_base: First retry delay in seconds.
        language: Result language (e.g. ``"en"``); "" for the instance default.
        safesearch: 0 (off), 1 (moderate) or 2 (strict); ``None`` for the instance default.
        engines: Comma-separated engines to use; "" for the instance default.
        extra_candidates: Images tried beyond ``top_k``, to replace failed downloads.
        image_cache_dir: Folder of downloaded images (default ``~/.cache/knowgen/images``).
        max_image_bytes: Largest image download accepted.
        max_image_pixels: Most pixels of an image, checked before decoding.
        max_image_side: Longest side of a stored image.
        allow_hosts: Hosts exempt from the SSRF guard for image downloads (tests only).
        resolver: Host resolver of the SSRF guard (default: the system's).
    """

    service = "SearXNG"

    def __init__(self, base_url: str = "http://127.0.0.1:8888", timeout: float = 15,
                 max_retries: int = 2, *, backoff_base: float = 1.0, language: str = "",
                 safesearch: int | None = None, engines: str = "", extra_candidates: int = 3,
                 image_cache_dir: str | None = None, max_image_bytes: int = 10_000_000,
                 max_image_pixels: int = 40_000_000, max_image_side: int = 1024,
                 allow_hosts: Iterable[str] = (), resolver: Resolver | None = None):
        self.base_url = str(base_url).rstrip("/")
        host = urlsplit(self.base_url).hostname
        if not host or urlsplit(self.base_url).scheme not in ("http", "https"):
            raise ConfigError(f"base_url {base_url!r} is not an http(s) URL; use e.g. "
                              "http://127.0.0.1:8888")
        if safesearch not in (None, 0, 1, 2):
            raise ConfigError(f"safesearch must be 0, 1 or 2, not {safesearch!r}.")
        self.language, self.safesearch, self.engines = language, safesearch, engines
        self.extra_candidates = max(0, int(extra_candidates))
        fetcher = SafeFetcher(timeout=timeout, max_bytes=5_000_000, resolver=resolver,
                              allow_hosts=[*host_list(allow_hosts), self.base_url])
        self.client = ServiceClient(self.service, fetcher, max_retries=max_retries,
                                    backoff_base=backoff_base)
        self.images = ImageDownloader(image_cache_dir, max_bytes=max_image_bytes,
                                      max_pixels=max_image_pixels, max_side=max_image_side,
                                      timeout=timeout, backoff_base=backoff_base,
                                      allow_hosts=allow_hosts, resolver=resolver)

    def __repr__(self) -> str:
        return f"SearxngSearch(base_url={self.base_url!r})"

    def _query(self, query: str, category: str = "") -> list[dict[str, Any]]:
        params: dict[str, Any] = {"q": query, "format": "json"}
        optional = {"categories": category, "language": self.language, "engines": self.engines,
                    "safesearch": self.safesearch}
        params.update({k: v for k, v in optional.items() if v not in ("", None)})
        resp = self.client.call(f"{self.base_url}/search?{urlencode(params)}", hints=_HINTS,
                                headers={"Accept": "application/json"})
        payload = json_object(resp.body, self.service)
        results = result_items(payload, "results")
        if not results and payload.get("unresponsive_engines"):
            engines = ", ".join(_engine_names(payload["unresponsive_engines"]))
            raise FetchError(f"SearXNG's engines did not answer ({engines}); try again later.",
                             retryable=True)
        if not results:
            logger.info("SearXNG found nothing for %r", query)
        return results

    def search(self, query: str, top_k: int = 5) -> list[SearchHit]:
        """Web results for ``query``, best first (empty when nothing matched).

        Raises:
            ToolError: when the instance cannot be reached or keeps failing.
        """
        query, top_k = str(query or "").strip(), clamp_top_k(top_k)
        if not query or top_k == 0:
            return []
        hits = []
        for item in self._query(query):
            url = str(item.get("url") or "").strip()
            if url:
                hits.append(SearchHit(title=str(item.get("title") or url), url=url,
                                      snippet=str(item.get("content") or ""),
                                      score=_score(item.get("score"))))
        return hits[:top_k]

    def search_images(self, query: str, top_k: int = 5) -> list[ImageHit]:
        """Image results for ``query``, downloaded to local PNGs, best first.

        Raises:
            ToolError: when the instance fails, or it found images and none could be used.
        """
        query, top_k = str(query or "").strip(), clamp_top_k(top_k)
        if not query or top_k == 0:
            return []
        candidates = []
        for item in self._query(query, category="images"):
            page = str(item.get("url") or "")
            url = _absolute(item.get("img_src"), page)
            thumb = _absolute(item.get("thumbnail_src"), page)
            if url or thumb:
                candidates.append(ImageCandidate(
                    url=url or thumb, title=str(item.get("title") or ""), page_url=page,
                    score=_score(item.get("score")),
                    fallback_urls=(thumb,) if url and thumb and thumb != url else ()))
        return self.images.fetch_many(candidates[: top_k + self.extra_candidates], top_k)

    def fetch_image(self, url: str) -> ImageHit:
        """Download the image at ``url`` (see :class:`ImageDownloader`).

        Raises:
            ToolError: when the URL is refused, unreachable or not a usable image.
        """
        return self.images.fetch(url)


def _absolute(value: Any, page: str) -> str:
    """An image URL made absolute (``//host/x`` gets https); data: URLs are dropped."""
    url = str(value or "").strip()
    if not url or url.startswith("data:"):
        return ""
    if url.startswith("//"):
        return "https:" + url
    return urljoin(page, url) if page and "://" not in url else url


def _score(value: Any) -> float:
    try:
        return round(float(value), 4)
    except (TypeError, ValueError):
        return 0.0


def _engine_names(entries: Any) -> list[str]:
    names = []
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, (list, tuple)) and entry:
            names.append(f"{entry[0]}: {entry[1]}" if len(entry) > 1 else str(entry[0]))
        else:
            names.append(str(entry))
    return names[:8] or ["unknown"]
