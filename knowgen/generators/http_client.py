"""The ``http`` generator: a client of ``knowgen serve generator`` (stdlib only).

Each :meth:`HttpGenerator.generate` sends the prompt and the reference files
(base64) to ``POST /generate`` and decodes the PNG it gets back. Busy or
failing servers are retried with exponential backoff: HTTP 429, 500, 502, 503
and 504 and refused or dropped connections, honouring ``Retry-After``. A read
timeout is not retried (the server may still be drawing; a retry would queue
the same work twice). Whatever still fails becomes a
:class:`GeneratorServiceError` (a :class:`~knowgen.errors.ToolError`) whose
message says what the server answered and what to do.

Example:
    >>> gen = HttpGenerator("http://127.0.0.1:8100", timeout=300)
    >>> gen.generate("the first reference image", [Path("flag.png")], seed=0)
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import logging
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from knowgen.errors import ConfigError, ToolError
from knowgen.generators.compositor import load_image

logger = logging.getLogger(__name__)

#: HTTP statuses worth another try.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: Longest single wait between tries, in seconds.
MAX_BACKOFF = 60.0
_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")


class GeneratorServiceError(ToolError):
    """A generator service refused or failed a request.

    Attributes:
        status: The HTTP status, or ``None`` when no answer came.
    """

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


def error_message(body: bytes) -> str:
    """The human message inside an error body (``{"error": ...}``, OpenAI or FastAPI style)."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return body[:300].decode("utf-8", "replace").strip() or "(empty body)"
    if isinstance(data, dict):
        err = data.get("error", data.get("detail", data))
        if isinstance(err, dict):
            err = err.get("message", err)
        return str(err)[:1000]
    return str(data)[:1000]


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def send_with_retries(make_request: Callable[[], urllib.request.Request], timeout: float,
                      max_retries: int, backoff: float, service: str) -> bytes:
    """Send a request, retrying busy or unreachable services; return the body.

    Args:
        make_request: Builds a fresh request for each try.
        timeout: Seconds to wait for each answer.
        max_retries: Extra tries after the first.
        backoff: First wait in seconds; it doubles each try (``Retry-After`` wins when longer).
        service: Name of the service for messages, e.g. ``"generator server http://..."``.

    Raises:
        GeneratorServiceError: when the service refuses the request or never answers.
    """
    for attempt in range(max_retries + 1):
        wait = min(MAX_BACKOFF, backoff * 2**attempt)
        try:
            with urllib.request.urlopen(make_request(), timeout=timeout) as resp:
                return resp.read()
        except urllib.error.HTTPError as exc:
            body, status = exc.read(), exc.code
            message = error_message(body)
            if status not in RETRY_STATUSES or attempt == max_retries:
                raise GeneratorServiceError(_status_text(service, status, message, attempt),
                                            status) from None
            hinted = _retry_after(exc.headers)
            wait = min(MAX_BACKOFF, max(wait, hinted or 0.0))
            logger.info("%s answered %d (%s); retrying in %.1f s", service, status, message, wait)
        except TimeoutError:
            raise GeneratorServiceError(
                f"{service} gave no answer within {timeout:g} s. Raise timeout= if the model is "
                "slow, or check that the server is not stuck.") from None
        except (urllib.error.URLError, ConnectionError, http.client.HTTPException, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, (TimeoutError, socket.timeout)):
                raise GeneratorServiceError(
                    f"{service} gave no answer within {timeout:g} s. Raise timeout= if the "
                    "model is slow.") from None
            if attempt == max_retries:
                raise GeneratorServiceError(
                    f"Cannot reach {service} ({reason}) after {attempt + 1} tries. Is it "
                    "running and is the URL right?") from None
            logger.info("%s unreachable (%s); retrying in %.1f s", service, reason, wait)
        time.sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover


def _status_text(service: str, status: int, message: str, attempt: int) -> str:
    tries = f" after {attempt + 1} tries" if attempt else ""
    if status == 413:
        return f"{service} refused the request as too large{tries}: {message}"
    if status in (401, 403):
        return f"{service} refused the credentials (HTTP {status}): {message}"
    if status in RETRY_STATUSES:
        return f"{service} is busy or failing (HTTP {status}{tries}): {message}"
    return f"{service} refused the request (HTTP {status}): {message}"


def reference_bytes(path: str | Path) -> bytes:
    """The file's bytes when it is PNG or JPEG, else the image re-encoded as PNG.

    Raises:
        ToolError: when the file is missing or not an image.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ToolError(f"Reference image {path} does not exist; pass files that exist.") from None
    except OSError as exc:
        raise ToolError(f"Reference image {path} cannot be read ({exc}).") from None
    if data.startswith(_IMAGE_MAGIC):
        return data
    buf = io.BytesIO()
    load_image(path).convert("RGBA").save(buf, format="PNG")
    return buf.getvalue()


def decode_image(text: Any, service: str) -> Image.Image:
    """An RGB image from base64 text.

    Raises:
        GeneratorServiceError: when the text is not a base64 image.
    """
    try:
        data = base64.b64decode(text, validate=True)
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            return img.convert("RGB")
    except (TypeError, ValueError, OSError) as exc:
        raise GeneratorServiceError(f"{service} sent back no readable image ({exc}).") from None


class HttpGenerator:
    """Generator ``"http"``: draws through a ``knowgen serve generator`` server.

    Args:
        url: The server, ``http://host:port`` (``/generate`` is added when missing).
        timeout: Seconds to wait for each answer (a queued request waits too).
        max_retries: Extra tries on 429/5xx answers and connection failures.
        size: Ask the server for this output size (``512``, ``"768x512"``, ``[768, 512]``).
        backoff: First wait between tries, in seconds; it doubles each try.

    Raises:
        ConfigError: when the URL is not http(s) or a number is out of range.
    """

    def __init__(self, url: str, timeout: float = 120.0, max_retries: int = 3,
                 size: Any = None, backoff: float = 1.0):
        url = str(url).rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"http generator url must start with http:// or https://, "
                              f"got {url!r}; e.g. url=http://127.0.0.1:8100")
        if timeout <= 0 or max_retries < 0 or backoff < 0:
            raise ConfigError("timeout must be > 0, max_retries >= 0 and backoff >= 0.")
        self.base_url = url.removesuffix("/generate")
        self.url = self.base_url + "/generate"
        self.timeout, self.max_retries, self.backoff = float(timeout), int(max_retries), backoff
        self.size = size
        self._service = f"generator server {self.base_url}"

    def describe(self) -> dict[str, Any]:
        """The URL and size (the model behind the server is not part of it)."""
        return {"generator": "http", "url": self.base_url, "size": self.size}

    def health(self) -> dict[str, Any]:
        """The server's ``GET /health`` answer.

        Raises:
            GeneratorServiceError: when the server does not answer.
        """
        body = send_with_retries(lambda: urllib.request.Request(self.base_url + "/health"),
                                 self.timeout, self.max_retries, self.backoff, self._service)
        return json.loads(body)

    def generate(self, prompt: str, references: Sequence[str | Path], seed: int = 0,
                 size: Any = None) -> Image.Image:
        """Ask the server for one image.

        Args:
            prompt: Generation prompt.
            references: Reference image files, in order (all are sent; the server's
                generator decides how many it uses).
            seed: Seed passed to the server's generator.
            size: Output size for this image (default: the ``size`` given at construction).

        Raises:
            knowgen.errors.ToolError: when a reference file is missing or unreadable.
            GeneratorServiceError: when the server refuses the request or cannot be reached.
        """
        payload: dict[str, Any] = {
            "prompt": prompt, "seed": int(seed),
            "references": [base64.b64encode(reference_bytes(p)).decode("ascii")
                           for p in references]}
        if (size or self.size) is not None:
            payload["size"] = size or self.size
        data = json.dumps(payload).encode("utf-8")

        def make() -> urllib.request.Request:
            return urllib.request.Request(self.url, data=data, method="POST",
                                          headers={"Content-Type": "application/json"})

        body = send_with_retries(make, self.timeout, self.max_retries, self.backoff,
                                 self._service)
        try:
            answer = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise GeneratorServiceError(f"{self._service} answered with something that is not "
                                        "JSON; is the URL a knowgen generator server?") from None
        if not isinstance(answer, dict) or "image" not in answer:
            raise GeneratorServiceError(f"{self._service} answered without an image; is the URL "
                                        "a knowgen generator server?")
        logger.debug("%s drew in %.2f s", self._service, answer.get("seconds", float("nan")))
        return decode_image(answer["image"], self._service)
