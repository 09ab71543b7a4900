"""Registries of backends: one per kind, lazy ``"module:Class"`` entries, plugins.

A backend is named by a spec string ``"name"`` or ``"name:key=value,key=value"``.
Values are parsed as JSON where possible (``steps=4`` is an int, ``fast=true`` a
bool), otherwise kept as strings. Outside packages add backends through the
entry-point group ``knowgen.plugins``: each entry point's name is
``"<kind>.<name>"`` (e.g. ``"generator.mygen"``) and its value is
``"module:Class"``.

Example:
    >>> from knowgen.registry import GENERATORS
    >>> gen = GENERATORS.create("compositor:size=256")
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Callable, Iterator
from importlib import metadata
from typing import Any

from knowgen.errors import ConfigError, UnknownNameError

logger = logging.getLogger(__name__)

PLUGIN_GROUP = "knowgen.plugins"


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """Split ``"name:key=value,..."`` into the name and its keyword arguments.

    Raises:
        ConfigError: when an argument is not of the form ``key=value``.
    """
    name, _, rest = spec.partition(":")
    kwargs: dict[str, Any] = {}
    if rest.strip():
        for part in _split_args(rest):
            key, eq, value = part.partition("=")
            if not eq or not key.strip():
                raise ConfigError(
                    f"Cannot read {part!r} in backend spec {spec!r}: "
                    "write arguments as name:key=value,key=value."
                )
            kwargs[key.strip()] = _parse_value(value.strip())
    return name.strip(), kwargs


def _split_args(text: str) -> list[str]:
    """Split on commas that are not inside brackets or quotes."""
    parts, depth, quote, cur = [], 0, "", []
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    if "".join(cur).strip():
        parts.append("".join(cur))
    return parts


def _parse_value(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


class Registry:
    """Names mapped to lazily imported factories of one backend kind.

    Args:
        kind: Human-readable kind used in messages and plugin names, e.g. ``"generator"``.
        entries: Built-in ``name -> "module:Attr"`` entries.
    """

    def __init__(self, kind: str, entries: dict[str, str] | None = None):
        self.kind = kind
        self._entries: dict[str, str | Callable[..., Any]] = dict(entries or {})
        self._plugins_loaded = False

    def register(self, name: str, target: str | Callable[..., Any]) -> None:
        """Add or replace ``name``; ``target`` is ``"module:Attr"`` or a callable."""
        self._entries[name] = target

    def names(self) -> list[str]:
        """All registered names, plugins included, sorted."""
        self._load_plugins()
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        self._load_plugins()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def get(self, name: str) -> Callable[..., Any]:
        """Return the factory registered under ``name``, importing it if needed.

        Raises:
            UnknownNameError: with a "Did you mean" suggestion.
        """
        self._load_plugins()
        if name not in self._entries:
            raise UnknownNameError(self.kind, name, self._entries)
        target = self._entries[name]
        if isinstance(target, str):
            target = _import_target(target)
            self._entries[name] = target
        return target

    def create(self, spec: str, **overrides: Any) -> Any:
        """Build a backend from a spec string; ``overrides`` win over spec arguments."""
        name, kwargs = parse_spec(spec)
        kwargs.update(overrides)
        factory = self.get(name)
        try:
            return factory(**kwargs)
        except TypeError as exc:
            raise ConfigError(f"Cannot build {self.kind} {name!r} with {kwargs}: {exc}") from exc

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        try:
            eps = metadata.entry_points(group=PLUGIN_GROUP)
        except Exception:  # noqa: BLE001  # pragma: no cover - broken metadata must not break knowgen
            logger.warning("Could not read entry points of group %s", PLUGIN_GROUP)
            return
        prefix = self.kind + "."
        for ep in eps:
            if ep.name.startswith(prefix):
                self._entries.setdefault(ep.name[len(prefix):], ep.value)


def _import_target(target: str) -> Callable[..., Any]:
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


TEXT_SEARCH = Registry(
    "text search",
    {
        "local": "knowgen.search.local:LocalTextSearch",
        "serper": "knowgen.search.serper:SerperSearch",
        "searxng": "knowgen.search.searxng:SearxngSearch",
        "retriever": "knowgen.search.retriever:RetrieverSearch",
    },
)
IMAGE_SEARCH = Registry(
    "image search",
    {
        "local": "knowgen.search.local:LocalImageSearch",
        "serper": "knowgen.search.serper:SerperSearch",
        "searxng": "knowgen.search.searxng:SearxngSearch",
    },
)
BROWSERS = Registry(
    "browser",
    {
        "local": "knowgen.search.local:LocalBrowser",
        "http": "knowgen.search.browse_http:HttpBrowser",
        "jina": "knowgen.search.browse_http:JinaBrowser",
    },
)
GENERATORS = Registry(
    "generator",
    {
        "compositor": "knowgen.generators.compositor:Compositor",
        "diffusers": "knowgen.generators.diffusers_gen:DiffusersGenerator",
        "http": "knowgen.generators.http_client:HttpGenerator",
        "openai": "knowgen.generators.openai_images:OpenAIImagesGenerator",
        "cached": "knowgen.generators.cache:cached_generator",
    },
)
IMAGE_JUDGES = Registry(
    "image judge",
    {
        "offline": "knowgen.judges.offline_image:OfflineImageJudge",
        "clip": "knowgen.judges.clip_judge:ClipImageJudge",
        "openai": "knowgen.judges.openai_judge:OpenAIImageJudge",
    },
)
TEXT_JUDGES = Registry(
    "text judge",
    {
        "offline": "knowgen.judges.offline_text:OfflineTextJudge",
        "openai": "knowgen.judges.openai_judge:OpenAITextJudge",
    },
)
WISE_JUDGES = Registry(
    "wise-judge",
    {
        "offline": "knowgen.judges.offline_wise:OfflineWiseJudge",
        "openai": "knowgen.judges.openai_judge:OpenAIWiseJudge",
    },
)
POLICIES = Registry(
    "policy",
    {
        "direct": "knowgen.reference_policies.direct:DirectPolicy",
        "scripted": "knowgen.reference_policies.scripted:ScriptedPolicy",
        "oracle": "knowgen.reference_policies.oracle:OraclePolicy",
        "guided": "knowgen.reference_policies.guided:GuidedPolicy",
        "random": "knowgen.reference_policies.random:RandomPolicy",
        "openai": "knowgen.agents.policy:openai_policy",
        "transformers": "knowgen.agents.policy:transformers_policy",
        "llamacpp": "knowgen.agents.policy:llamacpp_policy",
        "gen-searcher": "knowgen.agents.policy:gen_searcher_policy",
        "gen-searcher-tiny": "knowgen.agents.policy:tiny_policy",
    },
)
BENCHMARKS = Registry(
    "benchmark",
    {
        "world": "knowgen.benchmarks.world:WorldBenchmark",
        "knowgen": "knowgen.benchmarks.knowgen:KnowGenBenchmark",
        "wise": "knowgen.benchmarks.wise:WiseBenchmark",
    },
)
