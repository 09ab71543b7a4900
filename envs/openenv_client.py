"""Clients of ``knowgen serve env``: OpenEnv's WebSocket client, typed, and an HTTP session.

:class:`SearchGenEnvClient` is an ``openenv`` ``EnvClient`` (the class OpenEnv
environments ship as their client): it holds one WebSocket session and sends
:class:`~knowgen.envs.openenv_models.SearchGenAction`, reading back
:class:`~knowgen.envs.openenv_models.SearchGenObservation` in OpenEnv's
``StepResult``. Any OpenEnv client works too (``GenericEnvClient`` with dicts).

:class:`SearchGenHttpSession` plays the same episodes over the server's
``/sessions`` routes, for callers that cannot keep a WebSocket open.

Example:
    >>> with SearchGenEnvClient(base_url="http://127.0.0.1:8200").sync() as env:
    ...     result = env.reset(seed=0)
    ...     result = env.step(SearchGenAction(tool="image_search",
    ...                                       arguments={"query": "Flag of Peru"}))
    ...     result.observation.image_ids, result.reward, result.done
"""

from __future__ import annotations

from typing import Any

from knowgen.errors import MissingDependencyError, SessionError

try:
    from openenv.core.client_types import StepResult
    from openenv.core.env_client import EnvClient
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError(exc.name or "openenv", "openenv",
                                 "The SearchGenEnv OpenEnv client") from None

from knowgen.envs.openenv_models import SearchGenAction, SearchGenObservation, SearchGenState


def action_payload(action: SearchGenAction | dict[str, Any]) -> dict[str, Any]:
    """The JSON of an action (unset fields left out); dicts are checked against the model first."""
    if not isinstance(action, SearchGenAction):
        action = SearchGenAction.model_validate(action)
    return action.model_dump(exclude_none=True, exclude_defaults=True)


def parse_result(payload: dict[str, Any]) -> StepResult[SearchGenObservation]:
    """A server answer (``{"observation", "reward", "done", "metadata"}``) as a ``StepResult``."""
    fields = dict(payload.get("observation") or {})
    fields.update(reward=payload.get("reward"), done=bool(payload.get("done", False)))
    observation = SearchGenObservation.model_validate(fields)
    return StepResult(observation=observation, reward=observation.reward,
                      done=observation.done, metadata=observation.metadata)


class SearchGenEnvClient(EnvClient[SearchGenAction, SearchGenObservation, SearchGenState]):
    """OpenEnv's WebSocket client for ``knowgen serve env``, with the typed models.

    Built like any ``EnvClient``: ``SearchGenEnvClient(base_url=URL, headers=
    {"Authorization": "Bearer TOKEN"})``; use ``.sync()`` for blocking calls.
    ``reset`` takes ``seed``, ``task_id``, ``task_index``, ``episode_id`` and ``images``.
    """

    def _step_payload(self, action: SearchGenAction) -> dict[str, Any]:
        return action_payload(action)

    def _parse_result(self, payload: dict[str, Any]) -> StepResult[SearchGenObservation]:
        return parse_result(payload)

    def _parse_state(self, payload: dict[str, Any]) -> SearchGenState:
        return SearchGenState.model_validate(payload)


class SearchGenHttpSession:
    """One episode session over the server's ``/sessions`` routes (blocking, httpx).

    Args:
        base_url: The server, e.g. ``http://127.0.0.1:8200``.
        token: Bearer token, when the server needs one.
        timeout: Seconds each request may take.

    Raises:
        SessionError: (from each call) when the server refuses a request; the
            message is the server's, prefixed with the HTTP status.
    """

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 300.0):
        import httpx

        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers,
                                  timeout=timeout)
        self.session_id: str | None = None

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        response = self._http.request(method, path, json=body)
        if response.status_code >= 400:
            try:
                message = response.json().get("error", response.text)
            except ValueError:
                message = response.text
            raise SessionError(f"HTTP {response.status_code}: {message}")
        return response.json()

    def open(self) -> str:
        """Open the session (once); returns its id."""
        if self.session_id is None:
            self.session_id = self._call("POST", "/sessions")["session_id"]
        return self.session_id

    def reset(self, **kwargs: Any) -> StepResult[SearchGenObservation]:
        """Start an episode (``seed``, ``task_id``, ``task_index``, ``episode_id``, ``images``)."""
        return parse_result(self._call("POST", f"/sessions/{self.open()}/reset", kwargs))

    def step(self, action: SearchGenAction | dict[str, Any]) -> StepResult[SearchGenObservation]:
        """Carry out one turn."""
        body = {"action": action_payload(action)}
        return parse_result(self._call("POST", f"/sessions/{self.open()}/step", body))

    def state(self) -> SearchGenState:
        """The episode's state."""
        return SearchGenState.model_validate(
            self._call("GET", f"/sessions/{self.open()}/state"))

    def close(self) -> None:
        """Close the session on the server and the connection."""
        try:
            if self.session_id is not None:
                self._call("DELETE", f"/sessions/{self.session_id}")
        finally:
            self.session_id = None
            self._http.close()

    def __enter__(self) -> SearchGenHttpSession:  # noqa: PYI034
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["SearchGenEnvClient", "SearchGenHttpSession", "action_payload", "parse_result"]
