"""SearchGenEnv as an OpenEnv ``Environment``: one instance per served session.

:class:`SearchGenOpenEnv` wraps one :class:`~knowgen.envs.searchgen.SearchGenEnv`
and speaks OpenEnv's interface (``reset(seed, episode_id, **kw) -> Observation``,
``step(action) -> Observation``, ``state``). Every instance of one server takes
its benchmark and backends from one :class:`SessionBackends` (the world, its
search index and the judges are built once), while each keeps its own episode,
so sessions are isolated from each other the way ``make_env_factory`` isolates
TRL rollouts.

Observations carry the text, the ids of the images the text lists, and, for an
episode reset with ``images=True``, those images' bytes; ``metadata`` carries the
Gymnasium ``info`` with ``terminated`` and ``truncated``. Rewards are those of
the in-process environment, so an episode played over the wire pays exactly
what the same turns pay in-process.
"""

from __future__ import annotations

import base64
import json
import logging
import mimetypes
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from openenv.core.env_server.interfaces import Environment
from openenv.core.env_server.types import EnvironmentMetadata

from knowgen.config import EnvConfig
from knowgen.envs.messages import listed_image_ids
from knowgen.envs.openenv_models import (
    ImageData,
    SearchGenAction,
    SearchGenObservation,
    SearchGenState,
)
from knowgen.envs.shared import SharedBackends
from knowgen.errors import ConfigError, SessionError

logger = logging.getLogger(__name__)

ENV_NAME = "knowgen-searchgen"
"""The environment's name on the OpenEnv server (``/metadata``, the Task API)."""

RESET_ARGUMENTS = ("seed", "episode_id", "task_id", "task_index", "images")


class SessionBackends(SharedBackends):
    """The settings and backends every session of one server shares, built once.

    Args:
        config: Environment settings; ``observation_mode`` is forced to ``"text"``
            (images travel as files, see :class:`SearchGenObservation`).
        images: Whether episodes attach image bytes when ``reset`` does not say.
        backends: Ready backends to use instead of building them (tests, benchmarks).
    """

    def __init__(self, config: EnvConfig | None = None, *, images: bool = False,
                 backends: dict[str, Any] | None = None):
        cfg = config if config is not None else EnvConfig()
        super().__init__(replace(cfg, observation_mode="text"), backends)
        self.images = images


class SearchGenOpenEnv(Environment[SearchGenAction, SearchGenObservation, SearchGenState]):
    """One session's SearchGenEnv behind OpenEnv's ``Environment`` interface.

    Args:
        shared: Where the settings and backends come from; ``None`` builds a
            default :class:`SessionBackends` (offline world, test split).
    """

    SUPPORTS_CONCURRENT_SESSIONS = True

    def __init__(self, shared: SessionBackends | None = None):
        super().__init__()
        self.shared = shared if shared is not None else SessionBackends()
        self.env = self.shared.make_env()
        self._episode_id: str | None = None
        self._steps = 0
        self._done = True
        self._images = self.shared.images
        self._info: dict[str, Any] = {}
        self._closed = False

    # ------------------------------------------------------------------ API
    def reset(self, seed: int | None = None, episode_id: str | None = None,
              **kwargs: Any) -> SearchGenObservation:
        """Start an episode.

        Args:
            seed: Seeds the task draw (the same seed draws the same task in-process).
            episode_id: Your id for the episode (a random one when absent).
            **kwargs: ``task_id`` or ``task_index`` pick the task; ``images``
                (bool) attaches the bytes of listed images to every observation.

        Raises:
            ConfigError: for an unknown argument or a bad seed, index or flag.
            UnknownNameError: for a task id the split does not hold.
            SessionError: when the session has expired.
        """
        self._check_open()
        unknown = sorted(set(kwargs) - set(RESET_ARGUMENTS))
        if unknown:
            raise ConfigError(f"Unknown reset argument(s) {unknown}; reset takes "
                              f"{', '.join(RESET_ARGUMENTS)}.")
        options = _task_options(kwargs)
        images = kwargs.get("images")
        images = self.shared.images if images is None else images
        if not isinstance(images, bool):
            raise ConfigError(f"images must be true or false, got {images!r}.")
        _check_seed(seed)
        if episode_id is not None and not isinstance(episode_id, str):
            raise ConfigError(f"episode_id must be a string, got {episode_id!r}.")
        obs, info = self.env.reset(seed=seed, options=options)
        self._episode_id = episode_id or uuid.uuid4().hex
        self._steps, self._done, self._images = 0, False, images
        return self._observation(obs, info, None, False, False)

    def step(self, action: SearchGenAction, timeout_s: float | None = None,
             **kwargs: Any) -> SearchGenObservation:
        """Carry out one assistant turn (``timeout_s`` is ignored: see ``tool_timeout_s``).

        Raises:
            SessionError: when no episode is running or the session has expired.
        """
        self._check_open()
        if self._done or self.env.task is None:
            raise SessionError(
                "No episode is running in this session (none started, or the last one "
                "ended): send a reset first. OpenEnv's stateless HTTP POST /step builds "
                "a fresh environment per request, so play episodes over the WebSocket "
                "session (/ws) or the HTTP session routes (POST /sessions).")
        if not isinstance(action, SearchGenAction):  # a direct caller passing raw data
            action = SearchGenAction.model_validate(action)
        obs, reward, terminated, truncated, info = self.env.step(action.to_env_action())
        self._steps += 1
        self._done = bool(terminated or truncated)
        return self._observation(obs, info, float(reward), bool(terminated), bool(truncated))

    @property
    def state(self) -> SearchGenState:
        """The episode's counters."""
        info = self._info
        return SearchGenState(
            episode_id=self._episode_id, step_count=self._steps, task_id=info.get("task_id"),
            turn=info.get("turn", 0), tool_calls_used=info.get("tool_calls_used", 0),
            done=self._done, image_ids=list(info.get("image_ids", [])),
            split=self.shared.config.split, benchmark=self.shared.config.benchmark)

    def get_metadata(self) -> EnvironmentMetadata:
        """Name, description and version for ``/metadata``."""
        import knowgen

        return EnvironmentMetadata(
            name=ENV_NAME, version=knowgen.__version__, author="knowgen developers",
            description=("Search-augmented image generation: search text and images, "
                         "then answer with a generation prompt and reference images; "
                         "paid (1 - alpha) * image judge + alpha * text judge. Split "
                         f"{self.shared.config.split!r} of {self.shared.config.benchmark!r}."))

    def close(self) -> None:
        """End the session: later requests get a :class:`SessionError`."""
        self._closed = True
        self.env.close()

    # ------------------------------------------------------------ Task API
    def list_splits(self) -> list[str]:
        """The one split this server serves."""
        return [self.shared.config.split]

    def num_tasks(self, split: str) -> int:
        """Number of tasks of the served split."""
        self._check_split(split)
        return len(self.env.tasks)

    def get_task(self, split: str, index: int) -> dict[str, Any]:
        """The public part of task ``index`` (reset with ``task_index`` to play it).

        Raises:
            IndexError: for an index out of range (OpenEnv answers 400).
        """
        self._check_split(split)
        if not 0 <= index < len(self.env.tasks):
            raise IndexError(index)
        return _task_card(self.env.tasks[index], index)

    def list_tasks(self, split: str) -> list[dict[str, Any]]:
        """The public part of every task of the served split."""
        self._check_split(split)
        return [_task_card(task, i) for i, task in enumerate(self.env.tasks)]

    # -------------------------------------------------------------- helpers
    def _check_open(self) -> None:
        if self._closed:
            raise SessionError("This session has ended (closed, or expired after being idle "
                               "too long); open a new one.")

    def _check_split(self, split: str) -> None:
        if split != self.shared.config.split:
            raise ConfigError(f"This server serves split {self.shared.config.split!r}, not "
                              f"{split!r}; start another server for that split.")

    def _observation(self, text: str, info: dict[str, Any], reward: float | None,
                     terminated: bool, truncated: bool) -> SearchGenObservation:
        self._info = info = plain_json(info)
        paths = list(info.get("observation_images") or [])
        ids = listed_image_ids(text)[:len(paths)]
        images = _read_images(zip(ids, paths)) if self._images else []
        metadata = {"info": info, "terminated": terminated, "truncated": truncated,
                    "episode_id": self._episode_id}
        return SearchGenObservation(text=text, image_ids=ids, images=images, reward=reward,
                                    done=terminated or truncated, metadata=metadata)


def plain_json(value: Any) -> Any:
    """``value`` as plain JSON data (tuples become lists; other objects their ``str``)."""
    return json.loads(json.dumps(value, default=str))


def _task_options(kwargs: dict[str, Any]) -> dict[str, Any] | None:
    if kwargs.get("task_id") is not None and kwargs.get("task_index") is not None:
        raise ConfigError("Give task_id or task_index, not both.")
    if kwargs.get("task_id") is not None:
        if not isinstance(kwargs["task_id"], str):
            raise ConfigError(f"task_id must be a string, got {kwargs['task_id']!r}.")
        return {"task_id": kwargs["task_id"]}
    if kwargs.get("task_index") is not None:
        return {"task_index": kwargs["task_index"]}
    return None


def _check_seed(seed: Any) -> None:
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ConfigError(f"seed must be a non-negative integer or null, got {seed!r}.")


def _read_images(entries: Any) -> list[ImageData]:
    """The files of ``(img_id, path)`` pairs as :class:`ImageData` (unreadable ones skipped)."""
    out = []
    for img_id, path in entries:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            logger.warning("Image %s at %r is left out of the observation: %s", img_id, path, exc)
            continue
        media_type = mimetypes.guess_type(str(path))[0] or "application/octet-stream"
        out.append(ImageData(img_id=img_id, media_type=media_type,
                             data=base64.b64encode(data).decode("ascii")))
    return out


def _task_card(task: Any, index: int) -> dict[str, Any]:
    return {"id": task.id, "index": index, "prompt": task.prompt, "category": task.category,
            "difficulty": task.difficulty}


__all__ = ["ENV_NAME", "RESET_ARGUMENTS", "SearchGenOpenEnv", "SessionBackends", "plain_json"]
