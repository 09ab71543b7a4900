"""Interfaces of the search, image-search and browse backends."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from knowgen.types import ImageHit, Page, SearchHit


@runtime_checkable
class TextSearch(Protocol):
    """Searches text documents."""

    def search(self, query: str, top_k: int = 5) -> list[SearchHit]:
        """Return at most ``top_k`` hits for ``query``, best first (may be empty)."""
        ...


@runtime_checkable
class ImageSearch(Protocol):
    """Searches images and brings them to local files."""

    def search_images(self, query: str, top_k: int = 5) -> list[ImageHit]:
        """Return at most ``top_k`` image hits, each with a readable ``local_path``."""
        ...

    def fetch_image(self, url: str) -> ImageHit:
        """Bring one image by URL to a local file.

        Raises:
            knowgen.errors.ToolError: when the URL cannot be fetched or is not an image.
        """
        ...


@runtime_checkable
class Browser(Protocol):
    """Reads a page, optionally focused on a query."""

    def browse(self, url: str, query: str = "") -> Page:
        """Return the page text (the query-relevant part when ``query`` is given).

        Raises:
            knowgen.errors.ToolError: when the page cannot be read.
        """
        ...
