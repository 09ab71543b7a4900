"""Test helpers: a route-table HTTP server on 127.0.0.1, real images, fake resolvers."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

WORLD_IMAGES = Path(__file__).resolve().parents[3] / "knowgen" / "world" / "data" / "images"


@dataclass
class Request:
    """One request a test server received."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    """What a route answers."""

    status: int = 200
    body: bytes | str | dict | list = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_length: bool = True

    def encoded(self) -> tuple[bytes, dict[str, str]]:
        headers = dict(self.headers)
        body = self.body
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            body = body.encode("utf-8")
            headers.setdefault("Content-Type", "text/html; charset=utf-8")
        return body, headers


Route = Callable[[Request], Reply]


class WebServer:
    """A threaded HTTP server on 127.0.0.1 answering from a route table."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[Request] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def _handle(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                req = Request(self.command, parts.path, parse_qs(parts.query),
                              {k.lower(): v for k, v in self.headers.items()},
                              self.rfile.read(length) if length else b"")
                outer.requests.append(req)
                route = outer.routes.get(parts.path)
                reply = route(req) if route else Reply(404, "not found",
                                                       {"Content-Type": "text/plain"})
                body, headers = reply.encoded()
                self.send_response(reply.status)
                for key, value in headers.items():
                    self.send_header(key, value)
                if reply.content_length:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    try:
                        self.wfile.write(body)
                    except (BrokenPipeError, ConnectionResetError):
                        pass

            do_GET = do_POST = do_HEAD = _handle

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def route(self, path: str, reply: Route | Reply) -> None:
        self.routes[path] = reply if callable(reply) else (lambda _req, r=reply: r)

    def hits(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def world_image(name: str = "flag-bf.png") -> bytes:
    """Bytes of a real shipped world image."""
    return (WORLD_IMAGES / name).read_bytes()


def mapping_resolver(table: dict[str, list[str]], calls: list[str] | None = None):
    """A resolver answering from ``table`` (unknown names raise like a failed lookup)."""

    def resolve(host: str, port: int) -> list[str]:
        if calls is not None:
            calls.append(host)
        if host not in table:
            raise socket.gaierror(f"unknown host {host}")
        return list(table[host])

    return resolve
