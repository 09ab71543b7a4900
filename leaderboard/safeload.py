"""Reading YAML and JSON from submissions with limits on depth and size.

A submission is untrusted input. PyYAML's safe loader still expands aliases
(a 1 KB "billion laughs" document grows to gigabytes) and, like ``json``,
recurses once per nesting level (a deep document raises ``RecursionError``).
:func:`load_yaml` refuses aliases and anchors outright and stops at
``max_depth`` while composing; :func:`load_json` turns any nesting error into
:class:`LoadError` and checks the depth of what it read. Sizes are capped by the
callers, which read at most a configured number of bytes.

Example:
    >>> load_yaml("a: [1, 2]")
    {'a': [1, 2]}
    >>> load_yaml("a: &x [1]\\nb: *x")
    Traceback (most recent call last):
    ...
    knowgen.leaderboard.safeload.LoadError: line 2: aliases (*x) are not allowed ...
"""

from __future__ import annotations

import json
from typing import Any

import yaml

MAX_DEPTH = 64
"""Deepest nesting of mappings and lists a submission file may have (a sample line
holds its trajectory, whose structured actions may nest 32 levels)."""


class LoadError(ValueError):
    """A document that is malformed, too deep, or uses a refused YAML feature."""


class _LimitedLoader(yaml.SafeLoader):
    """The safe loader without aliases or anchors, with a nesting limit."""

    max_depth = MAX_DEPTH

    def __init__(self, stream: Any):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.events.AliasEvent):
            event = self.peek_event()
            raise LoadError(f"line {event.start_mark.line + 1}: aliases (*{event.anchor}) are "
                            "not allowed in a submission; write the value out")
        event = self.peek_event()
        if getattr(event, "anchor", None):
            raise LoadError(f"line {event.start_mark.line + 1}: anchors (&{event.anchor}) are "
                            "not allowed in a submission; write the value out")
        nested = isinstance(event, (yaml.events.MappingStartEvent,
                                    yaml.events.SequenceStartEvent))
        if nested:
            self._depth += 1
            if self._depth > self.max_depth:
                raise LoadError(f"line {event.start_mark.line + 1}: nested more than "
                                f"{self.max_depth} levels deep")
        try:
            return super().compose_node(parent, index)
        finally:
            if nested:
                self._depth -= 1


def load_yaml(text: str | bytes, max_depth: int = MAX_DEPTH) -> Any:
    """Parse YAML safely: no aliases or anchors, at most ``max_depth`` levels.

    Raises:
        LoadError: for malformed YAML, an alias or anchor, or too deep nesting.
    """
    loader = _LimitedLoader(text)
    loader.max_depth = max_depth
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        raise LoadError(str(exc).replace("\n", " ")) from None
    except RecursionError:
        raise LoadError(f"nested more than {max_depth} levels deep") from None
    finally:
        loader.dispose()


def load_json(raw: str | bytes, max_depth: int = MAX_DEPTH) -> Any:
    """Parse JSON (UTF-8 when given bytes) and refuse documents deeper than ``max_depth``.

    Raises:
        LoadError: for text that is not UTF-8 or not JSON, or too deep nesting.
    """
    try:
        data = json.loads(raw)
    except UnicodeDecodeError as exc:
        raise LoadError(f"is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise LoadError(f"{exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    except RecursionError:
        raise LoadError(f"nested more than {max_depth} levels deep") from None
    if depth_exceeds(data, max_depth):
        raise LoadError(f"nested more than {max_depth} levels deep")
    return data


def depth_exceeds(data: Any, max_depth: int) -> bool:
    """Whether ``data`` nests lists and dicts more than ``max_depth`` levels (iterative)."""
    stack = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            value = list(value.values())
        elif not isinstance(value, list):
            continue
        if depth + 1 > max_depth:
            return True
        stack.extend((v, depth + 1) for v in value if isinstance(v, (dict, list)))
    return False
