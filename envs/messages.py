"""Chat-message views of an episode, for chat templates and chat APIs.

:func:`build_messages` turns the user's request and the episode's
``(action, observation)`` turns into a list of chat messages:

* ``fmt="hf"``: the Hugging Face / TRL form that ``tokenizer.apply_chat_template``
  takes (tool calls carry ``arguments`` as a dict; tool results are ``role:
  "tool"`` messages with the tool's ``name``);
* ``fmt="openai"``: the OpenAI Chat Completions form (``arguments`` as a JSON
  string, tool calls with ids ``call_<turn>``, tool results with ``tool_call_id``,
  images as ``data:`` URLs).

Turn by turn: a tool call becomes an assistant message (its content is the
``<think>`` block, or ``""``) with one tool call, followed by a tool message
holding the observation without its ``<tool_response>`` wrapper (budget notices
that follow the wrapper are kept after the result). A turn that did not parse
becomes the raw assistant text followed by a user message with the error. The
answer becomes an assistant message with the model's text as it was (a
structured answer is written in the text protocol); the reward message that
follows it is not part of the conversation.

Example:
    >>> msgs = build_messages("A poster of the flag of Peru", [])
    >>> [m["role"] for m in msgs]
    ['user']
"""

from __future__ import annotations

import base64
import io
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from knowgen.envs.actions import action_to_text, parse_any_action
from knowgen.envs.protocol import ParsedAction, format_answer
from knowgen.errors import ConfigError, DataError

MESSAGE_FORMATS: tuple[str, ...] = ("hf", "openai")
"""Values of ``fmt`` that :func:`build_messages` accepts."""

_OPEN, _CLOSE = "<tool_response>", "</tool_response>"
_LISTED_ID = re.compile(r"^(IMG_\d{3,}):", re.MULTILINE)


def strip_tool_response(observation: str) -> str:
    """The observation without its ``<tool_response>`` wrapper.

    Text after the closing tag (budget notices) is kept, after a blank line. An
    observation without the wrapper is returned unchanged.
    """
    head, sep, tail = observation.partition(_OPEN)
    if not sep or head.strip():
        return observation
    inner, sep, after = tail.rpartition(_CLOSE)
    if not sep:
        return observation
    inner, after = inner.strip("\n"), after.strip()
    return f"{inner}\n\n{after}" if after else inner


def listed_image_ids(observation: str) -> list[str]:
    """Image ids listed in a tool observation (``IMG_###: title`` lines), in order."""
    return list(dict.fromkeys(_LISTED_ID.findall(observation)))


def _data_url(path: str, img_id: str) -> str:
    """The image at ``path`` as a ``data:image/png;base64,...`` URL."""
    try:
        data = Path(path).read_bytes()
        if not data.startswith(b"\x89PNG"):
            with Image.open(io.BytesIO(data)) as img:
                buffer = io.BytesIO()
                img.save(buffer, format="PNG")
                data = buffer.getvalue()
    except (OSError, UnidentifiedImageError) as exc:
        raise DataError(f"Image {img_id} at {path!r} cannot be read ({exc}); pass an images "
                        "map whose paths are readable image files.") from exc
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _image_block(img_id: str, path: str, fmt: str) -> dict[str, Any]:
    if fmt == "hf":
        return {"type": "image", "image": path}
    return {"type": "image_url", "image_url": {"url": _data_url(path, img_id)}}


def _tool_content(text: str, new_ids: Iterable[str], images: Mapping[str, str] | None,
                  fmt: str) -> str | list[dict[str, Any]]:
    if images is None:
        return text
    blocks = [_image_block(i, images[i], fmt) for i in new_ids if i in images]
    if not blocks:
        return text
    return [{"type": "text", "text": text}, *blocks]


def _tool_turn(parsed: ParsedAction, turn: int, content: Any, fmt: str) -> list[dict[str, Any]]:
    call = parsed.tool_call
    assert call is not None
    think = f"<think>{parsed.think}</think>" if parsed.think else ""
    if fmt == "hf":
        function = {"name": call.name, "arguments": dict(call.arguments)}
        return [{"role": "assistant", "content": think,
                 "tool_calls": [{"type": "function", "function": function}]},
                {"role": "tool", "name": call.name, "content": content}]
    call_id = f"call_{turn}"
    function = {"name": call.name, "arguments": json.dumps(call.arguments, ensure_ascii=False)}
    return [{"role": "assistant", "content": think,
             "tool_calls": [{"id": call_id, "type": "function", "function": function}]},
            {"role": "tool", "tool_call_id": call_id, "content": content}]


def build_messages(request: str, turns: Sequence[tuple[Any, str]], *, fmt: str = "hf",
                   system: str | None = None, images: Mapping[str, str] | None = None,
                   parse: Callable[[Any, Sequence[str]], ParsedAction] | None = None,
                   ) -> list[dict]:
    """Write an episode as chat messages.

    Args:
        request: The user's image request (plain text).
        turns: ``(action, observation)`` pairs in order; an action is whatever the
            policy sent (text, a dict, an OpenAI message), an observation the
            environment's text reply (or a ``dict`` observation, whose text is used).
        fmt: ``"hf"`` (Hugging Face chat templates, TRL) or ``"openai"``.
        system: A system message to put first; none when ``None`` or empty.
        images: ``IMG_### -> local file`` map. When given, a tool message whose
            observation lists images not listed before carries content blocks: a
            text block, then one image block per new image. Without it every
            message is plain text.
        parse: ``parse(action, known_image_ids) -> ParsedAction``; by default
            :func:`knowgen.envs.actions.parse_any_action`.

    Returns:
        The messages, starting with the optional system message and the request.

    Raises:
        ConfigError: for an unknown ``fmt``.
        DataError: when an image of ``images`` cannot be read (``fmt="openai"``).
    """
    if fmt not in MESSAGE_FORMATS:
        raise ConfigError(f"Unknown message format {fmt!r}; use one of {MESSAGE_FORMATS}.")
    parse = parse or parse_any_action
    messages: list[dict[str, Any]] = []
    if system:
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": request})
    seen: list[str] = []
    for turn, (action, observation) in enumerate(turns, start=1):
        if isinstance(observation, Mapping):  # a dict observation: its text
            observation = str(observation.get("text", ""))
        parsed = parse(action, tuple(seen))
        if parsed.kind == "answer" and parsed.answer is not None:
            text = action if isinstance(action, str) else format_answer(parsed.answer,
                                                                        parsed.think)
            messages.append({"role": "assistant", "content": text})
            continue
        if parsed.kind == "tool" and parsed.tool_call is not None:
            new_ids = [i for i in listed_image_ids(observation) if i not in seen]
            seen.extend(new_ids)
            content = _tool_content(strip_tool_response(observation), new_ids, images, fmt)
            messages.extend(_tool_turn(parsed, turn, content, fmt))
            continue
        messages.append({"role": "assistant", "content": action_to_text(action)})
        messages.append({"role": "user", "content": observation})
    return messages
