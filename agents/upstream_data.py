"""Gen-Searcher's released training data, read into knowgen's training formats.

Upstream publishes two files (the ``GenSearcher/Train-Data`` dataset):

* ``sft_data.json``: the SFT transcripts, a LLaMA-Factory dataset in the
  ``sharegpt`` formatting. Upstream's ``dataset_info.json`` maps the columns
  ``messages`` and ``images`` and the tags ``role``/``content`` with the roles
  ``system``, ``user`` and ``assistant``: each item is ``{"messages": [{"role",
  "content"}, ...], "images": [paths]}``. Assistant turns are text in the
  protocol (``<think>`` then ``<tool_call>`` or ``<answer>``); tool results come
  back as user turns wrapped in ``<tool_response>``, with an ``<image>``
  placeholder per attached picture. LLaMA-Factory's default sharegpt tags
  (``conversations`` of ``{"from", "value"}`` with ``human``, ``gpt``,
  ``observation``, ``function_call``, ``system``) are read as well.
* ``rl_data.json``: the RL prompts, a JSON array of ``{"id", "prompt",
  "gt_image", ...}``; upstream's RL data loader keeps items that have all three
  and whose ground-truth image exists, and skips the rest.

:func:`read_sft_file` turns transcripts into knowgen's SFT records (the chat
records :mod:`knowgen.agents.expert_data` writes) and :func:`read_rl_file` turns
prompts into KnowGen-Bench records that ``knowgen:path=...`` serves as tasks.
Items that cannot be used are never dropped silently: each is returned with
the reason, and the callers write them to a ``.rejected.jsonl`` file beside the
run.

Example:
    >>> records, rejected = read_sft_file("sft_data.json")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from knowgen.envs.protocol import IMG_ID_PATTERN, parse_action
from knowgen.envs.trl_env import DEFAULT_SYSTEM_PROMPT, tool_schemas
from knowgen.errors import DataError
from knowgen.fileio import atomic_write_text, read_json_items

logger = logging.getLogger(__name__)

IMAGE_PLACEHOLDER = "<image>"
"""LLaMA-Factory's marker of an attached image inside a message's text."""

_SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant",
                   "assistant": "assistant", "system": "system", "observation": "tool",
                   "function_call": "assistant", "tool": "tool"}
"""Roles (and LLaMA-Factory's default sharegpt tags) as knowgen reads them."""

_PLACEHOLDERS = re.compile(r"[ \t]*<image>[ \t]*\n?")


class UnusableItem(Exception):
    """An input item knowgen cannot train on; the message says why."""


@dataclass
class Rejected:
    """An input item that could not be used, and why."""

    index: int
    """Position of the item in the file (0-based)."""

    reason: str
    """What is wrong with it."""

    item: Any
    """The item as it was read."""

    def to_json(self) -> str:
        """One line of a ``.rejected.jsonl`` file."""
        return json.dumps({"index": self.index, "reason": self.reason, "item": self.item},
                          ensure_ascii=False)


def load_items(path: str | Path) -> list[Any]:
    """The items of a JSON array file or a JSON Lines file.

    Raises:
        DataError: when the file is missing, unreadable or not JSON (with the line number).
    """
    return read_json_items(path, what="Data file")


def is_knowgen_record(item: Any) -> bool:
    """True for a record in knowgen's own SFT form (``messages`` plus ``tools``)."""
    return isinstance(item, dict) and isinstance(item.get("messages"), list) and "tools" in item


def read_sft_file(path: str | Path, system_prompt: str = DEFAULT_SYSTEM_PROMPT,
                  ) -> tuple[list[dict[str, Any]], list[Rejected]]:
    """SFT records from a file of knowgen records or of upstream sharegpt transcripts.

    knowgen records pass through unchanged. Upstream transcripts are converted:
    the system message becomes ``system_prompt`` (the agent's own, as at
    inference), the first user message is the request, each assistant turn is
    parsed with the protocol parser and each following user (or observation)
    message is its tool result. Image placeholders are removed: the agent reads
    image ids and titles, not pixels.

    Returns:
        ``(records, rejected)``.

    Raises:
        DataError: for an unreadable file, or one in which no item could be used.
    """
    items = load_items(path)
    records: list[dict[str, Any]] = []
    rejected: list[Rejected] = []
    tools = json.dumps(tool_schemas(), ensure_ascii=False)
    dropped_images = 0
    for index, item in enumerate(items):
        if is_knowgen_record(item):
            records.append(item)
            continue
        try:
            record, images = convert_transcript(item, system_prompt)
        except UnusableItem as exc:
            rejected.append(Rejected(index, str(exc), item))
            continue
        record["tools"] = tools
        record.setdefault("task_id", f"upstream-{index}")
        records.append(record)
        dropped_images += images
    if dropped_images:
        logger.info("Upstream SFT data: %d image placeholders removed (the agent reads "
                    "image ids and titles)", dropped_images)
    if not records:
        first = f" The first item: {rejected[0].reason}" if rejected else ""
        raise DataError(f"No usable SFT transcript in {str(path)!r}.{first}")
    return records, rejected


def convert_transcript(item: Any, system_prompt: str) -> tuple[dict[str, Any], int]:
    """One upstream transcript as a knowgen SFT record, and the image placeholders removed.

    Raises:
        UnusableItem: saying what is wrong with the transcript.
    """
    from knowgen.agents.expert_data import turns_to_messages

    messages, images = _normalized_messages(item)
    body = [m for m in messages if m[0] != "system"]
    if not body or body[0][0] != "user":
        raise UnusableItem("the first message after the system prompt must be the user's request")
    request = body[0][1].strip()
    if not request:
        raise UnusableItem("the user's request is empty")
    turns: list[tuple[str, str]] = []
    known: list[str] = []
    rest = body[1:]
    i = 0
    while i < len(rest):
        role, text = rest[i]
        if role != "assistant":
            raise UnusableItem(f"message {i + 2} is a {role} message where an assistant turn "
                             "was expected")
        parsed = parse_action(text, known)
        if parsed.kind == "invalid":
            raise UnusableItem(f"assistant turn {len(turns) + 1} breaks the protocol: "
                             f"{parsed.error.splitlines()[0]}")
        observation = ""
        if i + 1 < len(rest) and rest[i + 1][0] in ("user", "tool"):
            observation = rest[i + 1][1]
            i += 1
        i += 1
        if parsed.kind == "answer":
            if i < len(rest):
                raise UnusableItem(f"the transcript goes on after the answer in turn "
                                 f"{len(turns) + 1}")
            turns.append((text, ""))
            break
        known.extend(f"IMG_{m.group(1)}" for m in IMG_ID_PATTERN.finditer(observation)
                     if f"IMG_{m.group(1)}" not in known)
        turns.append((text, observation))
    if not turns or parse_action(turns[-1][0], known).kind != "answer":
        raise UnusableItem("the transcript does not end with an <answer>")
    messages_out = turns_to_messages(request, turns, system_prompt,
                                     parse=lambda action, _seen: parse_action(action, known))
    return {"messages": messages_out, "source": "upstream"}, images


def _normalized_messages(item: Any) -> tuple[list[tuple[str, str]], int]:
    """``(role, text)`` pairs of a sharegpt item, and how many image placeholders were removed."""
    if not isinstance(item, dict):
        raise UnusableItem(f"an item must be a JSON object, got {type(item).__name__}")
    raw = item.get("messages", item.get("conversations"))
    if not isinstance(raw, list) or not raw:
        raise UnusableItem("an item needs a non-empty 'messages' (or 'conversations') list")
    out: list[tuple[str, str]] = []
    images = 0
    for n, message in enumerate(raw, 1):
        if not isinstance(message, dict):
            raise UnusableItem(f"message {n} is not an object")
        tag = message.get("role", message.get("from"))
        role = _SHAREGPT_ROLES.get(str(tag).lower()) if tag is not None else None
        if role is None:
            raise UnusableItem(f"message {n} has role {tag!r}; expected one of "
                             f"{', '.join(sorted(_SHAREGPT_ROLES))}")
        text = _text_of(message.get("content", message.get("value")), n)
        images += text.count(IMAGE_PLACEHOLDER)
        out.append((role, _PLACEHOLDERS.sub("", text)))
    return out, images


def _text_of(content: Any, n: int) -> str:
    """The text of a message's content (a string, or a list of text/image blocks)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, dict) and block.get("type") == "text":
                parts.append(str(block.get("text", "")))
            elif isinstance(block, dict) and block.get("type") in ("image", "image_url"):
                parts.append(IMAGE_PLACEHOLDER)
            else:
                raise UnusableItem(f"message {n} has a content block knowgen cannot read")
        return "".join(parts)
    raise UnusableItem(f"message {n} has no text content")


def read_rl_file(path: str | Path) -> tuple[list[dict[str, Any]], list[Rejected]]:
    """KnowGen-Bench records of upstream RL prompts (``rl_data.json``).

    Like upstream's loader, an item is used when it has an ``id``, a non-empty
    ``prompt`` and a ``gt_image`` file that exists (a relative path resolves
    against the data file's folder). Its ``meta`` is kept; an item without a
    category gets ``"rl_data"`` (it trains with the reward but belongs to no
    KnowGen group).

    Returns:
        ``(records, rejected)``; every record has an absolute ``gt_image``.

    Raises:
        DataError: for an unreadable file, duplicate ids, or no usable item.
    """
    base = Path(path).resolve().parent
    records: list[dict[str, Any]] = []
    rejected: list[Rejected] = []
    seen: set[str] = set()
    for index, item in enumerate(load_items(path)):
        reason = _rl_problem(item, base)
        if reason:
            rejected.append(Rejected(index, reason, item))
            continue
        task_id = str(item["id"])
        if task_id in seen:
            raise DataError(f"{str(path)!r}: id {task_id!r} appears more than once; ids must be "
                            "unique.")
        seen.add(task_id)
        meta = dict(item.get("meta") or {}) if isinstance(item.get("meta"), dict) else {}
        meta.setdefault("category", "rl_data")
        gt = Path(str(item["gt_image"])).expanduser()
        records.append({"id": task_id, "prompt": str(item["prompt"]), "meta": meta,
                        "gt_image": str(gt if gt.is_absolute() else (base / gt).resolve())})
    if not records:
        first = f" The first item: {rejected[0].reason}." if rejected else ""
        raise DataError(f"No usable RL prompt in {str(path)!r}.{first}")
    return records, rejected


def _rl_problem(item: Any, base: Path) -> str:
    """Why an RL item cannot be used ("" when it can)."""
    if not isinstance(item, dict):
        return f"an item must be a JSON object, got {type(item).__name__}"
    missing = [k for k in ("id", "prompt", "gt_image")
               if item.get(k) is None or (isinstance(item.get(k), str) and not item[k].strip())]
    if missing:
        return f"missing {', '.join(missing)}"
    if not isinstance(item["prompt"], str):
        return "prompt is not text"
    gt = Path(str(item["gt_image"])).expanduser()
    if not (gt if gt.is_absolute() else base / gt).is_file():
        return f"ground-truth image {item['gt_image']!r} not found"
    return ""


def write_rejected(rejected: list[Rejected], path: str | Path, what: str) -> Path | None:
    """Write rejected items to ``path`` (JSON lines) and warn once; None when there are none."""
    if not rejected:
        return None
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, "".join(r.to_json() + "\n" for r in rejected))
    logger.warning("%d %s could not be used and were written to %s (first: item %d, %s)",
                   len(rejected), what, out, rejected[0].index, rejected[0].reason)
    return out
