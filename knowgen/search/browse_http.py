"""Reading web pages: ``http`` (direct fetch + trafilatura) and ``jina`` (the Jina reader).

Both browsers return a :class:`~knowgen.types.Page` whose text is either

* the ``max_paragraphs`` paragraphs most relevant to the query, in page order
  (all paragraphs up to ``max_chars`` when there is no query), or
* with a ``summarizer`` (any OpenAI-compatible chat endpoint, through
  :class:`~knowgen.net.openai_client.ChatClient`), a query-focused summary of
  the page; when the summariser fails the passages are returned instead.

``http`` fetches the page itself through the SSRF guard
(:mod:`knowgen.net.http`) and extracts the main text with ``trafilatura``
(boilerplate such as menus and footers removed). ``jina`` asks
``GET {endpoint}/{url}`` of the Jina reader, which fetches and converts the page
on its side; its API key is optional (``JINA_API_KEY``).

Example:
    >>> page = HttpBrowser().browse("https://en.wikipedia.org/wiki/Burkina_Faso", "currency")
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

from knowgen.errors import ConfigError, KnowgenError, MissingDependencyError, ToolError
from knowgen.net.http import FetchError, Resolver, SafeFetcher, ServiceClient
from knowgen.search.serper import host_list, read_api_key
from knowgen.types import Page

logger = logging.getLogger(__name__)

_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_TEXT_TYPES = frozenset({"text/plain", "text/markdown", "text/x-markdown", ""})
_PAGE_HINTS = {401: "the page needs a login; try another result",
               403: "the site refuses automated readers; try another result",
               404: "the page does not exist; check the URL or search again",
               410: "the page is gone; try another result"}
#: Lines shorter than this are joined to the next one (headings stay with their text).
_SHORT_LINE = 40
_SUMMARY_SYSTEM = (
    "You condense a web page for someone researching an image request. Using only the "
    "page text you are given, state the facts that bear on the query: names, numbers, "
    "dates, colours, shapes and the exact spelling of any text. Keep it under 200 words. "
    "If the page does not answer the query, say so in one sentence. No preamble.")


def split_paragraphs(text: str) -> list[str]:
    """Paragraphs of extracted text; a short line (a heading) is joined to the next one."""
    lines = [" ".join(line.split()) for line in re.split(r"\n", text or "")]
    paragraphs: list[str] = []
    pending = ""
    for line in lines:
        if not line:
            continue
        joined = f"{pending} {line}".strip() if pending else line
        if len(line) < _SHORT_LINE and not line.endswith((".", "!", "?")):
            pending = joined
            continue
        paragraphs.append(joined)
        pending = ""
    if pending:
        paragraphs.append(pending)
    return paragraphs


def select_passages(paragraphs: Sequence[str], query: str, k: int) -> list[str]:
    """The ``k`` paragraphs most relevant to ``query``, in page order.

    A paragraph scores the summed inverse paragraph frequency (within the page)
    of the distinct query terms it holds. When fewer than ``k`` paragraphs match,
    the opening paragraphs fill the gap; with no query terms the first ``k`` are used.
    """
    from knowgen.search.analysis import query_terms, terms

    if len(paragraphs) <= k:
        return list(paragraphs)
    wanted = [t for t, _ in query_terms(query or "")]
    bags = [set(terms(p)) for p in paragraphs]
    df = Counter(t for bag in bags for t in set(wanted) & bag)
    n = len(paragraphs)
    scores = [sum(math.log(1 + n / df[t]) for t in set(wanted) if t in bag) for bag in bags]
    chosen = [i for i in sorted(range(n), key=lambda i: (-scores[i], i)) if scores[i] > 0][:k]
    for i in range(n):
        if len(chosen) >= k:
            break
        if i not in chosen:
            chosen.append(i)
    return [paragraphs[i] for i in sorted(chosen)]


def clip(paragraphs: Iterable[str], max_chars: int) -> str:
    """Join paragraphs with blank lines, stopping near ``max_chars`` (marked with ``[...]``)."""
    out, size = [], 0
    for para in paragraphs:
        if size + len(para) > max_chars:
            room = max_chars - size
            if room > 80:
                out.append(para[:room].rsplit(" ", 1)[0] + " [...]")
            else:
                out.append("[...]")
            break
        out.append(para)
        size += len(para) + 2
    return "\n\n".join(out)


class PageSummarizer:
    """Query-focused page summaries from an OpenAI-compatible chat endpoint.

    Args:
        client: A :class:`~knowgen.net.openai_client.ChatClient`, or a dict of its
            keyword arguments (``{"model": ..., "base_url": ..., "api_key_env": ...}``).
        max_input_chars: Most page characters sent to the model.
    """

    def __init__(self, client: Any, max_input_chars: int = 20_000):
        from knowgen.net.openai_client import ChatClient

        if isinstance(client, dict):
            client = ChatClient(**client)
        if not hasattr(client, "complete"):
            raise ConfigError("summarizer must be a ChatClient or a dict of its arguments "
                              '(e.g. {"model": "gpt-4.1-mini"}).')
        self.client, self.max_input_chars = client, int(max_input_chars)

    def summarize(self, title: str, url: str, text: str, query: str) -> str:
        """The summary text.

        Raises:
            KnowgenError: when the endpoint fails; ValueError for an empty reply.
        """
        user = (f"Query: {query.strip() or '(none: give the main facts of the page)'}\n"
                f"Page: {title} <{url}>\n\n{text[: self.max_input_chars]}")
        messages = [{"role": "system", "content": _SUMMARY_SYSTEM},
                    {"role": "user", "content": user}]
        _, summary = self.client.complete(messages, parse=_non_empty)
        return summary


def _non_empty(reply: str) -> str:
    if not reply.strip():
        raise ValueError("empty summary")
    return reply.strip()


class _TextBrowser:
    """Shared tail of both browsers: passages or a summary, within ``max_chars``."""

    def __init__(self, max_paragraphs: int, max_chars: int, summarizer: Any):
        if max_paragraphs < 1 or max_chars < 200:
            raise ConfigError("max_paragraphs must be >= 1 and max_chars >= 200.")
        self.max_paragraphs, self.max_chars = int(max_paragraphs), int(max_chars)
        self.summarizer = (summarizer if summarizer is None or isinstance(
            summarizer, PageSummarizer) else PageSummarizer(summarizer))

    def _page(self, url: str, title: str, paragraphs: list[str], query: str) -> Page:
        query = str(query or "")
        if not paragraphs:
            raise ToolError(f"{url[:200]} has no readable text. Try another result.")
        if self.summarizer is not None:
            try:
                summary = self.summarizer.summarize(title, url, "\n\n".join(paragraphs), query)
                return Page(url=url, title=title, text=summary[: self.max_chars])
            except (KnowgenError, ValueError) as exc:
                logger.warning("Summarising %s failed (%s); returning passages", url, exc)
        chosen = select_passages(paragraphs, query, self.max_paragraphs) if query.strip() \
            else paragraphs
        return Page(url=url, title=title, text=clip(chosen, self.max_chars))


class HttpBrowser(_TextBrowser):
    """Fetches pages directly (SSRF-guarded) and extracts their main text with trafilatura.

    Args:
        max_bytes: Most bytes read of a page (a longer page is cut there).
        timeout: Seconds one connect or read may take.
        max_paragraphs: Paragraphs returned for a query.
        summarizer: Optional ChatClient (or dict of its arguments) for summaries.
        max_chars: Most characters of the returned text.
        max_retries: Retries after HTTP 429/5xx or a timeout.
        backoff_base: First retry delay in seconds.
        allow_hosts: Hosts exempt from the SSRF guard (tests only).
        resolver: Host resolver of the guard (default: the system's).
    """

    def __init__(self, max_bytes: int = 2_000_000, timeout: float = 15,
                 max_paragraphs: int = 5, summarizer: Any = None, *, max_chars: int = 6000,
                 max_retries: int = 1, backoff_base: float = 1.0,
                 allow_hosts: Iterable[str] = (), resolver: Resolver | None = None):
        super().__init__(max_paragraphs, max_chars, summarizer)
        fetcher = SafeFetcher(timeout=timeout, max_bytes=max_bytes,
                              allow_hosts=host_list(allow_hosts), resolver=resolver)
        self.client = ServiceClient("The web site", fetcher, max_retries=max_retries,
                                    backoff_base=backoff_base)

    def browse(self, url: str, query: str = "") -> Page:
        """Read the page at ``url``; focus on ``query`` when given.

        Raises:
            ToolError: when the URL is refused, unreachable, not a page, or has no text.
        """
        url = str(url or "").strip()
        if not url:
            raise ToolError("No URL given. Use a URL from a search result.")
        try:
            resp = self.client.call(url, allow_truncate=True, hints=_PAGE_HINTS, headers={
                "Accept": "text/html,application/xhtml+xml,text/plain;q=0.8,*/*;q=0.1"})
        except FetchError as exc:
            raise ToolError(f"Could not read {url[:200]}: {exc}") from None
        kind = resp.content_type
        if kind in _HTML_TYPES or (not kind and resp.body.lstrip()[:1] == b"<"):
            title, text = extract_html(resp.body, resp.url, resp.charset)
        elif kind in _TEXT_TYPES:
            title, text = _name(resp.url), resp.text()
        elif kind.startswith("image/"):
            raise ToolError(f"{url[:200]} is an image, not a page; use it from image_search.")
        else:
            raise ToolError(f"{url[:200]} is not a web page ({kind}); try another result.")
        return self._page(resp.url, title, split_paragraphs(text), query)


def extract_html(body: bytes, url: str, charset: str | None = None) -> tuple[str, str]:
    """``(title, main text)`` of an HTML page, boilerplate removed (trafilatura).

    Raises:
        MissingDependencyError: when trafilatura is not installed.
    """
    try:
        import trafilatura
    except ImportError:
        raise MissingDependencyError("trafilatura", "web", "The http browser") from None
    html: str | bytes = body
    if charset:
        try:
            html = body.decode(charset, errors="replace")
        except LookupError:
            pass
    try:
        doc = trafilatura.bare_extraction(html, url=url, with_metadata=True, favor_recall=True,
                                          include_comments=False, include_tables=True)
        text = getattr(doc, "text", None) or ""
        if not text.strip():  # nothing looked like an article: keep all visible text
            text = trafilatura.html2txt(html) or ""
    except (ValueError, TypeError, SyntaxError, RecursionError) as exc:  # hostile markup
        logger.warning("Could not parse the HTML of %s: %r", url, exc)
        raise ToolError(f"{url[:200]} could not be parsed as a web page; try another "
                        "result.") from None
    title = (getattr(doc, "title", None) or "").strip() or _name(url)
    return title, text


class JinaBrowser(_TextBrowser):
    """Reads pages through the Jina reader (``GET {endpoint}/{url}`` returns Markdown).

    Args:
        endpoint: Reader root.
        api_key_env: Environment variable of the optional API key (sent as a Bearer token);
            without it the reader is used anonymously, with lower rate limits.
        timeout: Seconds one request may take.
        max_paragraphs: Paragraphs returned for a query.
        summarizer: Optional ChatClient (or dict of its arguments) for summaries.
        max_chars: Most characters of the returned text.
        max_bytes: Most bytes read of the reader's answer.
        max_retries: Retries after HTTP 429/5xx or a timeout.
        backoff_base: First retry delay in seconds.
        allow_hosts: Hosts exempt from the SSRF guard (tests only).
        resolver: Host resolver of the guard (default: the system's).
    """

    service = "The Jina reader"

    def __init__(self, endpoint: str = "https://r.jina.ai", api_key_env: str = "JINA_API_KEY",
                 timeout: float = 30, max_paragraphs: int = 5, summarizer: Any = None, *,
                 max_chars: int = 6000, max_bytes: int = 2_000_000, max_retries: int = 2,
                 backoff_base: float = 1.0, allow_hosts: Iterable[str] = (),
                 resolver: Resolver | None = None):
        super().__init__(max_paragraphs, max_chars, summarizer)
        self.endpoint = str(endpoint).rstrip("/")
        host = urlsplit(self.endpoint).hostname
        if not host:
            raise ConfigError(f"endpoint {endpoint!r} is not a URL; use e.g. https://r.jina.ai")
        self._api_key = read_api_key(api_key_env, "The Jina reader", required=False)
        if not self._api_key:
            logger.info("No key in %s: using the Jina reader anonymously", api_key_env)
        self.fetcher = SafeFetcher(timeout=timeout, max_bytes=max_bytes, resolver=resolver,
                                   allow_hosts=[*host_list(allow_hosts), self.endpoint])
        self.client = ServiceClient(self.service, self.fetcher, max_retries=max_retries,
                                    backoff_base=backoff_base, secrets=[self._api_key])

    def __repr__(self) -> str:
        return f"JinaBrowser(endpoint={self.endpoint!r})"

    def browse(self, url: str, query: str = "") -> Page:
        """Read the page at ``url`` through the reader; focus on ``query`` when given.

        Raises:
            ToolError: when the URL is refused, the reader fails, or the page has no text.
        """
        url = str(url or "").strip()
        if not url:
            raise ToolError("No URL given. Use a URL from a search result.")
        self.fetcher.check_url(url, resolve=False)  # no internal names or literal addresses
        headers = {"Accept": "text/plain", "X-Return-Format": "markdown"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        resp = self.client.call(f"{self.endpoint}/{url}", headers=headers, allow_truncate=True,
                                hints={402: "the Jina key has no credits left",
                                       422: "the reader could not read that page; try "
                                            "another result",
                                       451: "the reader may not fetch that page"})
        title, source, text = parse_reader_text(resp.text())
        page_url = source or url
        return self._page(page_url, title or _name(page_url), _markdown_paragraphs(text), query)


def parse_reader_text(text: str) -> tuple[str, str, str]:
    """Split the reader's answer into ``(title, source URL, content)``.

    The reader starts with ``Title:``, ``URL Source:`` (and sometimes other)
    header lines, then ``Markdown Content:`` and the page. An answer without
    these headers is taken as content whole.
    """
    head, marker, body = text.partition("Markdown Content:")
    if not marker:
        return "", "", text
    fields = {}
    for line in head.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip().lower()] = value.strip()
    return fields.get("title", ""), fields.get("url source", ""), body.strip()


def _markdown_paragraphs(text: str) -> list[str]:
    """Blank-line separated Markdown blocks, each on one line; images and rules dropped."""
    blocks = [" ".join(b.split()) for b in re.split(r"\n\s*\n", text)]
    return [b for b in blocks if b and not re.fullmatch(r"(!\[[^\]]*\]\([^)]*\)\s*)+|[-*_=]{3,}",
                                                        b)]


def _name(url: str) -> str:
    parts = urlsplit(url)
    last = parts.path.rstrip("/").rsplit("/", 1)[-1]
    return last.replace("_", " ") or parts.hostname or url
