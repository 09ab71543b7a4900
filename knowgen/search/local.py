"""Search, image search and browse over the offline world (registered as ``local``).

All three backends share one in-memory tantivy index per world folder (see
:mod:`knowgen.search.index`), built at first use. Any query text is accepted:
it is reduced to word tokens before it reaches the index, so quotes, colons,
brackets or stray operators never raise, and a query without words returns no
hits.

Example:
    >>> hits = LocalTextSearch().search("capital Ouagadougou")
    >>> page = LocalBrowser().browse(hits[0].url, query="currency")
"""

from __future__ import annotations

import logging
from pathlib import Path

from knowgen.errors import ToolError
from knowgen.search.analysis import tokens
from knowgen.search.index import WorldIndex, get_index
from knowgen.types import ImageHit, Page, SearchHit
from knowgen.world.data import MEDIA_HOST, PAGE_HOST, WorldImage

logger = logging.getLogger(__name__)

#: Largest ``top_k`` honoured; larger requests are capped.
MAX_TOP_K = 50
#: Paragraphs returned by a query-focused browse.
BROWSE_PARAGRAPHS = 3
#: Length of a search snippet, in characters.
SNIPPET_CHARS = 240


def _top_k(top_k: object) -> int:
    """``top_k`` as an int in ``[0, MAX_TOP_K]`` (5 when it is not a number)."""
    try:
        value = int(top_k)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return 5
    return max(0, min(value, MAX_TOP_K))


class _WorldBackend:
    """Shared plumbing: the world folder and its lazily fetched index.

    ``in_process`` tells the environment that calls are in-memory index lookups
    that cannot hang, so it runs them inline rather than under a time limit.
    """

    in_process = True

    def __init__(self, data_dir: str | Path | None = None):
        self.data_dir = str(data_dir) if data_dir else None

    @property
    def index(self) -> WorldIndex:
        """The world's index (built on first use, then cached)."""
        return get_index(self.data_dir)

    def _image_hit(self, image: WorldImage, score: float) -> ImageHit:
        path = self.index.world.image_path(image.id).resolve()
        return ImageHit(title=image.title, url=image.url, page_url=image.page_url,
                        local_path=str(path), image_id=image.id, score=round(score, 4))


class LocalTextSearch(_WorldBackend):
    """Full-text search over the world's pages (title boosted over body).

    Args:
        data_dir: World folder; the shipped world when None.
    """

    def search(self, query: str, top_k: int = 5) -> list[SearchHit]:
        """Pages best matching ``query``, each with its most relevant paragraph as snippet.

        Args:
            query: Free text; anything is accepted.
            top_k: Most hits to return (capped at :data:`MAX_TOP_K`).

        Returns:
            Hits, best first; empty when the query holds no word or nothing matches.
        """
        query = "" if query is None else str(query)
        index = self.index
        hits = []
        for page, score in index.search_pages(query, _top_k(top_k)):
            hits.append(SearchHit(title=page.title, url=page.url, score=round(score, 4),
                                  snippet=index.snippet(page, query, SNIPPET_CHARS)))
        logger.debug("local search %r -> %d hits", query, len(hits))
        return hits


class LocalImageSearch(_WorldBackend):
    """Image search over the world's flags, logos and look-alikes.

    Each image is indexed with its caption, the title of its page, the name and
    aliases of the entity it shows, words for its kind ("flag", "logo", ...) and
    the entity's facts (capital, colours, codes) with a low weight.

    Args:
        data_dir: World folder; the shipped world when None.
    """

    def search_images(self, query: str, top_k: int = 5) -> list[ImageHit]:
        """Images best matching ``query``; ``local_path`` is the absolute PNG path.

        Args:
            query: Free text; anything is accepted.
            top_k: Most hits to return (capped at :data:`MAX_TOP_K`).
        """
        query = "" if query is None else str(query)
        hits = [self._image_hit(img, s) for img, s in self.index.search_images(query, _top_k(top_k))]
        logger.debug("local image search %r -> %d hits", query, len(hits))
        return hits

    def fetch_image(self, url: str) -> ImageHit:
        """The world image at ``url``.

        Raises:
            ToolError: when ``url`` is not the URL of a world image.
        """
        url = "" if url is None else str(url).strip()
        image = self.index.image(url) if url else None
        if image is not None:
            return self._image_hit(image, 1.0)
        page = self.index.page(url) if url else None
        if page is not None:
            official = [i for i in self.index.world.images.values()
                        if i.page_url == page.url and i.official]
            hint = f" Its picture is at {official[0].url}." if official else ""
            raise ToolError(f"{url} is a page, not an image; read it with browse.{hint}")
        if tokens(url) and MEDIA_HOST.split("//")[1] in url:
            raise ToolError(f"No world image at {url}. Use a URL from an image_search result.")
        raise ToolError(
            f"Cannot fetch {url!r}: only world image URLs ({MEDIA_HOST}/...) resolve offline. "
            "Use a URL from an image_search result."
        )


class LocalBrowser(_WorldBackend):
    """Reads world pages, whole or focused on a query.

    Args:
        data_dir: World folder; the shipped world when None.
    """

    def browse(self, url: str, query: str = "") -> Page:
        """The page at ``url``.

        Args:
            url: A page URL from a search result.
            query: When given, only the :data:`BROWSE_PARAGRAPHS` paragraphs most
                relevant to it are returned, in page order (topped up with the
                opening paragraphs when fewer share a word with it).

        Raises:
            ToolError: when ``url`` is not a world page.
        """
        url = "" if url is None else str(url).strip()
        index = self.index
        page = index.page(url) if url else None
        if page is None:
            image = index.image(url) if url else None
            if image is not None:
                raise ToolError(f"{url} is an image, not a page. Its page is {image.page_url}.")
            where = "" if PAGE_HOST.split("//")[1] in url else (
                f" Only world pages ({PAGE_HOST}/wiki/...) can be read offline.")
            raise ToolError(f"No page at {url!r}.{where} Use a URL from a search result.")
        paragraphs = index.paragraphs(page)
        query = "" if query is None else str(query)
        if query.strip() and len(paragraphs) > BROWSE_PARAGRAPHS:
            chosen = [i for i, _ in index.ranked_paragraphs(page, query)][:BROWSE_PARAGRAPHS]
            for i in range(len(paragraphs)):  # too few matches: fill from the top
                if len(chosen) >= BROWSE_PARAGRAPHS:
                    break
                if i not in chosen:
                    chosen.append(i)
            paragraphs = [paragraphs[i] for i in sorted(chosen)]
        return Page(url=page.url, title=page.title, text="\n\n".join(paragraphs))
