"""The gate in front of the environment server: bearer token first, then size limits.

:class:`RequestGuard` is plain ASGI middleware, so it covers every route the
OpenEnv server registers, HTTP and WebSocket alike, before any of them reads a
byte of the request:

* with a token set, a request without ``Authorization: Bearer <token>`` gets
  401 (a WebSocket handshake is refused with 401 where the ASGI server supports
  denial responses, else 403), whatever its path;
* an HTTP body larger than ``max_request_bytes`` gets 413 (by its
  ``Content-Length`` or while it streams in);
* a WebSocket message larger than ``max_request_bytes`` closes that connection
  with code 1009; its session ends and the server goes on serving the others.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

logger = logging.getLogger(__name__)

WS_TOO_BIG = 1009
"""WebSocket close code for a message over the limit."""
WS_POLICY = 1008
"""WebSocket close code for a refused handshake (no denial-response support)."""


def _json_response(status: int, message: str,
                   headers: list[tuple[bytes, bytes]] | None = None) -> tuple[dict, dict]:
    body = json.dumps({"error": message}).encode("utf-8")
    start = {"type": "http.response.start", "status": status,
             "headers": [(b"content-type", b"application/json"),
                         (b"content-length", str(len(body)).encode())] + (headers or [])}
    return start, {"type": "http.response.body", "body": body}


class RequestGuard:
    """ASGI middleware checking the bearer token, then the request size.

    Args:
        app: The ASGI app to guard.
        token: The bearer token every request must carry; ``None`` lets all in.
        max_request_bytes: Largest HTTP body and largest WebSocket message.
    """

    def __init__(self, app: Any, *, token: str | None, max_request_bytes: int):
        self.app = app
        self.token = token
        self.max_request_bytes = max_request_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    # ------------------------------------------------------------------ token
    def _token_problem(self, scope: dict) -> str:
        """Why the request may not pass ("" when it may)."""
        if self.token is None:
            return ""
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"authorization", b"").decode("latin-1")
        scheme, _, value = given.partition(" ")
        if not given:
            return ("This server needs a bearer token: send the header "
                    "'Authorization: Bearer <token>'.")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
                value.strip().encode("utf-8"), self.token.encode("utf-8")):
            return "The bearer token is wrong; send the token the server was started with."
        return ""

    # ------------------------------------------------------------------- http
    async def _http(self, scope: dict, receive: Any, send: Any) -> None:
        problem = self._token_problem(scope)
        if problem:
            await self._send_json(send, 401, problem, [(b"www-authenticate", b"Bearer")])
            return
        limit = self.max_request_bytes
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None:
            if not length.strip().isdigit():
                await self._send_json(send, 400, "The Content-Length header is not a number.")
                return
            if int(length) > limit:
                await self._send_json(send, 413, self._too_large())
                return
        chunks, total, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > limit:
                await self._send_json(send, 413, self._too_large())
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body, replayed = b"".join(chunks), False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _too_large(self) -> str:
        return (f"The request is larger than {self.max_request_bytes} bytes; send a shorter "
                "action (or start the server with a larger --max-request-kb).")

    @staticmethod
    async def _send_json(send: Any, status: int, message: str,
                         headers: list[tuple[bytes, bytes]] | None = None) -> None:
        start, body = _json_response(status, message, headers)
        await send(start)
        await send(body)

    # -------------------------------------------------------------- websocket
    async def _websocket(self, scope: dict, receive: Any, send: Any) -> None:
        problem = self._token_problem(scope)
        if problem:
            await receive()  # websocket.connect
            if "websocket.http.response" in (scope.get("extensions") or {}):
                start, body = _json_response(401, problem)
                await send({**start, "type": "websocket.http.response.start"})
                await send({**body, "type": "websocket.http.response.body"})
            else:
                await send({"type": "websocket.close", "code": WS_POLICY})
            return
        closed = False

        async def limited_receive() -> dict:
            nonlocal closed
            message = await receive()
            if message["type"] == "websocket.receive":
                size = len((message.get("text") or "").encode("utf-8", "replace")) + len(
                    message.get("bytes") or b"")
                if size > self.max_request_bytes and not closed:
                    closed = True
                    logger.warning("Closing a WebSocket after a %d-byte message (limit %d)",
                                   size, self.max_request_bytes)
                    await send({"type": "websocket.close", "code": WS_TOO_BIG,
                                "reason": f"message over {self.max_request_bytes} bytes"})
                    return {"type": "websocket.disconnect", "code": WS_TOO_BIG}
            return message

        async def guarded_send(message: dict) -> None:
            if closed and message["type"] in ("websocket.send", "websocket.close"):
                return  # the connection is already closed; the app is cleaning up
            await send(message)

        await self.app(scope, limited_receive, guarded_send)


__all__ = ["WS_POLICY", "WS_TOO_BIG", "RequestGuard"]
