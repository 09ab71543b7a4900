"""Text search against a Search-R1 style retrieval server, registered as ``retriever``.

The server answers ``POST /retrieve`` with a body
``{"queries": [...], "topk": 3, "return_scores": true}`` and returns
``{"result": [[{"document": {"id", "contents": "title\\ntext"}, "score"}]]}``, one
list per query (without scores, each item is the document itself). Servers
built on Search-R1's Wikipedia corpus quote the title (``"\\"Title\\"\\ntext"``);
the quotes are removed. A document's ``url`` field is used when the server
sends one (``knowgen serve retriever`` does); otherwise the hit's URL is
``retriever://<id>``.

Example:
    >>> RetrieverSearch("http://127.0.0.1:8000/retrieve").search("capital Ouagadougou")
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from knowgen.errors import ConfigError, ToolError
from knowgen.net.http import Resolver, SafeFetcher, ServiceClient
from knowgen.search.browse_http import select_passages, split_paragraphs
from knowgen.search.index import cut_around
from knowgen.search.serper import clamp_top_k, host_list, json_object
from knowgen.types import SearchHit

logger = logging.getLogger(__name__)


class RetrieverSearch:
    """A client of the ``/retrieve`` HTTP contract.

    The configured URL is trusted (retrieval servers usually run on
    ``127.0.0.1``), but it still goes through the guarded fetcher, so redirects
    elsewhere are checked.

    Args:
        url: The ``/retrieve`` URL; a bare ``http://host:port`` gets ``/retrieve`` appended.
        topk: Documents asked per query; ``None`` uses each call's ``top_k``.
        timeout: Seconds one request may take.
        max_retries: Retries after HTTP 429/5xx or a timeout.
        backoff_base: First retry delay in seconds.
        snippet_chars: Length of a hit's snippet (the passage most relevant to the query).
        allow_hosts: Further hosts exempt from the SSRF guard.
        resolver: Host resolver of the guard (default: the system's).
    """

    service = "The retrieval server"

    def __init__(self, url: str = "http://127.0.0.1:8000/retrieve", topk: int | None = None,
                 timeout: float = 30, max_retries: int = 2, *, backoff_base: float = 1.0,
                 snippet_chars: int = 300, allow_hosts: Iterable[str] = (),
                 resolver: Resolver | None = None):
        parts = urlsplit(str(url).strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"url {url!r} is not an http(s) URL; use e.g. "
                              "http://127.0.0.1:8000/retrieve")
        if parts.path in ("", "/"):
            parts = parts._replace(path="/retrieve")
        self.url = urlunsplit(parts)
        if topk is not None and int(topk) < 1:
            raise ConfigError(f"topk must be >= 1 (or None), not {topk!r}.")
        self.topk = None if topk is None else int(topk)
        self.snippet_chars = int(snippet_chars)
        fetcher = SafeFetcher(timeout=timeout, max_bytes=20_000_000, resolver=resolver,
                              allow_hosts=[*host_list(allow_hosts), self.url])
        self.client = ServiceClient(self.service, fetcher, max_retries=max_retries,
                                    backoff_base=backoff_base)

    def __repr__(self) -> str:
        return f"RetrieverSearch(url={self.url!r}, topk={self.topk})"

    def search(self, query: str, top_k: int = 5) -> list[SearchHit]:
        """Documents for ``query``, best first.

        Raises:
            ToolError: when the server cannot be reached, refuses the request or answers
                in another format.
        """
        query = str(query or "").strip()
        k = self.topk if self.topk is not None else clamp_top_k(top_k)
        if not query or k == 0:
            return []
        body = json.dumps({"queries": [query], "topk": k, "return_scores": True}).encode()
        resp = self.client.call(self.url, method="POST", body=body,
                                headers={"Content-Type": "application/json",
                                         "Accept": "application/json"},
                                hints={400: "the server rejected the request",
                                       404: "no /retrieve endpoint at this URL; check it"})
        items = _first_result(json_object(resp.body, self.service))
        hits = [self._hit(item, query) for item in items]
        hits = [h for h in hits if h is not None]
        if not hits:
            logger.info("The retrieval server found nothing for %r", query)
        return hits[:k]

    def _hit(self, item: Any, query: str) -> SearchHit | None:
        doc, score = item, 0.0
        if isinstance(item, dict) and isinstance(item.get("document"), dict):
            doc, score = item["document"], item.get("score", 0.0)
        if not isinstance(doc, dict):
            return None
        title, text = split_contents(str(doc.get("contents") or doc.get("text") or ""))
        title = str(doc.get("title") or title)
        doc_id = str(doc.get("id", "")).strip()
        url = str(doc.get("url") or "").strip() or (
            doc_id if doc_id.startswith(("http://", "https://")) else f"retriever://{doc_id}")
        best = select_passages(split_paragraphs(text), query, 1)
        snippet = cut_around(best[0], 0, self.snippet_chars) if best else ""
        try:
            score = round(float(score), 4)
        except (TypeError, ValueError):
            score = 0.0
        return SearchHit(title=title or doc_id, url=url, snippet=snippet, score=score)


def split_contents(contents: str) -> tuple[str, str]:
    """``(title, text)`` of a ``"title\\ntext"`` document; quotes around the title removed."""
    title, _, text = contents.partition("\n")
    title = title.strip()
    if len(title) >= 2 and title[0] == title[-1] == '"':
        title = title[1:-1].strip()
    return title, text.strip()


def _first_result(payload: dict[str, Any]) -> list[Any]:
    result = payload.get("result")
    if not isinstance(result, list) or (result and not isinstance(result[0], list)):
        raise ToolError("The retrieval server answered without a 'result' list of lists; is "
                        "the URL a Search-R1 style /retrieve endpoint?")
    return result[0] if result else []
