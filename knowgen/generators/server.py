"""Serve any image generator over HTTP, so that many workers share one model.

``knowgen serve generator --generator diffusers:path=/models/qwen-image-edit``
loads the generator once and answers a small JSON API; clients use the
``http`` generator (:class:`knowgen.generators.http_client.HttpGenerator`).

API:

* ``POST /generate`` with ``{"prompt": str, "references": [str, ...], "seed": int,
  "size": 512 | "768x512" | [768, 512] | null}``; each reference is a base64
  PNG, JPEG or WebP file (a ``data:image/...;base64,`` prefix is allowed). The
  answer is ``{"image": base64 PNG, "seconds": float, "queued_seconds": float,
  "width": int, "height": int}``; ``seconds`` is the generation time alone.
  ``size`` is passed to generators whose ``generate`` takes a ``size``; the
  image of any other generator is resized to it.
* ``GET /health`` answers ``{"status": "ok", "generator": {...}, "queue": {...},
  "served": int, "failed": int, "mean_seconds": float}``.

Errors are ``{"error": message}`` with status 413 (body over
``max_request_bytes``), 422 (invalid request, unreadable reference, or a
request the generator cannot draw), 503 with ``Retry-After`` (queue full) or
500 (the generator failed). One worker thread runs the generator, one request
at a time, in arrival order; at most ``max_queue`` requests wait behind it.

Example:
    >>> app = create_app(Compositor(size=256), max_queue=8)
    >>> with BackgroundServer(app) as server:
    ...     HttpGenerator(server.url).generate('"HELLO"', [])
"""

# No ``from __future__ import annotations`` here: FastAPI reads the endpoint
# annotations, which name types local to create_app.

import asyncio
import base64
import binascii
import io
import logging
import math
import queue
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from PIL import Image

from knowgen.errors import ConfigError, KnowgenError, MissingDependencyError, ToolError
from knowgen.generators.cache import describe_generator
from knowgen.generators.diffusers_gen import parse_size

logger = logging.getLogger(__name__)

#: Default largest request body (32 MiB: a few large reference images).
MAX_REQUEST_BYTES = 32 * 1024 * 1024
#: Default number of requests that may wait behind the one being drawn.
MAX_QUEUE = 16
#: Longest prompt, in characters.
MAX_PROMPT_CHARS = 20_000
#: Most references in one request.
MAX_REFERENCES = 16
#: Default port of ``knowgen serve generator``.
DEFAULT_PORT = 8100
_FORMATS = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp"}


def _require_serving() -> tuple[Any, Any]:
    try:
        import fastapi
        import pydantic
    except ImportError as exc:
        raise MissingDependencyError(exc.name or "fastapi", "serve",
                                     "The generator server") from None
    return fastapi, pydantic


class RequestError(ValueError):
    """A request the server refuses, with its HTTP status."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


class QueueFullError(RuntimeError):
    """Every waiting place of the queue is taken."""

    def __init__(self, wait_estimate: float):
        super().__init__("queue full")
        self.wait_estimate = wait_estimate


class WorkQueue:
    """One worker thread running jobs in arrival order, at most ``max_queue`` waiting.

    Args:
        max_queue: Jobs that may wait while one runs; :meth:`submit` refuses more.
    """

    def __init__(self, max_queue: int):
        self.max_queue = max_queue
        self._jobs: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._waiting = 0
        self._busy = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.served = self.failed = 0
        self._seconds = 0.0

    def start(self) -> None:
        """Start the worker thread (again after :meth:`stop`)."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="knowgen-generator",
                                            daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Let the running job finish, then end the worker; waiting jobs are cancelled."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        while True:
            try:
                _, future, _, _ = self._jobs.get_nowait()
            except queue.Empty:
                break
            future.cancel()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        """Queue ``fn(*args)``; the returned future holds its result.

        Raises:
            QueueFullError: when ``max_queue`` jobs already wait.
        """
        self.start()
        with self._lock:
            if self._waiting >= self.max_queue and (self._busy or self._waiting):
                raise QueueFullError(self._mean() * (self._waiting + 1))
            self._waiting += 1
        future: Future = Future()
        self._jobs.put((fn, future, args, time.perf_counter()))
        return future

    def stats(self) -> dict[str, Any]:
        """Queue length, busy flag and counters, for ``/health``."""
        with self._lock:
            return {"queue": {"waiting": self._waiting, "max_queue": self.max_queue,
                              "busy": self._busy},
                    "served": self.served, "failed": self.failed,
                    "mean_seconds": round(self._mean(), 4) if self.served + self.failed else None}

    def _mean(self) -> float:
        done = self.served + self.failed
        return self._seconds / done if done else 1.0

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                fn, future, args, _ = self._jobs.get(timeout=0.1)
            except queue.Empty:
                continue
            with self._lock:
                self._waiting -= 1
                self._busy = True
            if future.set_running_or_notify_cancel():
                self._execute(fn, future, args)
            else:
                with self._lock:
                    self._busy = False

    def _execute(self, fn: Callable[..., Any], future: Future, args: tuple) -> None:
        start = time.perf_counter()
        result: Any = None
        error: BaseException | None = None
        try:
            result = fn(*args)
        except Exception as exc:  # noqa: BLE001 - handed to the caller through the future
            error = exc
        with self._lock:
            self._busy = False
            self._seconds += time.perf_counter() - start
            self.served += int(error is None)
            self.failed += int(error is not None)
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)


def encode_png(image: Image.Image) -> str:
    """Base64 text of ``image`` saved as PNG."""
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def decode_reference(text: str, index: int) -> tuple[bytes, str]:
    """Check one base64 reference and return its bytes and file suffix.

    Raises:
        RequestError: when it is not base64 of a readable PNG, JPEG or WebP image.
    """
    if text.startswith("data:"):
        text = text.partition(",")[2]
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(f"references[{index}] is not valid base64.") from None
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format
            img.load()
    except Image.DecompressionBombError:
        raise RequestError(f"references[{index}] has too many pixels; send a smaller image.") from None
    except (OSError, ValueError, SyntaxError):
        raise RequestError(f"references[{index}] is not a readable PNG, JPEG or WebP image.") from None
    if fmt not in _FORMATS:
        raise RequestError(f"references[{index}] is a {fmt} image; send PNG, JPEG or WebP.")
    return data, _FORMATS[fmt]


def _error_text(exc: Any) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ())) or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


def _request_model() -> Any:
    from pydantic import BaseModel, Field

    class GenerateRequest(BaseModel):
        """Body of ``POST /generate``."""

        prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
        references: list[str] = Field(default_factory=list, max_length=MAX_REFERENCES)
        seed: int = Field(default=0, ge=0, le=2**63 - 1)
        size: int | str | list[int] | None = None

    return GenerateRequest


def run_generation(generator: Any, prompt: str, refs: list[tuple[bytes, str]], seed: int,
                   size: tuple[int, int] | None) -> tuple[Image.Image, float]:
    """Write the references to a temporary folder, call the generator, time it."""
    with tempfile.TemporaryDirectory(prefix="knowgen-gen-") as tmp:
        paths = []
        for i, (data, suffix) in enumerate(refs):
            path = Path(tmp) / f"ref{i:02d}{suffix}"
            path.write_bytes(data)
            paths.append(path)
        start = time.perf_counter()
        if size is not None and _takes_size(generator):
            image = generator.generate(prompt, paths, seed=seed, size=size)
        else:
            image = generator.generate(prompt, paths, seed=seed)
            if size is not None and image.size != size:
                image = image.resize(size, Image.Resampling.LANCZOS)
        return image.convert("RGB"), time.perf_counter() - start


def _takes_size(generator: Any) -> bool:
    import inspect

    try:
        return "size" in inspect.signature(generator.generate).parameters
    except (TypeError, ValueError):
        return False


def create_app(generator: Any, max_queue: int = MAX_QUEUE,
               max_request_bytes: int = MAX_REQUEST_BYTES) -> Any:
    """A FastAPI app serving ``generator`` on ``POST /generate`` and ``GET /health``.

    Args:
        generator: Any object with ``generate(prompt, references, seed)``.
        max_queue: Requests that may wait while one is drawn; more get 503.
        max_request_bytes: Largest request body; larger ones get 413.

    Raises:
        ConfigError: for a negative ``max_queue`` or a non-positive ``max_request_bytes``.
        MissingDependencyError: when fastapi is not installed.
    """
    fastapi, pydantic = _require_serving()
    from fastapi.responses import JSONResponse

    if max_queue < 0 or max_request_bytes <= 0:
        raise ConfigError("max_queue must be >= 0 and max_request_bytes > 0.")
    model = _request_model()
    work = WorkQueue(max_queue)

    @asynccontextmanager
    async def lifespan(_app: Any):
        work.start()
        yield
        work.stop()

    app = fastapi.FastAPI(title="knowgen generator", lifespan=lifespan,
                          description="Draws images for knowgen; see POST /generate.")
    app.state.work, app.state.generator = work, generator

    def fail(status: int, message: str, headers: dict[str, str] | None = None) -> Any:
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "generator": describe_generator(generator), **work.stats()}

    @app.post("/generate")
    async def generate(request: fastapi.Request) -> Any:
        try:
            raw = await _read_body(request, max_request_bytes)
            body = _validate(model, pydantic, raw)
            size = parse_size(body.size) if body.size is not None else None
            refs = await asyncio.to_thread(
                lambda: [decode_reference(r, i) for i, r in enumerate(body.references)])
        except ConfigError as exc:
            return fail(422, f"size: {exc}")
        except RequestError as exc:
            return fail(exc.status, str(exc))
        queued = time.perf_counter()
        try:
            future = work.submit(run_generation, generator, body.prompt, refs, body.seed, size)
        except QueueFullError as exc:
            retry = max(1, math.ceil(exc.wait_estimate))
            return fail(503, f"The generator queue is full ({work.max_queue} waiting); retry "
                        f"in about {retry} s.", {"Retry-After": str(retry)})
        try:
            image, seconds = await asyncio.wrap_future(future)
        except (ToolError, ConfigError) as exc:
            return fail(422, str(exc))
        except KnowgenError as exc:
            return fail(500, str(exc))
        except Exception as exc:  # the generator's own failure must not kill the server
            logger.exception("generation failed")
            return fail(500, f"Generation failed: {type(exc).__name__}: {exc}")
        waited = time.perf_counter() - queued - seconds
        return {"image": encode_png(image), "seconds": round(seconds, 4),
                "queued_seconds": round(max(waited, 0.0), 4),
                "width": image.width, "height": image.height}

    return app


async def _read_body(request: Any, limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and length.strip().isdigit() and int(length) > limit:
        raise RequestError(f"The request body is larger than {limit} bytes; send fewer or "
                           "smaller references.", 413)
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise RequestError(f"The request body is larger than {limit} bytes; send fewer "
                               "or smaller references.", 413)
        chunks.append(chunk)
    return b"".join(chunks)


def _validate(model: Any, pydantic: Any, raw: bytes) -> Any:
    if not raw.strip():
        raise RequestError('The body is empty; send JSON like {"prompt": "...", '
                           '"references": [], "seed": 0}.')
    try:
        return model.model_validate_json(raw)
    except pydantic.ValidationError as exc:
        raise RequestError(f"Invalid request: {_error_text(exc)}.") from None


class BackgroundServer:
    """Run an ASGI app with uvicorn in a background thread (tests, notebooks, benchmarks).

    Args:
        app: The ASGI app, e.g. from :func:`create_app`.
        host: Address to listen on.
        port: Port; 0 picks a free one.
        name: What the app serves, for the error raised when it does not start.

    Example:
        >>> with BackgroundServer(create_app(gen)) as server:
        ...     print(server.url)
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0,
                 name: str = "generator server"):
        import uvicorn

        self._server = uvicorn.Server(uvicorn.Config(app, host=host, port=port,
                                                     log_level="warning", access_log=False))
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self.url = ""
        self.name = name

    def __enter__(self) -> "BackgroundServer":  # noqa: PYI034
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ConfigError(f"The {self.name} did not start; is the port free?")
            time.sleep(0.02)
        host, port = self._server.servers[0].sockets[0].getsockname()[:2]
        self.url = f"http://{host}:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)


def serve_generator(spec: str, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                    max_queue: int = MAX_QUEUE, max_request_bytes: int = MAX_REQUEST_BYTES,
                    log_level: str = "info") -> None:
    """Build the generator named by ``spec`` and serve it until interrupted.

    Args:
        spec: Generator spec, e.g. ``"diffusers:path=/models/qwen-image-edit,preset=qwen-image-edit"``.
        host: Address to listen on (``0.0.0.0`` to accept other machines).
        port: Port to listen on.
        max_queue: Requests that may wait while one is drawn.
        max_request_bytes: Largest request body.
        log_level: uvicorn's log level.

    Raises:
        MissingDependencyError: when fastapi or uvicorn is not installed.
    """
    from knowgen.registry import GENERATORS

    _require_serving()
    try:
        import uvicorn
    except ImportError:
        raise MissingDependencyError("uvicorn", "serve", "The generator server") from None
    generator = GENERATORS.create(spec)
    app = create_app(generator, max_queue=max_queue, max_request_bytes=max_request_bytes)
    logger.info("Serving generator %s on http://%s:%d (Ctrl-C stops)", spec, host, port)
    uvicorn.run(app, host=host, port=port, log_level=log_level)
