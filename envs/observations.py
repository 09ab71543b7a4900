"""How tool results, errors and budget notices are written back to the agent.

Every tool result is wrapped in ``<tool_response>`` ... ``</tool_response>``:

* ``search``: per query a block opened by ``--- search result for [<query>] ---``,
  one Markdown line per hit (``[Title](url) snippet``) or ``No results for '<query>'.``,
  closed by ``--- end of search result ---``;
* ``image_search``: at most five images, each under its per-episode id
  (``IMG_001``, ``IMG_002``, ...; the same URL keeps its id for the whole episode)
  with its title, url, local_path and page_url;
* ``fetch_image``: the one image, listed as an image search lists it;
* ``browse``: the page title, its url, then the (query-focused) text.

Text longer than the configured limit is cut and marked ``[truncated]``.
:class:`ToolRunner` runs the calls (each under a time limit) and writes their results.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from knowgen.errors import ToolError
from knowgen.types import ImageHit, Page, SearchHit, ToolCall

logger = logging.getLogger(__name__)

TRUNCATION_MARK = "[truncated]"
MAX_IMAGES_PER_SEARCH = 5
"""Most images one image search shows."""
MAX_ERROR_CHARS = 1000
"""Longest error message echoed back to the agent."""
TOOL_WORKERS = 4
"""Threads of each :class:`ToolRunner`'s pool."""


@dataclass(frozen=True)
class ToolOutcome:
    """What one tool call gave.

    Attributes:
        text: The observation text, wrapped in ``<tool_response>``.
        ok: False when the tool failed or timed out.
        error: The failure's message ("" when ``ok``).
        shown: ``(img_id, local_path)`` of the images the result lists, in order.
    """

    text: str
    ok: bool
    error: str
    shown: list[tuple[str, str]]


@dataclass
class ImagePool:
    """The images shown in one episode, under stable per-episode ids.

    Ids are ``IMG_001``, ``IMG_002``, ... in order of first appearance; an image
    seen again (same URL, or same local file when the URL is empty) keeps its id.
    """

    _by_id: dict[str, ImageHit] = field(default_factory=dict)
    _by_key: dict[str, str] = field(default_factory=dict)

    def add(self, hit: ImageHit) -> str:
        """Register ``hit`` (if new) and return its id."""
        key = hit.url or hit.local_path
        if key in self._by_key:
            return self._by_key[key]
        img_id = f"IMG_{len(self._by_id) + 1:03d}"
        self._by_id[img_id] = hit
        self._by_key[key] = img_id
        return img_id

    def get(self, img_id: str) -> ImageHit | None:
        """The image shown under ``img_id``, or None."""
        return self._by_id.get(img_id)

    def ids(self) -> list[str]:
        """All ids shown so far, in order."""
        return list(self._by_id)

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, img_id: object) -> bool:
        return img_id in self._by_id


def one_line(text: str) -> str:
    """Collapse whitespace (newlines included) to single spaces."""
    return " ".join(text.split())


def truncate(text: str, max_chars: int) -> str:
    """Cut ``text`` to ``max_chars`` characters and mark the cut with ``[truncated]``."""
    if max_chars <= 0 or len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    newline = cut.rfind("\n")
    if newline > max_chars * 0.8:  # prefer to cut at a line break when one is near
        cut = cut[:newline]
    return cut.rstrip() + "\n" + TRUNCATION_MARK


def wrap_tool_response(text: str, max_chars: int) -> str:
    """Truncate ``text`` to ``max_chars`` and wrap it in ``<tool_response>`` tags."""
    return f"<tool_response>\n{truncate(text.strip(), max_chars)}\n</tool_response>"


def format_search_results(results: list[tuple[str, list[SearchHit]]]) -> str:
    """Format the hits of every query of one ``search`` call.

    Args:
        results: ``(query, hits)`` pairs in the order of the call's queries.
    """
    blocks = []
    for query, hits in results:
        lines = [f"--- search result for [{query}] ---"]
        if hits:
            lines += [f"[{one_line(h.title)}]({h.url}) {one_line(h.snippet)}".rstrip() for h in hits]
        else:
            lines.append(f"No results for '{query}'.")
        lines.append("--- end of search result ---")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def format_image_results(query: str, entries: list[tuple[str, ImageHit]]) -> str:
    """Format one image search: each image under its per-episode id.

    Args:
        query: The query searched.
        entries: ``(img_id, hit)`` pairs, best first.
    """
    if not entries:
        return f"No images found for '{query}'."
    lines = [f"--- image search result for [{query}] ---"]
    for img_id, hit in entries:
        lines += [
            f"{img_id}: {one_line(hit.title)}",
            f"  url: {hit.url}",
            f"  local_path: {hit.local_path}",
            f"  page_url: {hit.page_url}",
        ]
    lines.append("--- end of image search result ---")
    return "\n".join(lines)


def format_fetched_image(img_id: str, hit: ImageHit) -> str:
    """Format one image fetched by URL, in the listing format of an image search.

    Args:
        img_id: The image's per-episode id.
        hit: The fetched image.
    """
    lines = [f"--- fetched image [{hit.url}] ---", f"{img_id}: {one_line(hit.title)}",
             f"  url: {hit.url}", f"  local_path: {hit.local_path}",
             f"  page_url: {hit.page_url}", "--- end of fetched image ---"]
    return "\n".join(lines)


def format_page(page: Page) -> str:
    """Format a browsed page: title, url, blank line, text."""
    return f"Title: {one_line(page.title)}\nURL: {page.url}\n\n{page.text.strip()}"


def format_tool_error(tool: str, message: str) -> str:
    """Text of a tool that failed (goes inside ``<tool_response>``)."""
    return f"Error from {tool}: {message}"


def format_invalid_action(error: str) -> str:
    """Observation for a turn that could not be parsed or was not allowed."""
    return f"Your last turn could not be carried out: {truncate(error, MAX_ERROR_CHARS)}"


def budget_line(tool_calls_left: int, turns_left: int) -> str:
    """A one-line reminder of the remaining budget."""
    return f"[Tool calls left: {tool_calls_left}. Turns left: {turns_left}.]"


TOOLS_CLOSED = "Tools are no longer allowed"
"""The words of :func:`must_answer_notice` that mark an observation after which only an
answer is accepted (agents read them with :func:`tools_closed`)."""


def tools_closed(observation: str) -> bool:
    """Whether ``observation`` carries the notice that the next turn must be the answer."""
    return TOOLS_CLOSED in str(observation)


def must_answer_notice(reason: str) -> str:
    """The notice that tools are no longer allowed and the next turn must be the answer."""
    return (
        f"{reason} {TOOLS_CLOSED}: your next turn must be the final "
        '<answer>{"gen_prompt": ..., "reference_images": [...]}</answer>. '
        "Any other reply ends the episode with no reward."
    )


class ToolRunner:
    """Runs tool calls against the backends, each under a time limit, and formats the result.

    Backend calls run in one small thread pool per runner, created on first use;
    a call that passes ``timeout_s`` becomes an error observation and is left to
    finish in the background (its result is dropped). Backends marked
    ``in_process`` (in-memory lookups) run inline.

    Args:
        top_k: Results per search when the call gives no ``top_k``.
        max_images: Most images one image search shows.
        max_chars: Longest tool response text (longer ones are truncated and marked).
        timeout_s: Seconds a backend call may take; 0 runs it inline without a limit.
    """

    def __init__(self, *, top_k: int, max_images: int, max_chars: int, timeout_s: float):
        self.top_k, self.max_images, self.max_chars = top_k, max_images, max_chars
        self.timeout_s = timeout_s
        self._deadline: float | None = None
        self._executor: ThreadPoolExecutor | None = None

    def run(self, call: ToolCall, pool: ImagePool, backends: Mapping[str, Any],
            started: float | None = None) -> ToolOutcome:
        """Carry out ``call`` (``backends`` maps ``text_search``, ``image_search``, ``browser``).

        Images the call shows are added to ``pool`` and listed in the outcome.

        Args:
            call: The parsed tool call.
            pool: The episode's image pool.
            backends: The tool backends.
            started: ``time.monotonic()`` when the turn arrived; the time limit
                then counts from there, so reading the turn is inside it.
        """
        self._deadline = None if started is None or not self.timeout_s \
            else started + self.timeout_s
        args = call.arguments
        shown: list[tuple[str, str]] = []
        top_k = args.get("top_k", self.top_k)
        try:
            if call.name == "search":
                search = backends["text_search"].search
                results = self._call("search", backends["text_search"], lambda: [
                    (q, list(search(q, top_k=top_k))[:top_k]) for q in args["queries"]])
                text = format_search_results(results)
            elif call.name == "image_search":
                limit = min(top_k, self.max_images)
                hits = self._call("image_search", backends["image_search"], lambda: list(
                    backends["image_search"].search_images(args["query"], top_k=limit)))
                entries = [(pool.add(h), h) for h in hits[:limit]]
                shown = [(i, h.local_path) for i, h in entries]
                text = format_image_results(args["query"], entries)
            elif call.name == "fetch_image":
                images = backends["image_search"]
                hit = self._call("fetch_image", images, images.fetch_image, args["url"])
                shown = [(pool.add(hit), hit.local_path)]
                text = format_fetched_image(shown[0][0], hit)
            else:
                browser = backends["browser"]
                page = self._call("browse", browser, browser.browse, args["url"],
                                  args.get("query", ""))
                text = format_page(page)
            ok, error = True, ""
        except ToolError as exc:
            text, ok, error = format_tool_error(call.name, str(exc)), False, str(exc)
        return ToolOutcome(wrap_tool_response(text, self.max_chars), ok, error, shown)

    def _call(self, tool: str, backend: Any, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` under the time limit; inline for in-process backends.

        A backend whose ``in_process`` attribute is true (the local world's index
        lookups) cannot hang, so the thread hand-off would be pure overhead.
        """
        if not self.timeout_s or getattr(backend, "in_process", False):
            return fn(*args)
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=TOOL_WORKERS,
                                                thread_name_prefix="knowgen-tool")
        future = self._executor.submit(fn, *args)
        deadline = getattr(self, "_deadline", None)
        wait = self.timeout_s if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            return future.result(timeout=wait)
        except TimeoutError:
            future.cancel()
            logger.warning("Tool %s timed out after %gs", tool, self.timeout_s)
            raise ToolError(f"tool {tool} timed out after {self.timeout_s:g}s; try again, "
                            "with another query, or use another tool.") from None

    def close(self) -> None:
        """Stop the thread pool; calls still running finish in the background."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
