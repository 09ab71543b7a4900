"""``knowgen serve env``: SearchGenEnv served to the OpenEnv specification.

The app is OpenEnv's own server (``openenv.core.env_server.HTTPEnvServer``)
serving :class:`~knowgen.envs.openenv_env.SearchGenOpenEnv` with the typed
models of :mod:`knowgen.envs.openenv_models`, so it answers exactly what the
OpenEnv clients expect:

* ``WS /ws``: the OpenEnv session (``EnvClient`` / ``GenericEnvClient``): one
  environment per connection, ``reset`` / ``step`` / ``state`` messages;
* ``POST /reset``, ``POST /step``, ``GET /state``: OpenEnv's stateless HTTP
  routes (a fresh environment per request, so ``/step`` answers 409 there);
* ``GET /schema``, ``/health``, ``/metadata``, the Task API, ``/mcp``;
* ``/sessions/...``: stateful HTTP sessions in the same pool as ``/ws``
  (:mod:`knowgen.envs.openenv_sessions`).

Around it: at most ``max_sessions`` sessions at once (idle ones expire after
``idle_timeout_s``), an optional bearer token and a request size limit checked
before anything else (:mod:`knowgen.envs.openenv_guard`), and errors that say
what to fix (``{"error": ...}`` with a 4xx) instead of a crash.

Example:
    >>> from knowgen.generators.server import BackgroundServer
    >>> with BackgroundServer(create_env_app(max_sessions=8), name="environment server") as s:
    ...     client = SearchGenEnvClient(base_url=s.url).sync()
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from knowgen.config import EnvConfig
from knowgen.errors import ConfigError, MissingDependencyError

logger = logging.getLogger(__name__)

DEFAULT_PORT = 8200
"""Default port of ``knowgen serve env`` (the container image listens on 8000)."""
DEFAULT_MAX_SESSIONS = 32
"""Default number of concurrent sessions (WebSocket and HTTP together)."""
DEFAULT_IDLE_TIMEOUT_S = 900.0
"""Default idle seconds after which a session is ended."""
DEFAULT_MAX_REQUEST_BYTES = 1024 * 1024
"""Default largest HTTP body or WebSocket message (actions are at most 64K characters)."""
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def require_openenv() -> None:
    """Fail early, naming the extra, when ``openenv`` (or the server stack) is missing.

    Raises:
        MissingDependencyError: when ``openenv``, ``fastapi`` or ``uvicorn`` is missing.
    """
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401

        import knowgen.envs.openenv_models  # noqa: F401  (raises naming the extra)
    except MissingDependencyError:
        raise
    except ImportError as exc:
        raise MissingDependencyError(exc.name or "openenv", "openenv",
                                     "The OpenEnv environment server") from None


def check_limits(max_sessions: int, idle_timeout_s: float | None,
                 max_request_bytes: int) -> None:
    """Refuse limits that cannot work.

    Raises:
        ConfigError: for fewer than one session, a non-positive timeout or size.
    """
    if isinstance(max_sessions, bool) or not isinstance(max_sessions, int) or max_sessions < 1:
        raise ConfigError(f"max_sessions must be a positive integer, got {max_sessions!r}.")
    if idle_timeout_s is not None and not idle_timeout_s > 0:
        raise ConfigError(f"idle_timeout_s must be more than 0 (or None for no expiry), got "
                          f"{idle_timeout_s!r}.")
    if not max_request_bytes > 0:
        raise ConfigError(f"max_request_bytes must be more than 0, got {max_request_bytes!r}.")


def create_env_app(config: EnvConfig | None = None, *,
                   max_sessions: int = DEFAULT_MAX_SESSIONS,
                   idle_timeout_s: float | None = DEFAULT_IDLE_TIMEOUT_S,
                   max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
                   token: str | None = None, images: bool = False,
                   backends: dict[str, Any] | None = None) -> Any:
    """The FastAPI app serving SearchGenEnv over OpenEnv (see the module docstring).

    The benchmark and backends are built here, once, and shared by every session.

    Args:
        config: Environment settings (default: the offline world's test split).
        max_sessions: Most sessions at once; more get a capacity error (503 over HTTP).
        idle_timeout_s: Idle seconds before a session ends; ``None`` never.
        max_request_bytes: Largest HTTP body and WebSocket message.
        token: Bearer token every request must carry; ``None`` for none.
        images: Attach image bytes to observations unless ``reset`` says otherwise.
        backends: Ready backends (``benchmark``, ``text_search``, ...) to serve.

    Raises:
        ConfigError: for impossible limits or settings.
        MissingDependencyError: without ``knowgen[openenv]``.
    """
    require_openenv()
    check_limits(max_sessions, idle_timeout_s, max_request_bytes)
    if token is not None and not token.strip():
        raise ConfigError("The token is empty; give a non-empty token or none.")
    from fastapi import FastAPI
    from openenv.core.env_server import ConcurrencyConfig, HTTPEnvServer

    import knowgen
    from knowgen.envs.openenv_env import ENV_NAME, SearchGenOpenEnv, SessionBackends
    from knowgen.envs.openenv_guard import RequestGuard
    from knowgen.envs.openenv_models import SearchGenAction, SearchGenObservation, SearchGenState
    from knowgen.envs.openenv_sessions import add_session_routes

    shared = SessionBackends(config, images=images, backends=backends)
    shared.make_env().close()  # build the world and backends now, not in the first session
    app = FastAPI(title="knowgen SearchGenEnv (OpenEnv)", version="1.0.0",
                  description=f"knowgen {knowgen.__version__}: SearchGenEnv served to the "
                  "OpenEnv HTTP/WebSocket API 1.x. Play episodes over WS /ws (OpenEnv's "
                  "EnvClient) or the /sessions routes.")
    server = HTTPEnvServer(
        functools.partial(SearchGenOpenEnv, shared), SearchGenAction, SearchGenObservation,
        concurrency_config=ConcurrencyConfig(max_concurrent_envs=max_sessions,
                                             session_timeout=idle_timeout_s),
        env_name=ENV_NAME, state_cls=SearchGenState)
    server.register_routes(app, mode="simulation")
    add_session_routes(app, server, idle_timeout_s)
    _add_error_handlers(app)
    app.add_middleware(RequestGuard, token=token, max_request_bytes=max_request_bytes)
    app.state.openenv_server, app.state.shared = server, shared
    return app


def _add_error_handlers(app: Any) -> None:
    """Turn knowgen's errors raised inside OpenEnv's routes into 4xx answers with the message."""
    from fastapi.responses import JSONResponse

    from knowgen.envs.openenv_sessions import error_status
    from knowgen.errors import KnowgenError

    async def knowgen_error(_request: Any, exc: Exception) -> Any:
        status = error_status(exc)
        if status >= 500:
            logger.error("Request failed: %s", exc)
        return JSONResponse({"error": str(exc)}, status_code=status)

    app.add_exception_handler(KnowgenError, knowgen_error)


def serve_env(config: EnvConfig | None = None, *, host: str = "127.0.0.1",
              port: int = DEFAULT_PORT, max_sessions: int = DEFAULT_MAX_SESSIONS,
              idle_timeout_s: float | None = DEFAULT_IDLE_TIMEOUT_S,
              max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES, token: str | None = None,
              images: bool = False, log_level: str = "info") -> None:
    """Build the app of :func:`create_env_app` and serve it with uvicorn until interrupted.

    Args:
        config: Environment settings.
        host: Address to listen on; anything but loopback must be asked for.
        port: Port to listen on (0: any free one; the log names it).
        max_sessions: Most sessions at once.
        idle_timeout_s: Idle seconds before a session ends.
        max_request_bytes: Largest HTTP body and WebSocket message.
        token: Bearer token every request must carry.
        images: Attach image bytes to observations by default.
        log_level: uvicorn's log level.

    Raises:
        ConfigError: for impossible limits or settings.
        MissingDependencyError: without ``knowgen[openenv]``.
    """
    app = create_env_app(config, max_sessions=max_sessions, idle_timeout_s=idle_timeout_s,
                         max_request_bytes=max_request_bytes, token=token, images=images)
    import uvicorn

    if host not in LOOPBACK and token is None:
        logger.warning("Listening on %s without a token: anyone who can reach this port can "
                       "use the server (give --token-env NAME to require one).", host)
    cfg = app.state.shared.config
    logger.info("Serving SearchGenEnv (%s, split %s) over OpenEnv on http://%s:%d: at most %d "
                "sessions, idle ones end after %s s (Ctrl-C stops)", cfg.benchmark, cfg.split,
                host, port, max_sessions, idle_timeout_s)
    uvicorn.run(app, host=host, port=port, log_level=log_level,
                ws_max_size=max(max_request_bytes, 1024) + 1024)


__all__ = ["DEFAULT_IDLE_TIMEOUT_S", "DEFAULT_MAX_REQUEST_BYTES", "DEFAULT_MAX_SESSIONS",
           "DEFAULT_PORT", "check_limits", "create_env_app", "require_openenv", "serve_env"]
