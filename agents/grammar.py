"""Constrained decoding: which text may come next in a turn of the action protocol.

:class:`ReplyGrammar` reads an assistant turn one character at a time and refuses
the first character that could not belong to a well-formed turn: an optional
``<think>...</think>`` block, then one ``<tool_call>{...}</tool_call>`` or one
``<answer>{...}</answer>`` whose JSON follows a schema (:func:`tool_call_schema`,
:func:`answer_schema`). The transformers backend asks it, token by token, which
of the model's likeliest tokens keep the turn well formed
(:func:`allowed_tokens`), as guided decoding does in vLLM. A small model then
cannot close a query list with ``}`` or end an answer before its references,
while every word inside the strings is still its own choice.

The schemas are read by :class:`~knowgen.agents.json_grammar.JsonGrammar` (a subset of
JSON Schema, described there).

Example:
    >>> g = ReplyGrammar(answer_ids=["IMG_001"])
    >>> g.accepts('<think>ok</think><answer>{"gen_prompt": "x"}')
    False
    >>> g.accepts('<think>ok</think><answer>{"gen_prompt": "x", "reference_images": []}</answer>')
    True
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from knowgen.agents.json_grammar import WHITESPACE, JsonGrammar
from knowgen.envs.protocol import MAX_QUERIES, MAX_REFERENCES

_MAX_BLANKS = 2
"""Most whitespace characters in a row outside strings and the think block."""
_TAGS = ("<think>", "</think>", "<tool_call>", "</tool_call>", "<answer>", "</answer>",
         "<tool_response>", "</tool_response>", "<|")


def tool_call_schema(tools: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The schema of ``{"name": ..., "arguments": {...}}`` for OpenAI-style tool schemas.

    The arguments follow the schema of the named tool (its ``parameters``).
    """
    cases: dict[str, Any] = {}
    for tool in tools:
        spec = tool.get("function", tool)
        params = dict(spec.get("parameters") or {"type": "object", "properties": {}})
        props = {key: dict(value) for key, value in (params.get("properties") or {}).items()}
        if props.get("queries", {}).get("type") == "array":
            props["queries"].setdefault("maxItems", MAX_QUERIES)
            props["queries"].setdefault("minItems", 1)
        for value in props.values():
            if value.get("type") == "string":
                value.setdefault("minLength", 1)
            elif value.get("items", {}).get("type") == "string":
                value["items"] = {**value["items"], "minLength": 1}
        cases[spec["name"]] = {"type": "object", "properties": props,
                               "required": list(params.get("required") or [])}
    return {"type": "object",
            "properties": {"name": {"type": "string", "enum": sorted(cases)},
                           "arguments": {"type": "object", "cases": ["name", cases]}},
            "required": ["name", "arguments"]}


def answer_schema(image_ids: Iterable[str], min_references: int = 0) -> dict[str, Any]:
    """The schema of an answer that may cite only ``image_ids``, each at most once.

    Args:
        image_ids: The ids an answer may cite.
        min_references: Fewest references the answer must give (at most the number
            of ``image_ids``).
    """
    ids = sorted(set(image_ids))
    item = {"type": "object", "properties": {"img_id": {"type": "string", "enum": ids},
                                             "note": {"type": "string"}},
            "required": ["img_id"]}
    return {"type": "object",
            "properties": {"gen_prompt": {"type": "string", "minLength": 1},
                           "reference_images": {"type": "array", "items": item,
                                                "unique": "img_id",
                                                "minItems": min(min_references, len(ids), MAX_REFERENCES),
                                                "maxItems": min(MAX_REFERENCES, len(ids))}},
            "required": ["gen_prompt", "reference_images"]}


class ReplyGrammar:
    """One assistant turn of the action protocol, read character by character.

    Args:
        tools: OpenAI-style tool schemas the model may call (none: it may only answer).
        answer_ids: Image ids an answer may cite (shown by tool results so far).
        min_references: Fewest pictures an answer must cite (see :func:`answer_schema`).
        answer: Whether the turn may be an answer (``False``: it must call a tool).

    Raises:
        ValueError: when the turn may neither answer nor call a tool.
    """

    def __init__(self, tools: Sequence[dict[str, Any]] = (),
                 answer_ids: Iterable[str] = (), min_references: int = 0,
                 answer: bool = True):
        self.schemas: dict[str, dict[str, Any]] = {}
        if answer:
            self.schemas["answer"] = answer_schema(answer_ids, min_references)
        if tools:
            self.schemas["tool_call"] = tool_call_schema(tools)
        if not self.schemas:
            raise ValueError("A turn that may not answer must be offered a tool to call.")
        self.phase = "start"     # start, think, between, json, after, done
        self.pending = ""        # part of a tag being written
        self.tag = ""
        self.tail = ""
        self.blanks = 0
        self.json: JsonGrammar | None = None

    @property
    def complete(self) -> bool:
        """Whether the turn is finished (its closing tag is written)."""
        return self.phase == "done"

    def copy(self) -> ReplyGrammar:
        """An independent copy of the reading so far."""
        other = ReplyGrammar.__new__(ReplyGrammar)
        other.__dict__.update(self.__dict__)
        other.json = self.json.copy() if self.json is not None else None
        return other

    def accepts(self, text: str) -> bool:
        """Whether ``text`` may come next (the reading itself is left unchanged)."""
        return self.copy().feed(text)

    def feed(self, text: str) -> bool:
        """Read ``text``; False (and a reading no longer usable) when it breaks the turn."""
        return all(self._char(char) for char in text)

    def _char(self, char: str) -> bool:
        self.tail = (self.tail + char)[-16:]
        free = self.phase == "think" or (self.json is not None and self.json.lex == "str")
        self.blanks = self.blanks + 1 if char in WHITESPACE and not free else 0
        if self.blanks > _MAX_BLANKS:
            return False
        if self.phase in ("start", "between", "after"):
            return self._tag_char(char)
        if self.phase == "think":
            if self.tail.endswith("</think>"):
                self.phase, self.tail = "between", ""
                return True
            return not self._tag_in_tail()
        if self.phase == "json":
            assert self.json is not None
            if self.json.lex == "str" and self._tag_in_tail():
                return False
            if not self.json.feed(char):
                return False
            if self.json.done and self.json.lex == "":
                self.phase = "after"
            return True
        return char in WHITESPACE

    def _tag_in_tail(self) -> bool:
        return any(tag in self.tail for tag in _TAGS)

    def _tag_char(self, char: str) -> bool:
        if not self.pending and char in WHITESPACE:
            return True
        self.pending += char
        options = self._tag_options()
        if not any(option.startswith(self.pending) for option in options):
            return False
        if self.pending in options:
            self._enter(self.pending)
        return True

    def _tag_options(self) -> list[str]:
        if self.phase == "after":
            return [f"</{self.tag}>"]
        opened = [f"<{tag}>" for tag in self.schemas]
        return ["<think>", *opened] if self.phase == "start" else opened

    def _enter(self, tag: str) -> None:
        self.pending, self.tail = "", ""
        if tag == "<think>":
            self.phase = "think"
        elif self.phase == "after":
            self.phase = "done"
        else:
            self.tag = tag[1:-1]
            self.phase, self.json = "json", JsonGrammar(self.schemas[self.tag])


def allowed_tokens(grammar: ReplyGrammar, ranked: Iterable[int], texts: Sequence[str],
                   end_id: int, keep: int = 20) -> list[int]:
    """The first ``keep`` tokens of ``ranked`` (likeliest first) that keep the turn valid.

    Args:
        grammar: The reading of the reply so far.
        ranked: Token ids, likeliest first.
        texts: The text of every token id (ids past its end, as a model's padded
            vocabulary has, are never allowed).
        end_id: The end-of-turn token, allowed only once the turn is complete.
        keep: How many allowed tokens to collect (1 is enough for greedy decoding).
    """
    allowed: list[int] = []
    for token in ranked:
        text = texts[token] if token < len(texts) else ""
        ok = grammar.complete if token == end_id else bool(text) and grammar.accepts(text)
        if ok:
            allowed.append(token)
            if len(allowed) >= keep:
                break
    return allowed
