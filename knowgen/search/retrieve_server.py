"""A Search-R1 compatible retrieval server over the offline world's pages.

Endpoints:

* ``POST /retrieve`` with ``{"queries": [str, ...], "topk": int, "return_scores": bool}``
  answers ``{"result": [[{"document": {...}, "score": float}, ...], ...]}``, one
  list per query (with ``return_scores`` false, each item is the document). A
  document is ``{"id", "contents": "title\\ntext", "title", "url"}``; ``url`` is
  the world page URL, readable with the ``local`` browser.
* ``GET /health`` answers ``{"status": "ok", "pages": N, "world": version}``.

Bad input gets HTTP 400 (413 for an oversized body) with ``{"error": message}``.
The server is a threaded ``http.server``; the index is built before it listens.

Example:
    >>> server = make_server("127.0.0.1", 8000)
    >>> server.serve_forever()
"""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from knowgen.errors import ConfigError
from knowgen.search.index import WorldIndex, get_index

logger = logging.getLogger(__name__)

#: Largest request body, in bytes.
MAX_BODY_BYTES = 1_000_000
#: Most queries in one request.
MAX_QUERIES = 256
#: Longest query, in characters.
MAX_QUERY_CHARS = 2_000
#: Largest ``topk``.
MAX_TOPK = 50
#: ``topk`` when the request does not say.
DEFAULT_TOPK = 3


class RequestError(ValueError):
    """A request the server refuses, with its HTTP status."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def parse_request(raw: bytes) -> tuple[list[str], int, bool]:
    """Validate a ``/retrieve`` body and return ``(queries, topk, return_scores)``.

    Raises:
        RequestError: with a message saying what is wrong.
    """
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise RequestError("The body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise RequestError('The body must be a JSON object like {"queries": ["..."], "topk": 3}.')
    queries = body.get("queries")
    if not isinstance(queries, list) or not queries:
        raise RequestError("'queries' must be a non-empty list of strings.")
    if len(queries) > MAX_QUERIES:
        raise RequestError(f"At most {MAX_QUERIES} queries per request (got {len(queries)}).")
    for i, q in enumerate(queries):
        if not isinstance(q, str):
            raise RequestError(f"queries[{i}] must be a string, not {type(q).__name__}.")
        if len(q) > MAX_QUERY_CHARS:
            raise RequestError(f"queries[{i}] is longer than {MAX_QUERY_CHARS} characters.")
    topk = body.get("topk", DEFAULT_TOPK)
    if isinstance(topk, bool) or not isinstance(topk, int) or not 1 <= topk <= MAX_TOPK:
        raise RequestError(f"'topk' must be an integer from 1 to {MAX_TOPK}.")
    scores = body.get("return_scores", False)
    if not isinstance(scores, bool):
        raise RequestError("'return_scores' must be true or false.")
    return queries, topk, scores


def retrieve(index: WorldIndex, queries: list[str], topk: int, return_scores: bool
             ) -> list[list[Any]]:
    """Search-R1 ``result``: per query, the ``topk`` best world pages."""
    result = []
    for query in queries:
        items = []
        for page, score in index.search_pages(query, topk):
            doc = {"id": page.url, "contents": f"{page.title}\n{page.text}",
                   "title": page.title, "url": page.url}
            items.append({"document": doc, "score": round(float(score), 4)}
                         if return_scores else doc)
        result.append(items)
    return result


class RetrieveHandler(BaseHTTPRequestHandler):
    """Answers ``/retrieve`` and ``/health`` from the server's world index."""

    server: RetrieveServer
    server_version = "knowgen-retriever/0.1"
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/health":
            index = self.server.index
            self._send(HTTPStatus.OK, {"status": "ok", "pages": len(index.world.pages),
                                       "world": index.world.version})
        elif path == "/retrieve":
            self._send(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "Use POST for /retrieve."})
        else:
            self._send(HTTPStatus.NOT_FOUND, {"error": f"No endpoint {path}; use POST /retrieve "
                                              "or GET /health."})

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        try:
            raw = self._body()
            if path != "/retrieve":
                raise RequestError(f"No endpoint {path}; use POST /retrieve.", 404)
            queries, topk, scores = parse_request(raw)
        except RequestError as exc:
            self._send(exc.status, {"error": str(exc)})
            return
        result = retrieve(self.server.index, queries, topk, scores)
        self._send(HTTPStatus.OK, {"result": result})

    def _body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length is None or not length.strip().isdigit():
            self.close_connection = True
            raise RequestError("A Content-Length header is required.", 411)
        size = int(length)
        if size > MAX_BODY_BYTES:
            self.close_connection = True
            raise RequestError(f"The body is larger than {MAX_BODY_BYTES} bytes.", 413)
        return self.rfile.read(size)

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s - %s", self.address_string(), format % args)


class RetrieveServer(ThreadingHTTPServer):
    """A threaded HTTP server holding one world index."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], index: WorldIndex):
        self.index = index
        super().__init__(address, RetrieveHandler)

    @property
    def url(self) -> str:
        """The ``/retrieve`` URL the server listens on."""
        host, port = self.server_address[:2]
        host = f"[{host}]" if ":" in str(host) else host
        return f"http://{host}:{port}/retrieve"


def make_server(host: str = "127.0.0.1", port: int = 8000,
                data_dir: str | Path | None = None) -> RetrieveServer:
    """Build (but do not start) a retrieval server; ``port=0`` picks a free port.

    Raises:
        knowgen.errors.DataError: when the world files are missing or malformed.
        knowgen.errors.ConfigError: when the address cannot be bound.
    """
    index = get_index(data_dir)
    try:
        return RetrieveServer((host, int(port)), index)
    except OSError as exc:
        raise ConfigError(f"Cannot listen on {host}:{port} ({exc.strerror or exc}); choose "
                          "another --port or --host.") from None


def serve_retriever(host: str = "127.0.0.1", port: int = 8000,
                    data_dir: str | Path | None = None) -> None:
    """Serve the world index on ``/retrieve`` until interrupted (Ctrl-C)."""
    server = make_server(host, port, data_dir)
    logger.info("Serving %d world pages on %s (Ctrl-C stops)",
                   len(server.index.world.pages), server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        logger.info("Stopping the retrieval server")
    finally:
        server.server_close()
