"""A small client for OpenAI-compatible chat-completions endpoints (stdlib ``urllib``).

It sends ``POST {base_url}/chat/completions`` and returns the first choice's
message text. Behaviour:

* **retries** with exponential backoff and jitter on HTTP 429 and 5xx, timeouts,
  connection errors and unreadable response bodies; a ``Retry-After`` header is
  honoured. Each retry is logged at WARNING with its attempt count;
* a **per-request timeout** and a **bound on concurrent requests** shared by every
  client of the same endpoint in the process;
* the **API key** comes only from the named environment variable; it is sent in
  the ``Authorization`` header and never logged or shown in errors;
* an optional **on-disk cache** keyed by a hash of the request (model, rubric,
  text, and the SHA-256 of every image), so a rerun sends nothing. A reply is
  stored only after the caller's ``parse`` accepted it.

Example:
    >>> client = ChatClient("gpt-4.1", cache_dir=".cache/judge")
    >>> text, parsed = client.complete(messages, parse=json.loads)
"""

from __future__ import annotations

import email.utils
import hashlib
import http.client
import json
import logging
import os
import random
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, TypeVar

from knowgen.errors import ConfigError, KnowgenError
from knowgen.fileio import atomic_write_text

logger = logging.getLogger(__name__)
T = TypeVar("T")

_RETRY_STATUS = {408, 409, 425, 429}
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_SEMAPHORES: dict[tuple[str, int], threading.BoundedSemaphore] = {}
_SEM_LOCK = threading.Lock()


class JudgeError(KnowgenError):
    """A judge could not score one sample."""


class JudgeAPIError(JudgeError):
    """The endpoint refused a request or kept failing after every retry."""


class _Transient(Exception):
    """A failure worth retrying; ``retry_after`` is the server's wish in seconds."""

    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.retry_after = retry_after


def _shared_semaphore(base_url: str, concurrency: int) -> threading.BoundedSemaphore:
    with _SEM_LOCK:
        key = (base_url, concurrency)
        if key not in _SEMAPHORES:
            _SEMAPHORES[key] = threading.BoundedSemaphore(concurrency)
        return _SEMAPHORES[key]


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def request_key(body: dict[str, Any]) -> str:
    """SHA-256 of the request with every image data URL replaced by its own SHA-256."""

    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items()}
        if isinstance(node, list):
            return [strip(v) for v in node]
        if isinstance(node, str) and node.startswith("data:"):
            return "sha256:" + hashlib.sha256(node.encode("ascii", "replace")).hexdigest()
        return node

    canon = json.dumps(strip(body), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()


class ResponseCache:
    """Replies on disk, one JSON file per request key (atomic writes, thread safe)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder).expanduser()
        self.folder.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> str | None:
        """The cached reply text, or ``None``."""
        try:
            return json.loads(self._path(key).read_text(encoding="utf-8"))["content"]
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put(self, key: str, content: str, model: str) -> None:
        """Store ``content`` under ``key``."""
        record = {"model": model, "content": content, "stored_at": time.time()}
        atomic_write_text(self._path(key), json.dumps(record))


class ChatClient:
    """Chat-completions client with retries, a concurrency bound and a reply cache.

    Args:
        model: Model name sent in each request.
        base_url: Endpoint root, e.g. ``"https://api.openai.com/v1"`` or a vLLM server's ``/v1``.
        api_key_env: Environment variable holding the API key; ``None`` or ``""``
            for local servers without auth (see ``placeholder_key``).
        timeout: Seconds one request may take.
        max_retries: Retries after the first attempt for transient failures.
        concurrency: Requests in flight at once to this endpoint (process wide).
        cache_dir: Folder of the reply cache; ``None`` disables caching.
        backoff_base: First backoff delay in seconds (doubles per retry, with jitter).
        backoff_max: Longest single wait in seconds, ``Retry-After`` included.
        extra_body: Extra request fields (e.g. ``{"max_tokens": 1024}``).
        placeholder_key: Bearer token sent when there is no key (``api_key_env``
            empty), e.g. ``"EMPTY"`` for servers and proxies that expect an
            ``Authorization`` header on every request; ``None`` sends none.

    Raises:
        ConfigError: when the key's environment variable is unset or empty.
    """

    def __init__(self, model: str, base_url: str = "https://api.openai.com/v1",
                 api_key_env: str | None = "OPENAI_API_KEY", timeout: float = 60,
                 max_retries: int = 6, concurrency: int = 4, cache_dir: str | None = None,
                 backoff_base: float = 1.0, backoff_max: float = 60.0,
                 extra_body: dict[str, Any] | None = None, placeholder_key: str | None = None):
        if concurrency < 1 or max_retries < 0 or timeout <= 0:
            raise ConfigError("concurrency must be >= 1, max_retries >= 0 and timeout > 0.")
        self.model = model
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.timeout, self.max_retries = float(timeout), int(max_retries)
        self.backoff_base, self.backoff_max = float(backoff_base), float(backoff_max)
        self.extra_body = dict(extra_body or {})
        self.cache = ResponseCache(cache_dir) if cache_dir else None
        self.requests_sent = 0
        self._api_key = _read_key(api_key_env)
        self._bearer = self._api_key or placeholder_key
        self.concurrency = int(concurrency)
        self._semaphore: AbstractContextManager[Any] = _shared_semaphore(self.url,
                                                                         self.concurrency)
        host = urllib.parse.urlsplit(self.url).hostname or ""
        handlers = [urllib.request.ProxyHandler({})] if host in _LOOPBACK else []
        self._opener = urllib.request.build_opener(*handlers)
        self._count_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ChatClient(model={self.model!r}, url={self.url!r})"

    def set_concurrency_bound(self, bound: AbstractContextManager[Any]) -> None:
        """Admit requests through ``bound`` instead of the process-wide semaphore.

        ``bound`` is entered around each HTTP request (not around cache hits or the
        waits between retries). The Ray executor passes one that holds a cluster-wide
        slot, so that ``concurrency`` bounds the whole cluster, not each process.
        """
        self._semaphore = bound

    def body(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        """The request body for ``messages`` (temperature 0)."""
        return {"model": self.model, "messages": messages, "temperature": 0, **self.extra_body}

    def complete(self, messages: list[dict[str, Any]],
                 parse: Callable[[str], T]) -> tuple[str, T]:
        """Send ``messages`` (or answer from the cache) and parse the reply.

        Args:
            messages: Chat messages in the OpenAI wire format.
            parse: Turns the reply text into a result; it raises to reject a reply,
                and a rejected reply is not cached.

        Returns:
            The reply text and ``parse``'s result.

        Raises:
            JudgeAPIError: for a refused request or when every retry failed.
            Exception: whatever ``parse`` raises.
        """
        body = self.body(messages)
        key = request_key(body)
        cached = self.cache.get(key) if self.cache else None
        if cached is not None:
            logger.debug("Reply for request %s served from the cache", key[:12])
            return cached, parse(cached)
        content = self._send(body)
        result = parse(content)
        if self.cache:
            self.cache.put(key, content, self.model)
        return content, result

    def _send(self, body: dict[str, Any]) -> str:
        data = json.dumps(body).encode("utf-8")
        attempts = self.max_retries + 1
        for attempt in range(1, attempts + 1):
            try:
                with self._semaphore:
                    return self._post(data)
            except _Transient as exc:
                if attempt == attempts:
                    raise JudgeAPIError(
                        f"{self.url} kept failing after {attempts} attempts (last: {exc}). "
                        "Check the endpoint, or raise max_retries / timeout.") from None
                delay = self._delay(attempt, exc.retry_after)
                logger.warning("Chat request to %s failed (%s); attempt %d of %d, "
                               "retrying in %.2f s", self.url, exc, attempt, attempts, delay)
                time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(self.backoff_max, retry_after)
        step = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        return step / 2 + random.uniform(0, step / 2)

    def _post(self, data: bytes) -> str:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._bearer:
            headers["Authorization"] = f"Bearer {self._bearer}"
        req = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
        with self._count_lock:
            self.requests_sent += 1
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raise self._status_error(exc) from None
        except TimeoutError as exc:
            raise _Transient(f"timed out after {self.timeout:g} s") from exc
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                raise _Transient(f"timed out after {self.timeout:g} s") from exc
            raise _Transient(f"connection error: {exc.reason}") from exc
        except (ConnectionError, http.client.HTTPException, OSError) as exc:
            raise _Transient(f"connection error: {type(exc).__name__}") from exc
        return self._reply_text(raw)

    def _reply_text(self, raw: bytes) -> str:
        """What a response body means to the caller: the first choice's text here."""
        return _message_text(raw)

    def _status_error(self, exc: urllib.error.HTTPError) -> Exception:
        status = exc.code
        try:
            detail = exc.read(2000).decode("utf-8", "replace")
        except (OSError, http.client.HTTPException):
            detail = ""
        if self._api_key:
            detail = detail.replace(self._api_key, "***")
        if status in _RETRY_STATUS or status >= 500:
            return _Transient(f"HTTP {status}", parse_retry_after(exc.headers.get("Retry-After")))
        hint = {401: "check the API key", 403: "check the key's permissions",
                404: "check base_url and the model name"}.get(status, "check the request")
        return JudgeAPIError(f"{self.url} answered HTTP {status} ({hint}): {detail[:500]}")


def _message_text(raw: bytes) -> str:
    """The first choice's text from a chat-completions response body."""
    try:
        payload = json.loads(raw)
        content = payload["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise _Transient(f"unreadable response body ({type(exc).__name__})") from exc
    if isinstance(content, list):  # some servers return content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if not isinstance(content, str):
        raise _Transient("response message has no text content")
    return content


def _read_key(env: str | None) -> str | None:
    if not env:
        return None
    key = os.environ.get(env, "").strip()
    if not key:
        raise ConfigError(
            f"This endpoint needs an API key in the environment variable {env}, which is unset. "
            f"Set it (export {env}=...), name another variable with api_key_env=NAME, "
            "or pass api_key_env= (empty) for a local server without authentication.")
    return key
