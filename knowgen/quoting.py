"""The texts a request puts in quotes: what a generator should write and a judge read back.

Example:
    >>> quoted_texts('A poster titled "Blue Moon", and "vote" in capital letters.')
    ['Blue Moon', 'VOTE']
"""

from __future__ import annotations

import re

_QUOTED = re.compile(r'"([^"]*)"|\u201c([^\u201c\u201d]*)\u201d')
_SPACES = re.compile(r"\s+")
_IN_CAPITALS = re.compile(r"\s*,?\s*(?:written\s+|printed\s+)?(?:in\s+(?:capital\s+letters|capitals"
                          r"|upper[- ]?case|all\s+caps))\b", re.IGNORECASE)


def quoted_texts(prompt: str, limit: int | None = None) -> list[str]:
    """The strings ``prompt`` puts in double quotes, in order, de-duplicated.

    Straight (``"..."``) and curly (``“...”``) quotes are recognised; whitespace
    inside a quote is collapsed and blank quotes are skipped. A quote followed by
    "in capital letters" (or "in capitals", "in upper case", "in all caps") is
    returned in upper case, as a generator following the instruction would draw it.

    Args:
        prompt: Any text.
        limit: Keep at most this many strings (``None``: all).
    """
    found: list[str] = []
    for match in _QUOTED.finditer(prompt):
        raw = match.group(1) if match.group(1) is not None else match.group(2)
        text = _SPACES.sub(" ", raw).strip()
        if asks_capitals(prompt, match.end()):
            text = text.upper()
        if text and text not in found:
            found.append(text)
        if limit is not None and len(found) >= limit:
            break
    return found


def asks_capitals(prompt: str, end: int) -> bool:
    """Whether ``prompt`` asks, right after position ``end`` (where a quote closes), for
    the quoted text in capital letters ("in capital letters", "in capitals", "in upper
    case", "in all caps", optionally after a comma or "written"/"printed")."""
    return _IN_CAPITALS.match(prompt, end) is not None
