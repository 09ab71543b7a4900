"""Action formats accepted by :class:`~knowgen.envs.searchgen.SearchGenEnv`.

One registry, :data:`ACTION_FORMATS`, maps a format name to a parser that turns
an action into a :class:`~knowgen.envs.protocol.ParsedAction`:

* ``"text"``: an assistant turn in the text protocol of :mod:`knowgen.envs.protocol`
  (``<think>`` then one ``<tool_call>`` or ``<answer>``);
* ``"dict"``: ``{"tool": "search", "arguments": {...}}`` (or ``{"name": ...,
  "arguments": ...}``) for a tool call, ``{"answer": {"gen_prompt": ...,
  "reference_images": [...]}}`` for the answer, each with an optional ``"think"``;
* ``"openai"``: an OpenAI assistant message ``{"role": "assistant", "content": ...,
  "tool_calls": [{"id", "type": "function", "function": {"name", "arguments"}}]}``,
  its ``tool_calls`` list, or one tool call. ``arguments`` may be a JSON string or a
  dict; a function named ``answer`` carries the answer. A message without
  ``tool_calls`` is parsed as text.

:func:`parse_any_action` picks the format (``"auto"`` detects it from the value),
checks the action's size and nesting first and never raises on a malformed
action: whatever goes wrong becomes an ``"invalid"`` action whose error tells the
model how to fix its turn.

Example:
    >>> parse_any_action({"tool": "image_search", "arguments": {"query": "Flag of Peru"}}).kind
    'tool'
    >>> parse_any_action(42).kind
    'invalid'
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from knowgen.envs.normalize import UnreadableValue, clean_text, normalize_action, type_name
from knowgen.envs.protocol import (
    ParsedAction,
    answer_from_data,
    extract_think,
    parse_action,
    tool_call_from_data,
)
from knowgen.errors import UnknownNameError
from knowgen.types import Answer, ReferenceImage, ToolCall

logger = logging.getLogger(__name__)

ActionParser = Callable[[Any, Iterable[str]], ParsedAction]
"""``parser(action, known_image_ids) -> ParsedAction``; must not raise."""

DEFAULT_MAX_ACTION_CHARS = 65536
"""Largest action (characters of text, keys and values) parsed by default."""

MAX_ACTION_DEPTH = 32
"""Deepest nesting of lists and dicts a structured action may have."""

_FORMATS_HELP = (
    "Send the assistant text (<think>...</think> then one <tool_call> or <answer>), a dict "
    '{"tool": ..., "arguments": {...}} / {"answer": {...}}, or an OpenAI assistant message '
    "with one tool call."
)


def _invalid(error: str, think: str = "") -> ParsedAction:
    return ParsedAction(kind="invalid", error=error, think=think)


def _text_of(content: Any) -> str | None:
    """Text of an OpenAI ``content`` field (a string or a list of text parts)."""
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict)]
        return "".join(p for p in parts if isinstance(p, str))
    return None


def parse_text_action(action: Any, known_image_ids: Iterable[str] = ()) -> ParsedAction:
    """Parse an assistant turn written in the text protocol."""
    return parse_action(action, known_image_ids)


def parse_dict_action(action: Any, known_image_ids: Iterable[str] = ()) -> ParsedAction:
    """Parse ``{"tool": name, "arguments": {...}}`` or ``{"answer": {...}}``.

    ``{"name": name, "arguments": ...}`` (the body of a ``<tool_call>``) works too;
    an optional ``"think"`` string is kept as the turn's reasoning.
    """
    if not isinstance(action, dict):
        return _invalid(f"A dict action must be a dict, got {type(action).__name__}. "
                        + _FORMATS_HELP)
    think = action.get("think", "")
    if not isinstance(think, str):
        return _invalid('"think" must be a string.')
    keys = set(action) - {"think"}
    if "answer" in keys:
        if keys != {"answer"}:
            return _invalid('Give either {"answer": {...}} or a tool call, not both, and no '
                            f"other keys (got {sorted(map(str, keys))}).", think)
        answer = action["answer"]
        if isinstance(answer, str):  # the answer JSON given as a string
            answer, problem = _decode_json(answer)
            if problem:
                return _invalid('"answer" must be an object {"gen_prompt": ..., '
                                '"reference_images": [...]} (or its JSON text).', think)
        return answer_from_data(answer, known_image_ids, think)
    if "tool" in keys:
        extra = sorted(map(str, keys - {"tool", "arguments"}))
        if extra:
            return _invalid(f"Unexpected key(s) {extra} in the tool call: give only \"tool\" "
                            'and "arguments".', think)
        return tool_call_from_data(
            {"name": action["tool"], "arguments": action.get("arguments", {})}, think)
    if "name" in keys:
        return tool_call_from_data({k: action[k] for k in keys}, think)
    return _invalid(f"The dict has none of the keys \"tool\", \"name\" or \"answer\" "
                    f"(got {sorted(map(str, keys))[:10]}). {_FORMATS_HELP}", think)


def _decode_json(text: str) -> tuple[Any, str]:
    """Decode JSON text into clean plain values (JSON escapes can spell lone surrogates)."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return None, "not JSON"
    return normalize_action(data, max(len(text), 1), MAX_ACTION_DEPTH)


def _openai_parts(action: Any) -> tuple[Any, str | None, str] | str:
    """Split an OpenAI action into (tool calls, content text, think) or an error."""
    if isinstance(action, list):
        return action, None, ""
    if not isinstance(action, dict):
        return f"An OpenAI action must be a message dict or a tool_calls list, not " \
               f"{type(action).__name__}."
    if "function" in action and "tool_calls" not in action:
        return [action], None, ""
    role = action.get("role", "assistant")
    if role != "assistant":
        return f'The message role must be "assistant", got {role!r}.'
    content = _text_of(action.get("content"))
    if action.get("content") is not None and content is None:
        return '"content" must be a string, a list of text parts or null.'
    reasoning = action.get("reasoning_content")
    think = reasoning if isinstance(reasoning, str) else extract_think(content or "")
    return action.get("tool_calls") or [], content, think


def parse_openai_action(action: Any, known_image_ids: Iterable[str] = ()) -> ParsedAction:
    """Parse an OpenAI assistant message, its ``tool_calls`` list or one tool call."""
    parts = _openai_parts(action)
    if isinstance(parts, str):
        return _invalid(parts)
    calls, content, think = parts
    if not isinstance(calls, list):
        return _invalid('"tool_calls" must be a list of tool calls.', think)
    if not calls:
        if isinstance(content, str) and content.strip():
            return parse_action(content, known_image_ids)
        return _invalid("The message has neither a tool call nor any content. " + _FORMATS_HELP,
                        think)
    if len(calls) > 1:
        return _invalid(f"The message holds {len(calls)} tool calls; only one is allowed per "
                        "turn. Make one call now and the next one after you have read its "
                        "result.", think)
    if content and ("<tool_call>" in content or "<answer>" in content):
        return _invalid("The message holds a tool call in tool_calls and another call or an "
                        "answer in its content; give only one.", think)
    call = calls[0]
    function = call.get("function", call) if isinstance(call, dict) else None
    if not isinstance(function, dict):
        return _invalid('A tool call must be {"type": "function", "function": {"name": ..., '
                        '"arguments": ...}}.', think)
    if function.get("name") == "answer":
        arguments = function.get("arguments", {})
        return parse_dict_action({"answer": arguments, "think": think}, known_image_ids)
    data = {k: v for k, v in function.items() if k in ("name", "arguments")}
    return tool_call_from_data(data, think)


ACTION_FORMATS: dict[str, ActionParser] = {
    "text": parse_text_action,
    "dict": parse_dict_action,
    "openai": parse_openai_action,
}
"""Action format name -> parser. Add one with :func:`register_action_format`."""

_BUILTIN_FORMATS = {name: parser for name, parser in ACTION_FORMATS.items()}

_DETECTORS: list[tuple[str, Callable[[Any], bool]]] = []


def register_action_format(name: str, parser: ActionParser,
                           detect: Callable[[Any], bool] | None = None) -> None:
    """Add (or replace) an action format.

    Args:
        name: The format's name (for ``EnvConfig.action_format``).
        parser: ``parser(action, known_image_ids) -> ParsedAction``; should not raise
            (an exception becomes an invalid action).
        detect: Optional test that makes ``"auto"`` pick this format; custom
            detectors are tried before the built-in ones.
    """
    ACTION_FORMATS[name] = parser
    _DETECTORS[:] = [(n, d) for n, d in _DETECTORS if n != name]
    if detect is not None:
        _DETECTORS.append((name, detect))


def unregister_action_format(name: str) -> None:
    """Remove a format added with :func:`register_action_format` (no error when absent)."""
    ACTION_FORMATS.pop(name, None)
    _DETECTORS[:] = [(n, d) for n, d in _DETECTORS if n != name]


def detect_action_format(action: Any) -> str | None:
    """The name of the format ``action`` is written in, or None when none fits."""
    for name, detect in _DETECTORS:
        try:
            if detect(action):
                return name
        except Exception:  # a faulty detector must not break parsing
            logger.warning("Action format detector %r failed", name, exc_info=True)
    if isinstance(action, str):
        return "text"
    if isinstance(action, list):
        return "openai" if action and all(isinstance(c, dict) for c in action) else None
    if not isinstance(action, dict):
        return None
    if {"tool_calls", "role", "content", "function"} & set(action):
        return "openai"
    return "dict"


def exceeds_limits(action: Any, max_chars: int, max_depth: int = MAX_ACTION_DEPTH) -> str:
    """Why ``action`` is too large or too deeply nested to parse ("" when it is fine).

    Walks dicts, lists and tuples iteratively, counting the characters of strings
    (keys included) and one per other value; stops as soon as a limit is passed.
    """
    if isinstance(action, str):
        return f"{len(action)} characters" if len(action) > max_chars else ""
    total, stack = 0, [(action, 0)]
    while stack:
        value, depth = stack.pop()
        if depth > max_depth:
            return f"nested more than {max_depth} levels deep"
        if isinstance(value, dict):
            stack.extend((k, depth + 1) for k in value)
            stack.extend((v, depth + 1) for v in value.values())
            total += 1
        elif isinstance(value, (list, tuple)):
            stack.extend((v, depth + 1) for v in value)
            total += 1
        else:
            total += len(value) if isinstance(value, str) else 1
        if total > max_chars:
            return f"more than {max_chars} characters"
    return ""


def read_action(action: Any, known_image_ids: Iterable[str] = (), *, fmt: str = "auto",
                max_chars: int = DEFAULT_MAX_ACTION_CHARS) -> tuple[ParsedAction, Any]:
    """Parse an action and return it with the clean copy the environment keeps.

    The action is first copied into plain values with every unencodable code
    point replaced (:func:`~knowgen.envs.normalize.normalize_action`), so nothing
    later (parsers, transcripts, logs, the image generator, a results file) ever
    sees a lone surrogate or calls a method of a foreign object. Actions of a
    custom format (see :func:`register_action_format`) reach their parser as
    sent; the strings of what it returns are cleaned instead.

    Args:
        action: Whatever the policy sent.
        known_image_ids: Image ids shown so far in the episode.
        fmt: A name in :data:`ACTION_FORMATS`, or ``"auto"`` to detect it.
        max_chars: Larger actions are refused unparsed.

    Returns:
        ``(parsed, kept)``: the parsed action (``"invalid"`` for anything
        malformed) and a clean, bounded copy of the action for transcripts.

    Raises:
        UnknownNameError: for an unknown ``fmt`` (a setting, not an action).
    """
    if fmt != "auto" and fmt not in ACTION_FORMATS:
        raise UnknownNameError("action format", fmt, [*ACTION_FORMATS, "auto"])
    known = tuple(known_image_ids)
    kept, problem = normalize_action(action, max_chars, MAX_ACTION_DEPTH)
    if problem:
        shown = (clean_text(str.__str__(action)[:max_chars]) + "\n[truncated]"
                 if isinstance(action, str) else f"[a {_type_name(action)} action too large to show]")
        return (_invalid(f"Your turn is too large to read ({problem}; the limit is "
                         f"{max_chars} characters). Write a shorter turn."), shown)
    try:
        name = (_custom_format(action) or detect_action_format(kept)) if fmt == "auto" else fmt
        if name is None:
            shown = kept.type_name if isinstance(kept, UnreadableValue) else _type_name(kept)
            return _invalid(f"Unsupported action of type {shown}. " + _FORMATS_HELP), kept
        parser = ACTION_FORMATS[name]
        if parser is not _BUILTIN_FORMATS.get(name):  # a custom parser gets the action as sent
            return clean_parsed(parser(action, known)), kept
        return parser(kept, known), kept
    except Exception as exc:  # the last line of defence: step must never raise on an action
        logger.warning("Action parser failed on a %s action", _type_name(action), exc_info=True)
        return _invalid(f"The action could not be read ({_type_name(exc)}). "
                        + _FORMATS_HELP), kept


def parse_any_action(action: Any, known_image_ids: Iterable[str] = (), *, fmt: str = "auto",
                     max_chars: int = DEFAULT_MAX_ACTION_CHARS) -> ParsedAction:
    """Parse an action in any registered format.

    Args:
        action: Text, a dict, an OpenAI message or tool_calls list (anything else
            is an invalid action).
        known_image_ids: Image ids shown so far in the episode.
        fmt: A name in :data:`ACTION_FORMATS`, or ``"auto"`` to detect it.
        max_chars: Larger actions are refused unparsed.

    Returns:
        The parsed action; a malformed action gives ``kind == "invalid"``. Its
        strings never hold unencodable code points (see :func:`read_action`).

    Raises:
        UnknownNameError: for an unknown ``fmt`` (a setting, not an action).
    """
    return read_action(action, known_image_ids, fmt=fmt, max_chars=max_chars)[0]


def clean_parsed(parsed: Any) -> ParsedAction:
    """``parsed`` with every string cleaned (for parsers of custom formats).

    Anything that is not a :class:`ParsedAction` becomes an invalid action.
    """
    if not isinstance(parsed, ParsedAction):
        return _invalid(f"The action parser returned a {_type_name(parsed)}, not a "
                        "ParsedAction.")
    call, answer = parsed.tool_call, parsed.answer
    if call is not None:
        args, problem = normalize_action(dict(call.arguments), 1 << 30, MAX_ACTION_DEPTH)
        call = ToolCall(name=clean_text(call.name), arguments=args if not problem else {})
    if answer is not None:
        answer = Answer(clean_text(answer.gen_prompt), tuple(
            ReferenceImage(clean_text(r.img_id), clean_text(r.note))
            for r in answer.reference_images))
    return ParsedAction(kind=parsed.kind, tool_call=call, answer=answer,
                        error=clean_text(parsed.error or ""), think=clean_text(parsed.think or ""))


def _type_name(value: Any) -> str:
    return type_name(value)


def _custom_format(action: Any) -> str | None:
    """The custom format whose detector claims ``action`` (None when none does)."""
    for name, detect in _DETECTORS:
        try:
            if detect(action):
                return name
        except Exception:  # a faulty detector must not break parsing
            logger.warning("Action format detector %r failed", name, exc_info=True)
    return None


def action_to_text(action: Any, max_chars: int = DEFAULT_MAX_ACTION_CHARS) -> str:
    """A bounded text view of any action (for transcripts and chat messages).

    Text is cut at ``max_chars``; structured actions are written as JSON, or as a
    short placeholder when too large or too deep to write.
    """
    if isinstance(action, str):
        return action if len(action) <= max_chars else action[:max_chars] + "\n[truncated]"
    if exceeds_limits(action, max_chars):
        return f"[a {type(action).__name__} action too large to show]"
    try:
        text = json.dumps(action, ensure_ascii=False, default=repr)
    except (TypeError, ValueError, RecursionError):
        return f"[a {type(action).__name__} action that cannot be written as JSON]"
    return text if len(text) <= max_chars else text[:max_chars] + "\n[truncated]"
