"""What the agent's next turn may be: rules read from the conversation so far.

The local backends decode under the protocol grammar (:mod:`knowgen.agents.grammar`,
:mod:`knowgen.agents.gbnf`); :func:`reply_rules` says, before each turn, which tools the
turn may call, which pictures an answer may cite and how many it must, and whether it
may answer at all. The settings that switch the rules on (``cite_pictures``,
``finish_count``, ``fresh_calls``) live in a checkpoint's ``knowgen_agent.json``
(:mod:`knowgen.agents.checkpoint_format`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from knowgen.agents.json_grammar import folded, same_text
from knowgen.envs.observations import tools_closed
from knowgen.envs.protocol import IMG_ID_PATTERN, parse_action

PICTURE_COUNT = re.compile(r"\b(\d{1,2}) of (\d{1,2}):")
"""How the agent numbers the picture an image search looks for: ``"flag 1 of 2:"``."""


def shown_image_ids(messages: Iterable[dict[str, Any]]) -> set[str]:
    """Image ids the tool results of ``messages`` showed (the ids an answer may cite)."""
    return {m.group(0).upper() for msg in messages if msg.get("role") == "tool"
            for m in IMG_ID_PATTERN.finditer(str(msg.get("content", "")))}


def answer_due(messages: Sequence[dict[str, Any]]) -> bool:
    """Whether the latest observation in ``messages`` says the next turn must be the answer."""
    for message in reversed(messages):
        if message.get("role") == "assistant":
            return False
        if message.get("role") in ("tool", "user") and tools_closed(message.get("content", "")):
            return True
    return False


def image_searches_counted(messages: Sequence[dict[str, Any]]) -> tuple[int, int]:
    """How far the agent's own picture count has got: ``(looked for, announced)``.

    The agent numbers the picture each image search looks for in its ``<think>``
    (``"Next, flag 1 of 2: the official flag of Zambia."``). ``announced`` is the largest
    total it has written (0 when it never counted); ``looked for`` is the larger of the
    highest number it has reached and the image searches it has called since it first
    counted (a search it forgot to number still counts).
    """
    reached = announced = searches = 0
    counting = False
    for message in messages:
        if message.get("role") != "assistant":
            continue
        for number, total in PICTURE_COUNT.findall(str(message.get("content") or "")):
            if 0 < int(number) <= int(total):
                counting = True
                reached, announced = max(reached, int(number)), max(announced, int(total))
        if counting and any(name == "image_search" for name, _ in _message_calls(message)):
            searches += 1
    return max(reached, searches), announced


def _message_calls(message: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The tool calls of an assistant message, as ``(name, arguments)``: its structured
    ``tool_calls`` (arguments as a dict or a JSON string) and the one its text makes."""
    calls = []
    for call in message.get("tool_calls") or []:
        if not isinstance(call, dict):
            continue
        spec = call.get("function", call)
        arguments = spec.get("arguments")
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except ValueError:
                arguments = None
        calls.append((str(spec.get("name")), arguments if isinstance(arguments, dict) else {}))
    parsed = parse_action(str(message.get("content") or ""))
    if parsed.kind == "tool" and parsed.tool_call is not None:
        calls.append((parsed.tool_call.name, dict(parsed.tool_call.arguments)))
    return calls


def _text_values(arguments: dict[str, Any]) -> list[tuple[str, str]]:
    """Each text argument as ``(key, value)``; a list of strings gives each of its items."""
    return [(str(key), v) for key, value in arguments.items()
            for v in (value if isinstance(value, list) else [value]) if isinstance(v, str)]


def earlier_arguments(messages: Sequence[dict[str, Any]]) -> dict[str, dict[str, list[str]]]:
    """The text arguments of the agent's earlier tool calls: ``{tool: {argument: [values]}}``.

    A list of strings (a search's ``queries``) gives each of its items.
    """
    used: dict[str, dict[str, list[str]]] = {}
    for message in messages:
        if message.get("role") != "assistant":
            continue
        for name, arguments in _message_calls(message):
            for key, value in _text_values(arguments):
                used.setdefault(name, {}).setdefault(key, []).append(value)
    return used


def fresh_tools(tools: Sequence[dict[str, Any]],
                used: dict[str, dict[str, list[str]]]) -> list[dict[str, Any]]:
    """Copies of ``tools`` whose text arguments may not take a value ``used`` already gave.

    Each string argument (and each item of a list of strings) of a tool gets the schema
    keyword ``not_in`` (see :mod:`knowgen.agents.json_grammar`) with the values the
    agent's earlier calls of that tool gave it, so a call cannot repeat an earlier one's
    query word for word (case and spacing aside). Refused only at its closing quote, a
    repeated query leads a model on to stray words; :func:`reply_rules` therefore closes
    the repeated tool itself and keeps this for the tools left.
    """
    fresh = []
    for tool in tools:
        spec = tool.get("function", tool)
        taken = used.get(spec.get("name"), {})
        params = dict(spec.get("parameters") or {})
        props = {key: dict(value) for key, value in (params.get("properties") or {}).items()}
        for key, value in props.items():
            if not taken.get(key):
                continue
            if value.get("type") == "string":
                value["not_in"] = sorted(set(taken[key]))
            elif value.get("type") == "array" and value.get("items", {}).get("type") == "string":
                value["items"] = {**value["items"], "not_in": sorted(set(taken[key]))}
        spec = {**spec, "parameters": {**params, "properties": props}}
        fresh.append({**tool, "function": spec} if "function" in tool else spec)
    return fresh


EXAMPLE = re.compile(r'"([^"]+)"')
"""A quoted example in the description of a tool's argument: ``e.g. "Flag of Peru".``"""


def description_examples(tool: dict[str, Any]) -> dict[str, list[str]]:
    """The quoted examples in the descriptions of a tool's text arguments (a string, or a
    list of strings): ``{argument: [examples]}``."""
    spec = tool.get("function", tool)
    found: dict[str, list[str]] = {}
    for key, value in ((spec.get("parameters") or {}).get("properties") or {}).items():
        text = value.get("type") == "string" or (
            value.get("type") == "array" and (value.get("items") or {}).get("type") == "string")
        examples = EXAMPLE.findall(str(value.get("description") or "")) if text else []
        if examples:
            found[str(key)] = examples
    return found


def unread_examples(messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]]
                    ) -> dict[str, dict[str, list[str]]]:
    """The examples of ``tools``' descriptions (:func:`description_examples`) that neither
    the request nor a tool result in ``messages`` holds (case and spacing aside):
    ``{tool: {argument: [examples]}}``."""
    read = " ".join(folded(str(m.get("content") or "")) for m in messages
                    if m.get("role") in ("user", "tool"))
    unread: dict[str, dict[str, list[str]]] = {}
    for tool in tools:
        for key, examples in description_examples(tool).items():
            left = [e for e in examples if folded(e) not in read]
            if left:
                unread.setdefault(str(tool.get("function", tool).get("name")), {})[key] = left
    return unread


REPEATS_ALLOWED = 1
"""How many times a backend with ``fresh_calls`` lets a tool call be repeated word for word
before it closes the tool for the turn: a model may look a result up again (to count a
second picture, say), but a third identical call is a loop."""


def repeated_tool(messages: Sequence[dict[str, Any]], text: str,
                  times: int = REPEATS_ALLOWED + 1) -> str | None:
    """The tool ``text`` calls when each text argument it gives was given to at least
    ``times`` earlier calls of that tool in ``messages`` (case and spacing aside); else None."""
    parsed = parse_action(text)
    if parsed.kind != "tool" or parsed.tool_call is None:
        return None
    name = parsed.tool_call.name
    used = earlier_arguments(messages).get(name, {})
    values = _text_values(parsed.tool_call.arguments)
    if values and all(sum(same_text(v, old) for old in used.get(key, ())) >= times
                      for key, v in values):
        return name
    return None


def reply_rules(messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]],
                cite_pictures: bool, finish_count: bool = False,
                closed: Iterable[str] = ()) -> dict[str, Any]:
    """What the next turn may be, as keyword arguments of the protocol grammars.

    The result (``tools``, ``answer_ids``, ``min_references``, ``answer``) is taken by
    :class:`~knowgen.agents.grammar.ReplyGrammar` and
    :func:`~knowgen.agents.gbnf.reply_gbnf`. Without ``cite_pictures`` the turn may call
    any tool or answer citing any shown picture (or none). With it an answer must
    cite a picture: while none has been shown and tools remain, the turn must call a
    tool; once one has, an answer cites at least one; once the environment says tools
    are closed, the turn must be the answer (citing none only when none was shown).

    ``finish_count`` (with ``cite_pictures``) holds the agent to its own count (see
    :func:`image_searches_counted`): after "flag 1 of 2" the turn must call a tool while
    tools remain, and the answer cites as many pictures as it counted (at most as many
    as were shown). A closed toolbox still lets it answer.

    ``closed`` names tools the turn may not call (a backend with ``fresh_calls`` closes
    the tool of a reply that would make an earlier call a third time, and decodes the
    turn again); the tools left may not repeat an earlier query either
    (:func:`fresh_tools`), nor take the example of their own description where the
    conversation has not shown it (:func:`unread_examples`: a model pushed off its
    repeated call copied ``"Flag of Peru"`` into a request about a logo). When no tool
    is left the turn is the answer.
    """
    closed = set(closed)
    if closed:
        left = [t for t in tools if t.get("function", t).get("name") not in closed]
        taken = earlier_arguments(messages)
        for name, examples in unread_examples(messages, left).items():
            for key, values in examples.items():
                taken.setdefault(name, {}).setdefault(key, []).extend(values)
        tools = fresh_tools(left, taken)
    ids = sorted(shown_image_ids(messages))
    if not cite_pictures:
        return {"tools": tools, "answer_ids": ids, "min_references": 0, "answer": True}
    looked_for, announced = image_searches_counted(messages) if finish_count else (0, 0)
    cite = max(1, min(announced, len(ids)))
    if answer_due(messages) or not tools:
        return {"tools": (), "answer_ids": ids, "min_references": cite, "answer": True}
    return {"tools": tools, "answer_ids": ids, "min_references": cite,
            "answer": bool(ids) and looked_for >= announced}
