"""Text and actions entering the environment, made safe once, before anything reads them.

A half-trained model (or a fuzzer) can send anything: text holding lone UTF-16
surrogates (``"\\ud800"``, which no UTF-8 file, font or log can take), strings
of a ``str`` subclass with surprising methods, or objects whose ``repr`` raises.
:func:`normalize_action` copies an action into plain Python values (``str``,
``int``, ``float``, ``bool``, ``None``, ``list``, ``tuple``, ``dict`` with string keys) with every
string passed through :func:`clean_text`; any other object becomes an
:class:`UnreadableValue` that names its type and can always be printed. Size
and nesting limits are enforced during the same walk, so a huge action costs
no more than ``max_chars`` steps.

Example:
    >>> clean_text("a\\ud800b")
    'a\\ufffdb'
    >>> normalize_action({"tool": "search", "arguments": {"queries": ["x\\udfff"]}}, 100)[0]
    {'tool': 'search', 'arguments': {'queries': ['x\\ufffd']}}
"""

from __future__ import annotations

import json
import re
from typing import Any

REPLACEMENT = "\ufffd"
"""What an unencodable code point becomes (the Unicode replacement character)."""

_SURROGATES = re.compile("[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """``text`` as a plain ``str`` with every lone surrogate replaced by U+FFFD.

    Linear in the length of ``text``; returns ``text`` itself when nothing changes.
    """
    if type(text) is not str:
        text = str.__str__(text)  # a plain copy; never calls a subclass's methods
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATES.sub(REPLACEMENT, text)
    return text


class UnreadableValue:
    """Stands in for an object an action may not carry (anything but JSON-like values).

    Attributes:
        type_name: The name of the original object's type.
    """

    __slots__ = ("type_name",)

    def __init__(self, type_name: str):
        self.type_name = type_name

    def __repr__(self) -> str:
        return f"<{self.type_name} object>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UnreadableValue) and other.type_name == self.type_name

    def __hash__(self) -> int:
        return hash(self.type_name)

    def __deepcopy__(self, memo: dict) -> UnreadableValue:
        return self


class _TooLarge(Exception):
    """Raised inside the walk when a limit is passed."""


def type_name(value: Any) -> str:
    """The name of ``value``'s type, clean, whatever its metaclass does."""
    try:
        name = type(value).__name__
        return clean_text(name) if isinstance(name, str) else "object"
    except Exception:  # noqa: BLE001 - a hostile metaclass
        return "object"


def _key_text(key: Any) -> str:
    """A dict key that is not a string, as text (JSON and sample logs take string keys only)."""
    if key is None or isinstance(key, (bool, int, float)):
        return json.dumps(key)
    return repr(key)  # a tuple of plain values or an UnreadableValue: both print safely


def normalize_action(action: Any, max_chars: int, max_depth: int = 32) -> tuple[Any, str]:
    """A plain, clean copy of ``action``, or why it is too large to read.

    Args:
        action: Whatever a policy sent.
        max_chars: Most characters of strings (keys included) plus one per other
            value the action may hold.
        max_depth: Deepest nesting of lists, tuples and dicts.

    Returns:
        ``(copy, "")``, or ``(None, problem)`` when a limit is passed; ``problem``
        reads e.g. ``"70000 characters"`` or ``"nested more than 32 levels deep"``.
        Never raises.
    """
    if isinstance(action, str):
        action = str.__str__(action)  # a plain copy: a subclass's methods are never called
        if len(action) > max_chars:
            return None, f"{len(action)} characters"
        return clean_text(action), ""
    budget = [max_chars]

    def spend(n: int) -> None:
        budget[0] -= n
        if budget[0] < 0:
            raise _TooLarge(f"more than {max_chars} characters")

    def walk(value: Any, depth: int) -> Any:
        if depth > max_depth:
            raise _TooLarge(f"nested more than {max_depth} levels deep")
        if isinstance(value, str):
            value = str.__str__(value)
            spend(len(value))
            return clean_text(value)
        if isinstance(value, bool) or value is None:
            spend(1)
            return value
        if isinstance(value, int):
            spend(1)
            return int.__index__(value)
        if isinstance(value, float):
            spend(1)
            return float.__float__(value)
        if isinstance(value, dict):
            spend(1)
            out = {}
            for key, item in dict.items(value):
                key = walk(key, depth + 1)
                out[key if isinstance(key, str) else _key_text(key)] = walk(item, depth + 1)
            return out
        if isinstance(value, (list, tuple)):
            spend(1)
            items = [walk(item, depth + 1) for item in (list.__iter__(value) if isinstance(
                value, list) else tuple.__iter__(value))]
            return items if isinstance(value, list) else tuple(items)
        spend(1)
        return UnreadableValue(type_name(value))

    try:
        return walk(action, 0), ""
    except _TooLarge as exc:
        return None, str(exc)
    except RecursionError:
        return None, f"nested more than {max_depth} levels deep"
