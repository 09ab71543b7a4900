"""Web text and image search through the Serper API (Google results), registered as ``serper``.

Serper answers ``POST {endpoint}/search`` and ``POST {endpoint}/images`` with
the header ``X-API-KEY`` and a JSON body ``{"q": ..., "num": ...}``. Text hits
come from ``organic: [{title, link, snippet}]``; image hits from
``images: [{title, imageUrl, thumbnailUrl, link}]``, and the best of them are
downloaded, validated and cached by :class:`~knowgen.search.images.ImageDownloader`
(the thumbnail is the fallback when the full image cannot be used).

The API key is read from the environment variable named by ``api_key_env`` and
is never logged or shown in an error.

Example:
    >>> serper = SerperSearch()          # needs SERPER_API_KEY
    >>> serper.search("capital of Burkina Faso", top_k=3)
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from knowgen.errors import ConfigError, ToolError
from knowgen.net.http import FetchError, Resolver, SafeFetcher, ServiceClient
from knowgen.search.images import ImageCandidate, ImageDownloader
from knowgen.types import ImageHit, SearchHit

logger = logging.getLogger(__name__)

#: Most results asked of the API in one request.
MAX_NUM = 100
_HINTS = {400: "the query was rejected; rephrase it",
          401: "the Serper API key was refused; check it",
          403: "the Serper API key was refused or has no credits left"}


def read_api_key(env: str, service: str, required: bool = True) -> str:
    """The secret in the environment variable ``env`` ("" when optional and unset).

    Raises:
        ConfigError: when the key is required and the variable is unset or empty.
    """
    key = os.environ.get(env, "").strip() if env else ""
    if required and not key:
        raise ConfigError(
            f"{service} needs an API key in the environment variable {env or '(none named)'}, "
            f"which is unset. Set it (export {env or 'NAME'}=...) or name another variable "
            "with api_key_env=NAME.")
    return key


def clamp_top_k(top_k: Any, default: int = 5, most: int = MAX_NUM) -> int:
    """``top_k`` as an int in ``[0, most]`` (``default`` when it is not a number)."""
    try:
        return max(0, min(int(top_k), most))
    except (TypeError, ValueError):
        return default


def json_object(resp_body: bytes, service: str) -> dict[str, Any]:
    """Decode a JSON object response.

    Raises:
        FetchError: when the body is not a JSON object (retryable: the service misbehaved).
    """
    try:
        payload = json.loads(resp_body)
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        raise FetchError(f"{service} sent an unreadable answer (not a JSON object); try again "
                         "later.", retryable=True)
    return payload


class SerperSearch:
    """Google web and image results through Serper.

    Args:
        api_key_env: Environment variable holding the Serper API key.
        endpoint: API root.
        timeout: Seconds one request may take.
        max_retries: Retries after HTTP 429/5xx or a timeout.
        backoff_base: First retry delay in seconds (doubles per retry).
        gl: Country code of the results (e.g. ``"us"``); "" for Serper's default.
        hl: Interface language (e.g. ``"en"``); "" for Serper's default.
        extra_candidates: Images asked for beyond ``top_k``, to replace failed downloads.
        image_cache_dir: Folder of downloaded images (default ``~/.cache/knowgen/images``).
        max_image_bytes: Largest image download accepted.
        max_image_pixels: Most pixels of an image, checked before decoding.
        max_image_side: Longest side of a stored image.
        allow_hosts: Hosts exempt from the SSRF guard for image downloads (tests only).
        resolver: Host resolver of the SSRF guard (default: the system's).

    Raises:
        ConfigError: when the key's environment variable is unset.
    """

    service = "Serper"

    def __init__(self, api_key_env: str = "SERPER_API_KEY",
                 endpoint: str = "https://google.serper.dev", timeout: float = 15,
                 max_retries: int = 3, *, backoff_base: float = 1.0, gl: str = "", hl: str = "",
                 extra_candidates: int = 3, image_cache_dir: str | None = None,
                 max_image_bytes: int = 10_000_000, max_image_pixels: int = 40_000_000,
                 max_image_side: int = 1024, allow_hosts: Iterable[str] = (),
                 resolver: Resolver | None = None):
        self._api_key = read_api_key(api_key_env, self.service)
        self.endpoint = endpoint.rstrip("/")
        host = urlsplit(self.endpoint).hostname
        if not host:
            raise ConfigError(f"endpoint {endpoint!r} is not a URL; use e.g. "
                              "https://google.serper.dev")
        self.gl, self.hl, self.extra_candidates = gl, hl, max(0, int(extra_candidates))
        fetcher = SafeFetcher(timeout=timeout, max_bytes=5_000_000, resolver=resolver,
                              allow_hosts=[*host_list(allow_hosts), self.endpoint])
        self.client = ServiceClient(self.service, fetcher, max_retries=max_retries,
                                    backoff_base=backoff_base, secrets=[self._api_key])
        self.images = ImageDownloader(image_cache_dir, max_bytes=max_image_bytes,
                                      max_pixels=max_image_pixels, max_side=max_image_side,
                                      timeout=timeout, backoff_base=backoff_base,
                                      allow_hosts=allow_hosts, resolver=resolver)

    def __repr__(self) -> str:
        return f"SerperSearch(endpoint={self.endpoint!r})"

    def _post(self, path: str, query: str, num: int) -> dict[str, Any]:
        body: dict[str, Any] = {"q": query, "num": num}
        body.update({k: v for k, v in (("gl", self.gl), ("hl", self.hl)) if v})
        resp = self.client.call(f"{self.endpoint}/{path}", method="POST", hints=_HINTS,
                                headers={"X-API-KEY": self._api_key,
                                         "Content-Type": "application/json",
                                         "Accept": "application/json"},
                                body=json.dumps(body).encode("utf-8"))
        return json_object(resp.body, self.service)

    def search(self, query: str, top_k: int = 5) -> list[SearchHit]:
        """Web results for ``query``, best first (empty when Google has none).

        Raises:
            ToolError: when Serper cannot be reached, refuses the key, or keeps failing.
        """
        query, top_k = str(query or "").strip(), clamp_top_k(top_k)
        if not query or top_k == 0:
            return []
        payload = self._post("search", query, max(top_k, 10))
        hits = []
        for i, item in enumerate(result_items(payload, "organic")):
            link = str(item.get("link") or "").strip()
            if link:
                hits.append(SearchHit(title=str(item.get("title") or link), url=link,
                                      snippet=str(item.get("snippet") or ""),
                                      score=round(1.0 / (i + 1), 4)))
        if not hits:
            logger.info("Serper found nothing for %r", query)
        return hits[:top_k]

    def search_images(self, query: str, top_k: int = 5) -> list[ImageHit]:
        """Image results for ``query``, downloaded to local PNGs, best first.

        Raises:
            ToolError: when Serper fails, or when it found images and none could be downloaded.
        """
        query, top_k = str(query or "").strip(), clamp_top_k(top_k)
        if not query or top_k == 0:
            return []
        payload = self._post("images", query, max(top_k + self.extra_candidates, 10))
        candidates = []
        for i, item in enumerate(result_items(payload, "images")):
            url = str(item.get("imageUrl") or "").strip()
            thumb = str(item.get("thumbnailUrl") or "").strip()
            if url or thumb:
                candidates.append(ImageCandidate(
                    url=url or thumb, title=str(item.get("title") or ""),
                    page_url=str(item.get("link") or ""), score=round(1.0 / (i + 1), 4),
                    fallback_urls=(thumb,) if url and thumb else ()))
        if not candidates:
            logger.info("Serper found no images for %r", query)
        return self.images.fetch_many(candidates[: top_k + self.extra_candidates], top_k)

    def fetch_image(self, url: str) -> ImageHit:
        """Download the image at ``url`` (see :class:`ImageDownloader`).

        Raises:
            ToolError: when the URL is refused, unreachable or not a usable image.
        """
        return self.images.fetch(url)


def result_items(payload: dict[str, Any], key: str) -> list[dict[str, Any]]:
    items = payload.get(key) or []
    if not isinstance(items, list):
        raise ToolError(f"The search service sent a malformed '{key}' list; try again later.")
    return [item for item in items if isinstance(item, dict)]


def host_list(hosts: Iterable[str] | str) -> list[str]:
    return [hosts] if isinstance(hosts, str) else list(hosts)
