"""Readers of the environment's observations, shared by the reference policies.

They parse the text formats written by :mod:`knowgen.envs.observations`, so a
policy can act on what it was shown and nothing else.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from knowgen.envs.prompt import REQUEST_HEADER, extract_request

_SEARCH_BLOCK = re.compile(
    r"--- search result for \[(.*?)\] ---\n(.*?)\n--- end of search result ---", re.DOTALL)
_SEARCH_LINE = re.compile(r"^\[(.*?)\]\((\S*?)\)\s?(.*)$")
_IMAGE_ENTRY = re.compile(
    r"^(IMG_\d{3,}): (.*)\n  url: (.*)\n  local_path: (.*)\n  page_url: (.*)$", re.MULTILINE)
_PAGE = re.compile(
    r"<tool_response>\nTitle: ([^\n]*)\nURL: ([^\n]*)\n\n(.*?)\n</tool_response>", re.DOTALL)


@dataclass(frozen=True)
class TextResult:
    """One line of a search observation."""

    query: str
    title: str
    url: str
    snippet: str


@dataclass(frozen=True)
class ImageResult:
    """One image of an image-search observation."""

    img_id: str
    title: str
    url: str
    local_path: str
    page_url: str


@dataclass(frozen=True)
class PageView:
    """A browse observation."""

    title: str
    url: str
    text: str


def is_first_observation(observation: str) -> bool:
    """True for the observation returned by ``reset`` (system prompt plus request)."""
    return REQUEST_HEADER in observation


def request_of(observation: str) -> str:
    """The user's request inside the first observation."""
    return extract_request(observation)


def parse_search(observation: str) -> list[TextResult]:
    """All hits of a search observation, in order (empty when there are none)."""
    hits = []
    for block in _SEARCH_BLOCK.finditer(observation):
        query = block.group(1)
        for line in block.group(2).splitlines():
            match = _SEARCH_LINE.match(line.strip())
            if match:
                hits.append(TextResult(query, match.group(1), match.group(2), match.group(3)))
    return hits


def parse_images(observation: str) -> list[ImageResult]:
    """All images listed in an image-search observation, in order."""
    return [ImageResult(*(g.strip() for g in m.groups())) for m in _IMAGE_ENTRY.finditer(observation)]


def parse_page(observation: str) -> PageView | None:
    """The page of a browse observation, or None when it is not one."""
    match = _PAGE.search(observation)
    if not match:
        return None
    return PageView(match.group(1).strip(), match.group(2).strip(), match.group(3))


def fold(text: str) -> str:
    """ASCII-fold ``text``: accents dropped, other non-ASCII characters removed."""
    decomposed = unicodedata.normalize("NFKD", text)
    return decomposed.encode("ascii", "ignore").decode("ascii")


def caps(name: str) -> str:
    """The name as it is printed on banners: ASCII-folded, in capitals."""
    return " ".join(fold(name).upper().split())


def ordinal(n: int) -> str:
    """``1 -> "first"``, ``2 -> "second"``, ... (up to five)."""
    return ("first", "second", "third", "fourth", "fifth")[n - 1]
