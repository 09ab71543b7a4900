"""The backends an environment runs on: tools, generator and judges, built from settings."""

from __future__ import annotations

from typing import Any

from knowgen.config import EnvConfig
from knowgen.registry import (
    BROWSERS,
    GENERATORS,
    IMAGE_JUDGES,
    IMAGE_SEARCH,
    TEXT_JUDGES,
    TEXT_SEARCH,
)
from knowgen.search.toolcache import check_mode, wrap_backends


def backends_from(config: EnvConfig, given: dict[str, Any]) -> dict[str, Any]:
    """Use ready-made backends where given, build the rest from the registries.

    With ``config.tool_cache_mode`` ``record`` or ``replay`` the tool backends are
    wrapped in a :mod:`knowgen.search.toolcache` cache; replay builds none of them.
    """
    specs = {
        "text_search": (TEXT_SEARCH, config.search),
        "image_search": (IMAGE_SEARCH, config.image_search),
        "browser": (BROWSERS, config.browser),
        "generator": (GENERATORS, config.generator),
        "image_judge": (IMAGE_JUDGES, config.image_judge),
        "text_judge": (TEXT_JUDGES, config.text_judge),
    }
    mode = config.tool_cache_mode
    check_mode(mode, config.tool_cache)
    replaying = {"text_search", "image_search", "browser"} if mode == "replay" else set()
    backends = {key: given[key] if given.get(key) is not None
                else None if key in replaying else registry.create(spec)
                for key, (registry, spec) in specs.items()}
    if mode == "off":
        return backends
    identities = {key: spec for key, (_, spec) in specs.items()}
    return wrap_backends(backends, config.tool_cache, mode, identities)


def build_backends(config: EnvConfig | None = None) -> dict[str, Any]:
    """The tool, generator and judge backends ``config`` names, built once.

    Environments given the same dict share them (one search index, one judge):
    ``SearchGenEnv(benchmark=..., **build_backends())``.

    Args:
        config: Settings whose specs to build (default: :class:`EnvConfig`'s, the
            offline world's local tools, the compositor and the offline judges).

    Returns:
        ``text_search``, ``image_search``, ``browser``, ``generator``,
        ``image_judge`` and ``text_judge``.
    """
    return backends_from(config or EnvConfig(), {})
