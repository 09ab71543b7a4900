"""Context views: how much of each tool result a model is shown.

A large model reads the environment's tool results as they are. A small model
trained from scratch on a CPU learns faster from short transcripts: the
``compact`` view keeps what a decision needs (result titles, snippets, image ids
and titles, page text) and drops what only costs tokens (addresses, local paths,
result banners, the per-turn budget notice) and shows at most
:data:`COMPACT_RESULTS` results per query, so that what a model reads does not
depend on the environment's ``top_k``. Training data and inference must
use the same view; ``knowgen train`` stores it in the checkpoint's
``knowgen_agent.json`` and the agent applies it when it talks to the model.

What the compact view loses: search results no longer show page addresses, so a
model reading it cannot ``browse`` a result page it found. The notice of the
last turn (when the budget forces an answer) is kept.

Example:
    >>> compact_observation("<tool_response>\\nIMG_001: Flag of Peru\\n  url: https://x\\n"
    ...                     "</tool_response>\\n\\n[Tool calls left: 7. Turns left: 9.]")
    'IMG_001: Flag of Peru'
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

from knowgen.envs.messages import strip_tool_response
from knowgen.errors import ConfigError

VIEWS: tuple[str, ...] = ("full", "compact")
"""Names of the context views."""

COMPACT_RESULTS = 3
"""Results per query (web or image search) that the compact view keeps: the first ones."""

_BANNER = re.compile(r"^--- .* ---$")
_BUDGET = re.compile(r"^\[Tool calls left: \d+\. Turns left: \d+\.\]$")
_DETAIL = re.compile(r"^\s+(?:url|local_path|page_url):")
_LINK = re.compile(r"^\[(?P<title>[^\]]*)\]\([^)]*\)\s*(?P<rest>.*)$")
_PAGE_URL = re.compile(r"^URL: \S+$")
_IMAGE_ENTRY = re.compile(r"^IMG_\d+:")


def compact_line(line: str) -> str | None:
    """One observation line in the compact view (``None`` drops it)."""
    stripped = line.strip()
    if _BANNER.match(stripped) or _BUDGET.match(stripped) or _PAGE_URL.match(stripped):
        return None
    if _DETAIL.match(line):
        return None
    link = _LINK.match(stripped)
    if link:
        rest = link.group("rest")
        return f"{link.group('title')}: {rest}" if rest else link.group("title")
    return line.rstrip()


def compact_observation(observation: str, max_results: int | None = COMPACT_RESULTS) -> str:
    """A tool observation in the compact view (wrapper removed, details dropped).

    Args:
        observation: The environment's observation text.
        max_results: Results kept per result block (one block per query); ``None``
            keeps them all.
    """
    kept: list[str] = []
    seen, skipping = 0, False
    for line in strip_tool_response(str(observation)).splitlines():
        stripped = line.strip()
        if _BANNER.match(stripped):
            seen, skipping = 0, False
        elif _LINK.match(stripped) or _IMAGE_ENTRY.match(stripped):
            seen += 1
            skipping = max_results is not None and seen > max_results
        out = compact_line(line)
        if out is not None and not (skipping and stripped):
            kept.append(out)
    text = "\n".join(kept)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def view_function(view: str | None) -> Callable[[str], str]:
    """The observation transform of ``view`` (``None`` or ``"full"``: unchanged).

    Raises:
        ConfigError: for an unknown view.
    """
    if view in (None, "", "full"):
        return lambda text: text
    if view == "compact":
        return compact_observation
    raise ConfigError(f"Unknown context view {view!r}; use one of {', '.join(VIEWS)}.")


def apply_view(record: dict[str, Any], view: str | None,
               system_prompt: str | None = None) -> dict[str, Any]:
    """A copy of a chat record in ``view``: tool messages transformed.

    With ``system_prompt`` the record's system message is replaced by it. In the
    compact view the record's tool schemas are dropped (the model is taught the
    call format by the examples, not by schemas in its prompt).
    """
    out = copy.deepcopy(record)
    transform = view_function(view)
    for message in out["messages"]:
        if message.get("role") == "tool" and isinstance(message.get("content"), str):
            message["content"] = transform(message["content"])
    if system_prompt is not None:
        rest = [m for m in out["messages"] if m.get("role") != "system"]
        out["messages"] = ([{"role": "system", "content": system_prompt}] if system_prompt
                           else []) + rest
    if view == "compact":
        out.pop("tools", None)
    return out


def uses_browse(record: dict[str, Any]) -> bool:
    """True when an assistant turn of ``record`` calls ``browse``."""
    for message in record.get("messages", []):
        for call in message.get("tool_calls") or []:
            if call.get("function", call).get("name") == "browse":
                return True
    return False
