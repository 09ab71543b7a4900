"""SearchGenEnv and its registration with Gymnasium."""

from __future__ import annotations

ENV_ID = "knowgen/SearchGen-v0"


def register_envs() -> None:
    """Register ``knowgen/SearchGen-v0`` with Gymnasium (idempotent)."""
    from gymnasium.envs.registration import register, registry

    if ENV_ID not in registry:
        register(id=ENV_ID, entry_point="knowgen.envs.searchgen:SearchGenEnv")


def __getattr__(name: str):
    if name == "SearchGenEnv":
        from knowgen.envs.searchgen import SearchGenEnv

        return SearchGenEnv
    raise AttributeError(name)


__all__ = ["ENV_ID", "SearchGenEnv", "register_envs"]
