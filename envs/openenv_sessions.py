"""Stateful episodes over plain HTTP, on the OpenEnv server's own session pool.

OpenEnv's HTTP ``POST /reset`` and ``POST /step`` build a fresh environment for
every request (only its WebSocket ``/ws`` keeps an episode). For trainers and
tools that cannot hold a WebSocket open, these routes give an HTTP session
that lives in the very pool ``/ws`` sessions live in: the same session limit,
the same idle expiry, the same one-thread-per-session executor, and a session
created here can be driven over ``/ws?session_id=...`` too.

Routes (bodies and answers are JSON; errors are ``{"error": message}``):

* ``POST /sessions`` -> 201 ``{"session_id", "active_sessions", "max_sessions",
  "idle_timeout_s"}``; 503 with ``Retry-After`` when every session is taken;
* ``GET /sessions`` -> the pool's counts (never the ids of other sessions);
* ``POST /sessions/{id}/reset`` with reset arguments (``seed``, ``task_id``,
  ``task_index``, ``episode_id``, ``images``) -> ``{"observation", "reward",
  "done", "metadata"}``, the format of OpenEnv's ``/reset``;
* ``POST /sessions/{id}/step`` with ``{"action": {...}}`` -> the same format;
* ``GET /sessions/{id}/state`` -> the episode's state;
* ``DELETE /sessions/{id}`` -> ``{"session_id", "closed": true}``.

An unknown or expired id gets 404, a session driven by a WebSocket 409, a body
that is not what the route takes 422, a step with no episode running 409.
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoint annotations.

import json
import logging
import math
from collections.abc import Callable
from typing import Any

from openenv.core.env_server.exceptions import EnvironmentFactoryError, SessionCapacityError
from openenv.core.env_server.serialization import serialize_observation
from pydantic import ValidationError

from knowgen.envs.openenv_env import RESET_ARGUMENTS
from knowgen.envs.openenv_models import SearchGenAction
from knowgen.errors import ConfigError, KnowgenError, MissingDependencyError, SessionError

logger = logging.getLogger(__name__)

_MISSING = object()


class HttpError(Exception):
    """A request a session route refuses, with its status."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.headers = status, headers or {}


def error_status(exc: BaseException) -> int:
    """The HTTP status for an error raised while serving a request."""
    if isinstance(exc, SessionError):
        return 409
    if isinstance(exc, (ConfigError, ValidationError)):
        return 422
    if isinstance(exc, KnowgenError) and not isinstance(exc, MissingDependencyError):
        return 422 if isinstance(exc, KeyError) else 500  # UnknownNameError is a KeyError
    return 500


def validation_message(exc: ValidationError) -> str:
    """One line per problem of a pydantic error: ``where: what``."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ())) or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


async def _json_object(request: Any, what: str, allow_empty: bool = False) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip() and allow_empty:
        return {}
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise HttpError(422, f"The body is not JSON; send {what}.") from None
    except RecursionError:
        raise HttpError(422, f"The body is nested too deeply to read; send {what}.") from None
    if not isinstance(data, dict):
        raise HttpError(422, f"The body must be a JSON object; send {what}.")
    return data


class SessionRoutes:
    """The ``/sessions`` routes over an ``HTTPEnvServer``'s session pool.

    Args:
        server: The ``openenv`` ``HTTPEnvServer`` whose pool the sessions join.
        idle_timeout_s: Idle seconds after which the pool's reaper ends a session
            (``None``: never), reported to clients.
    """

    def __init__(self, server: Any, idle_timeout_s: float | None):
        self.server = server
        self.idle_timeout_s = idle_timeout_s

    def counts(self) -> dict[str, Any]:
        """Sessions in use, the limit and the idle timeout."""
        return {"active_sessions": self.server.active_sessions,
                "max_sessions": self.server.max_concurrent_envs,
                "idle_timeout_s": self.idle_timeout_s}

    async def create(self) -> dict[str, Any]:
        """Open a session; 503 when the pool is full."""
        try:
            session_id, _env = await self.server._create_session()
        except SessionCapacityError as exc:
            retry = max(1, math.ceil(min(self.idle_timeout_s or 5.0, 5.0)))
            expiry = (f", wait for an idle one to expire (after {self.idle_timeout_s:g} s)"
                      if self.idle_timeout_s else "")
            raise HttpError(503, f"All {exc.max_sessions} sessions are in use; close one "
                            f"(DELETE /sessions/ID, or close its WebSocket){expiry}, or start "
                            "the server with a larger --max-sessions.",
                            {"Retry-After": str(retry)}) from None
        except EnvironmentFactoryError as exc:
            logger.error("Building a session's environment failed", exc_info=exc.__cause__)
            raise HttpError(500, f"The environment could not be built: {exc.__cause__}") from None
        return {"session_id": session_id, **self.counts()}

    async def _env(self, session_id: str) -> Any:
        server = self.server
        async with server._session_lock:
            env = server._sessions.get(session_id, _MISSING)
            attached = session_id in server._session_websocket_attachments
        if env is _MISSING:
            expiry = (f", expired after {self.idle_timeout_s:g} s idle"
                      if self.idle_timeout_s else "")
            raise HttpError(404, f"Unknown session {session_id!r}: it was closed{expiry}, or "
                            "never existed. Open one with POST /sessions.")
        if env is None:
            raise HttpError(409, f"Session {session_id!r} is still starting; retry shortly.")
        if attached:
            raise HttpError(409, f"Session {session_id!r} is driven by a WebSocket; send its "
                            "requests on that connection.")
        return env

    async def _run(self, session_id: str, call: Callable[[], Any], is_step: bool) -> Any:
        """``call()`` in the session's own thread; marks the session active."""
        result = await self.server._run_in_session_executor(session_id, call)
        self.server._update_session_activity(session_id, increment_step=is_step)
        return result

    async def reset(self, session_id: str, request: Any) -> dict[str, Any]:
        """Start an episode in the session."""
        env = await self._env(session_id)
        kwargs = await _json_object(request, 'reset arguments such as {"seed": 0} or '
                                    '{"task_id": "..."}', allow_empty=True)
        unknown = sorted(set(kwargs) - set(RESET_ARGUMENTS))
        if unknown:
            raise HttpError(422, f"Unknown reset argument(s) {unknown}; reset takes "
                            f"{', '.join(RESET_ARGUMENTS)}.")
        observation = await self._run(session_id, lambda: env.reset(**kwargs), False)
        return serialize_observation(observation)

    async def step(self, session_id: str, request: Any) -> dict[str, Any]:
        """Carry out one turn in the session."""
        env = await self._env(session_id)
        body = await _json_object(request, '{"action": {"text": "..."}}')
        extra = sorted(set(body) - {"action"})
        if "action" not in body or extra:
            raise HttpError(422, 'Send {"action": {...}} and nothing else'
                            + (f" (unexpected: {', '.join(extra)})." if extra else "."))
        if not isinstance(body["action"], dict):
            raise HttpError(422, '"action" must be an object such as {"text": "..."}.')
        try:
            action = SearchGenAction.model_validate(body["action"])
        except ValidationError as exc:
            raise HttpError(422, f"Invalid action: {validation_message(exc)}.") from None
        return serialize_observation(await self._run(session_id, lambda: env.step(action), True))

    async def state(self, session_id: str) -> dict[str, Any]:
        """The session's episode state."""
        env = await self._env(session_id)
        self.server._update_session_activity(session_id)
        return env.state.model_dump()

    async def close(self, session_id: str) -> dict[str, Any]:
        """End the session and free its place."""
        await self._env(session_id)
        await self.server._destroy_session(session_id)
        return {"session_id": session_id, "closed": True}


def add_session_routes(app: Any, server: Any, idle_timeout_s: float | None) -> SessionRoutes:
    """Register the ``/sessions`` routes on ``app`` (see the module docstring)."""
    from fastapi import Request
    from fastapi.responses import JSONResponse

    routes = SessionRoutes(server, idle_timeout_s)

    async def answer(work: Any, status: int = 200) -> Any:
        try:
            return JSONResponse(await work, status_code=status)
        except HttpError as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.status, headers=exc.headers)
        except Exception as exc:  # the server must keep serving whatever a session raises
            status = error_status(exc)
            if status >= 500:
                logger.exception("A session request failed")
            message = validation_message(exc) if isinstance(exc, ValidationError) else str(exc)
            return JSONResponse({"error": message}, status_code=status)

    tags = ["HTTP sessions"]

    @app.post("/sessions", tags=tags, status_code=201, summary="Open a session")
    async def create_session() -> Any:
        return await answer(routes.create(), 201)

    @app.get("/sessions", tags=tags, summary="Sessions in use and the limits")
    async def session_counts() -> Any:
        return routes.counts()

    @app.post("/sessions/{session_id}/reset", tags=tags, summary="Start an episode")
    async def session_reset(session_id: str, request: Request) -> Any:
        return await answer(routes.reset(session_id, request))

    @app.post("/sessions/{session_id}/step", tags=tags, summary="Carry out one turn")
    async def session_step(session_id: str, request: Request) -> Any:
        return await answer(routes.step(session_id, request))

    @app.get("/sessions/{session_id}/state", tags=tags, summary="The episode's state")
    async def session_state(session_id: str) -> Any:
        return await answer(routes.state(session_id))

    @app.delete("/sessions/{session_id}", tags=tags, summary="Close a session")
    async def session_close(session_id: str) -> Any:
        return await answer(routes.close(session_id))

    return routes


__all__ = ["HttpError", "SessionRoutes", "add_session_routes", "error_status",
           "validation_message"]
