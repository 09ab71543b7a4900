"""The action protocol as a GBNF grammar, for llama.cpp's constrained sampling.

:func:`reply_gbnf` writes one assistant turn of the protocol (an optional
``<think>`` block, then one ``<tool_call>{...}</tool_call>`` or one
``<answer>{...}</answer>``) as a grammar in llama.cpp's GBNF notation, from the
same schemas :mod:`knowgen.agents.grammar` checks character by character
(:func:`~knowgen.agents.grammar.tool_call_schema`,
:func:`~knowgen.agents.grammar.answer_schema`). Object keys are written in the
schema's order (the order the chat template renders them); the ``unique``
constraint of the answer's references is not expressible in GBNF and is left to
the environment, which reports a repeated reference like any other mistake. Strings
may not hold ``<`` (a tag inside a value is always a mistake of the model). A string's
``not_in`` values are refused as :class:`~knowgen.agents.json_grammar.JsonGrammar`
refuses them: case, leading and trailing whitespace and runs of whitespace aside (an
automaton of rules over the values' prefixes). Whitespace written as a JSON escape
(``\t``) counts as other characters, in both grammars; a value holding a quote, a
backslash or ``<`` is not refused (it could only be written escaped).

Example:
    >>> print(reply_gbnf([], ["IMG_001"]).splitlines()[0])
    root ::= think? answer
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from knowgen.agents.grammar import answer_schema, tool_call_schema

_COMMON = r'''ws ::= [ \t\n]? [ \t\n]?
think ::= "<think>" [^<]* "</think>" ws
char ::= [^"\\<\x00-\x1F\x7F] | escape
escape ::= "\\" (["\\/bfnrt] | "u" [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F])
string ::= "\"" char* "\""
nonempty-string ::= "\"" char+ "\""
number ::= "-"? [0-9]+ ("." [0-9]+)? ([eE] [-+]? [0-9]+)?
boolean ::= "true" | "false"'''


def reply_gbnf(tools: Sequence[dict[str, Any]], answer_ids: Iterable[str],
               min_references: int = 0, answer: bool = True) -> str:
    """GBNF of one assistant turn: ``<think>`` (optional), then a tool call or an answer.

    Args:
        tools: OpenAI-style tool schemas the model may call (none: it may only answer).
        answer_ids: Image ids an answer may cite.
        min_references: Fewest pictures an answer must cite.
        answer: Whether the turn may be an answer (``False``: it must call a tool).

    Raises:
        ValueError: when the turn may neither answer nor call a tool.
    """
    writer = _Writer()
    heads, choices = [], []
    if answer:
        body = writer.value(answer_schema(answer_ids, min_references), "answer-json")
        heads.append('answer ::= "<answer>" ws ' + body + ' ws "</answer>"')
        choices.append("answer")
    if tools:
        call = writer.value(tool_call_schema(tools), "call-json")
        heads.append('call ::= "<tool_call>" ws ' + call + ' ws "</tool_call>"')
        choices.insert(0, "call")
    if not choices:
        raise ValueError("A turn that may not answer must be offered a tool to call.")
    choice = choices[0] if len(choices) == 1 else "(" + " | ".join(choices) + ")"
    return "\n".join([f"root ::= think? {choice}", *heads, *writer.rules, _COMMON]) + "\n"


def _literal(text: str) -> str:
    """A GBNF string literal matching ``text`` exactly."""
    return json.dumps(text, ensure_ascii=False)


def _plain(text: str) -> bool:
    """Whether ``text`` is written in JSON as it is (no character a string must escape)."""
    return bool(text) and not any(c in '"\\<' or ord(c) < 0x20 or ord(c) == 0x7F
                                  for c in text)


def _cases(char: str) -> list[str]:
    """``char`` in lower and upper case (one character each, where there are two)."""
    return sorted({c for c in (char, char.lower(), char.upper()) if len(c) == 1})


def _class_char(char: str) -> str:
    """``char`` written inside a GBNF character class."""
    return "\\" + char if char in "]^-\\[" else char


#: The whitespace characters a JSON string may hold as they are (``str.split`` splits at
#: them): what :func:`~knowgen.agents.json_grammar.same_text` sets aside.
_SPACES = "".join(chr(i) for i in range(0x20, 0x3001) if chr(i).isspace())
_SPACE_CLASS = "".join(c if c == " " else f"\\u{ord(c):04X}" for c in _SPACES)


class _Writer:
    """Collects the rules of a schema's values, one named rule per object and array."""

    def __init__(self) -> None:
        self.rules: list[str] = []
        self._names: set[str] = set()

    def _rule(self, name: str, body: str) -> str:
        name = self._reserve(name)
        self.rules.append(f"{name} ::= {body}")
        return name

    def _reserve(self, name: str) -> str:
        """A rule name not yet taken, made from ``name`` (its body is written later)."""
        name = re.sub(r"[^a-zA-Z0-9-]+", "-", name)
        base, n = name, 1
        while name in self._names:
            n += 1
            name = f"{base}-{n}"
        self._names.add(name)
        return name

    def value(self, schema: dict[str, Any], name: str) -> str:
        """The expression (or the name of a new rule) matching a value of ``schema``."""
        kind = schema.get("type")
        if "enum" in schema:
            return "(" + " | ".join(_literal(json.dumps(v)) for v in schema["enum"]) + ")"
        if kind == "string":
            banned = {" ".join(v.split()).lower() for v in schema.get("not_in", ())
                      if _plain(v) and v.strip()}
            if banned:
                return '"\\"" ' + self._fresh(banned, name, schema.get("minLength", 0) >= 1)
            return "nonempty-string" if schema.get("minLength", 0) >= 1 else "string"
        if kind in ("integer", "number"):
            return "number"
        if kind == "boolean":
            return "boolean"
        if kind == "array":
            return self._array(schema, name)
        if kind == "object":
            return self._object(schema, name)
        raise ValueError(f"No GBNF for a schema of type {kind!r}")

    def _fresh(self, banned: set[str], name: str, nonempty: bool) -> str:
        """The rest of a string (closing quote included) that may not be one of ``banned``
        (lower case, single-spaced) whatever its case and spacing: one rule per state
        (the value read so far, whitespace dropped at its start and run together, and
        whether whitespace follows it). A character that leaves every banned prefix leads
        to the free rest of the string."""
        prefixes = {b[:i] for b in banned for i in range(len(b) + 1)}
        names: dict[tuple[str, bool], str] = {}
        bodies: list[tuple[str, str]] = []

        def state(prefix: str, spaced: bool) -> str:
            if (prefix, spaced) in names:
                return names[(prefix, spaced)]
            rule = names[(prefix, spaced)] = self._reserve(f"{name}-fresh")
            read = prefix + " " if spaced and prefix else prefix
            nexts = sorted({b[len(read)] for b in banned
                            if b.startswith(read) and len(b) > len(read)} - {" "})
            options = []
            if prefix not in banned and (prefix or not nonempty):
                options.append('"\\""')
            if not prefix or prefix in banned or prefix + " " in prefixes:
                options.append(f"[{_SPACE_CLASS}] {state(prefix, True)}")
            else:  # no banned value goes on from here with whitespace: the rest is free
                options.append(f'[{_SPACE_CLASS}] char* "\\""')
            others = "".join(_class_char(c) for n in nexts for c in _cases(n)) + _SPACE_CLASS
            options.append(f'([^"\\\\<\\x00-\\x1F\\x7F{others}] | escape) char* "\\""')
            for n in nexts:
                head = "[" + "".join(_class_char(c) for c in _cases(n)) + "]"
                options.append(f"{head} {state(read + n, False)}")
            bodies.append((rule, " | ".join(options)))
            return rule

        start = state("", False)
        self.rules.extend(f"{rule} ::= {body}" for rule, body in bodies)
        return start

    def _array(self, schema: dict[str, Any], name: str) -> str:
        item = self.value(schema.get("items") or {"type": "string"}, f"{name}-item")
        low = int(schema.get("minItems", 0))
        high = schema.get("maxItems")
        if high is not None and int(high) == 0:
            return self._rule(name, '"[" ws "]"')
        more = f'(ws "," ws {item})'
        more += "{" + f"{max(low - 1, 0)},{'' if high is None else int(high) - 1}" + "}"
        items = f"{item} {more}"
        body = f'"[" ws {items} ws "]"' if low >= 1 else f'"[" ws ({items})? ws "]"'
        return self._rule(name, body)

    def _object(self, schema: dict[str, Any], name: str) -> str:
        props: dict[str, Any] = schema.get("properties") or {}
        switch = next(((k, v["cases"]) for k, v in props.items() if "cases" in v), None)
        if switch is not None:
            return self._switch(schema, name, *switch)
        required = [k for k in props if k in (schema.get("required") or [])]
        optional = [k for k in props if k not in required]
        parts = [self._member(k, props[k], name) for k in required]
        body = ' ws "," ws '.join(parts)
        for key in optional:
            member = self._member(key, props[key], name)
            body = f'{body} (ws "," ws {member})?' if body else f"({member})?"
        return self._rule(name, f'"{{" ws {body} ws "}}"' if body else '"{" ws "}"')

    def _member(self, key: str, schema: dict[str, Any], name: str) -> str:
        return f'{_literal(json.dumps(key))} ws ":" ws {self.value(schema, f"{name}-{key}")}'

    def _switch(self, schema: dict[str, Any], name: str, key: str,
                cases: list[Any]) -> str:
        """An object whose ``key`` member picks the schema of another (``cases``)."""
        selector, table = cases
        props = schema["properties"]
        options = []
        for value, case in table.items():
            head = f'{_literal(json.dumps(selector))} ws ":" ws {_literal(json.dumps(value))}'
            tail = self._member(key, case, f"{name}-{value}")
            others = [self._member(k, v, name) for k, v in props.items()
                      if k not in (key, selector) and k in (schema.get("required") or [])]
            options.append(' ws "," ws '.join([head, *others, tail]))
        return self._rule(name, '"{" ws (' + " | ".join(f"({o})" for o in options) +
                          ') ws "}"')
