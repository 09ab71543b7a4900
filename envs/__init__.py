"""SearchGenEnv and its registration with Gymnasium.

Two ids are registered:

* ``knowgen/SearchGen-v0``: text observations;
* ``knowgen/SearchGenMultimodal-v0``: the same environment with
  ``observation_mode="dict"`` (the text plus the images it lists).
"""

from __future__ import annotations

ENV_ID = "knowgen/SearchGen-v0"
MULTIMODAL_ENV_ID = "knowgen/SearchGenMultimodal-v0"
ENV_IDS: dict[str, dict[str, str]] = {
    ENV_ID: {},
    MULTIMODAL_ENV_ID: {"observation_mode": "dict"},
}
"""Registered ids and the settings each one fixes by default."""


def register_envs() -> None:
    """Register every id of :data:`ENV_IDS` with Gymnasium (idempotent)."""
    from gymnasium.envs.registration import register, registry

    for env_id, kwargs in ENV_IDS.items():
        if env_id not in registry:
            register(id=env_id, entry_point="knowgen.envs.searchgen:SearchGenEnv",
                     kwargs=dict(kwargs))


def __getattr__(name: str):
    if name == "SearchGenEnv":
        from knowgen.envs.searchgen import SearchGenEnv

        return SearchGenEnv
    raise AttributeError(name)


__all__ = ["ENV_ID", "ENV_IDS", "MULTIMODAL_ENV_ID", "SearchGenEnv", "register_envs"]
