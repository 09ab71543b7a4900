"""One set of backends shared by many SearchGenEnv instances (served sessions, rollouts).

The benchmark, its search index, the generator and the judges are built once,
by the first environment; every later environment reuses them and keeps only
its own episode state, the way :func:`knowgen.envs.trl_env.make_env_factory`
shares them between TRL rollouts. The adapters for OpenEnv, verifiers and
SkyRL build their environments here.
"""

from __future__ import annotations

import threading
from typing import Any

from knowgen.config import EnvConfig

SHARED_BACKENDS = ("benchmark", "text_search", "image_search", "browser", "generator",
                   "image_judge", "text_judge")
"""Attributes of :class:`~knowgen.envs.searchgen.SearchGenEnv` that environments share."""


class SharedBackends:
    """Builds :class:`~knowgen.envs.searchgen.SearchGenEnv` instances on shared backends.

    Thread-safe: the first :meth:`make_env` builds the backends under a lock.

    Args:
        config: Settings of every environment built here (checked now).
        backends: Ready backends to use instead of building them (tests, benchmarks).

    Raises:
        ConfigError: for a setting out of range.
    """

    def __init__(self, config: EnvConfig | None = None,
                 backends: dict[str, Any] | None = None):
        from knowgen.envs.searchgen import SearchGenEnv

        self.config = SearchGenEnv.check_config(config if config is not None else EnvConfig())
        self._given = {k: v for k, v in (backends or {}).items() if v is not None}
        self._built: dict[str, Any] | None = None
        self._lock = threading.Lock()

    def make_env(self) -> Any:
        """A new :class:`SearchGenEnv` on the shared backends (the first call builds them).

        Raises:
            ConfigError: for a benchmark split without tasks or an unknown setting.
            UnknownNameError: for an unknown backend name.
        """
        from knowgen.envs.searchgen import SearchGenEnv

        with self._lock:
            if self._built is None:
                first = SearchGenEnv(self.config, **self._given)
                self._built = {key: getattr(first, key) for key in SHARED_BACKENDS}
                return first
        return SearchGenEnv(self.config, **self._built)


_CACHE: dict[str, SharedBackends] = {}
_CACHE_LOCK = threading.Lock()


def shared_backends_for(config: EnvConfig) -> SharedBackends:
    """The process-wide :class:`SharedBackends` of ``config`` (one per distinct config).

    For frameworks that build environments by name with no place to pass ready
    objects (SkyRL's ``skyrl_gym.make``), so that each rollout does not rebuild
    the world and the judges.
    """
    key = repr(config)
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = SharedBackends(config)
        return _CACHE[key]


__all__ = ["SHARED_BACKENDS", "SharedBackends", "shared_backends_for"]
