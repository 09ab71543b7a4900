"""A JSON reader that refuses, one character at a time, what a schema does not allow.

:class:`JsonGrammar` reads one JSON value and says, for each character, whether any
value that follows the schema could continue with it. The protocol grammar
(:mod:`knowgen.agents.grammar`) runs one inside a tool call or an answer.

The schemas are a subset of JSON Schema: ``type``, ``properties`` (no other key
allowed), ``required``, ``items``, ``minItems``, ``maxItems``, ``minLength``,
``enum``; plus ``cases`` (an object whose schema depends on the string value of
a sibling key, used for a tool's arguments), ``unique`` (a key whose value an
array item may not repeat) and ``not_in`` (strings a string value may not be, compared
by :func:`same_text`: case and surrounding or repeated whitespace aside).

Example:
    >>> g = JsonGrammar({"type": "object", "properties": {"q": {"type": "string"}},
    ...                  "required": ["q"]})
    >>> all(g.feed(c) for c in '{"q": "x"}') and g.done
    True
"""

from __future__ import annotations

from typing import Any

WHITESPACE = " \t\n\r"
"""Characters JSON allows between tokens."""
_ESCAPES = '"\\/bfnrtu'
_HEX = "0123456789abcdefABCDEF"
_NUMBER_CHARS = "0123456789+-.eE"


class _Frame:
    """One open object or array of the JSON being read."""

    __slots__ = ("count", "is_object", "key", "keys", "schema", "state", "used", "values")

    def __init__(self, is_object: bool, schema: dict[str, Any], state: str):
        self.is_object, self.schema, self.state = is_object, schema, state
        self.keys: set[str] = set()
        self.key = ""
        self.values: dict[str, str] = {}
        self.count = 0
        self.used: set[str] = set()

    def copy(self) -> _Frame:
        other = _Frame(self.is_object, self.schema, self.state)
        other.keys, other.key, other.count = set(self.keys), self.key, self.count
        other.values, other.used = dict(self.values), set(self.used)
        return other


class JsonGrammar:
    """Reads one JSON value that must follow ``schema``; refuses a character that cannot."""

    def __init__(self, schema: dict[str, Any]):
        self.schema = schema
        self.frames: list[_Frame] = []
        self.done = False
        self.lex = ""            # "", "str", "num" or "lit"
        self.buf = ""            # the string, number or literal read so far
        self.escape = 0          # 1 after a backslash, 2-5 inside \\uXXXX
        self.is_key = False
        self.value_schema: dict[str, Any] = schema

    def copy(self) -> JsonGrammar:
        other = JsonGrammar.__new__(JsonGrammar)
        other.__dict__.update(self.__dict__)
        other.frames = [frame.copy() for frame in self.frames]
        return other

    def feed(self, char: str) -> bool:
        """Read one character; False when no valid JSON could continue with it."""
        if self.lex == "str":
            return self._string(char)
        if self.lex == "lit":
            return self._literal(char)
        if self.lex == "num":
            if char in _NUMBER_CHARS:
                self.buf += char
                return _number_prefix(self.buf, self.value_schema)
            if not self._end_number():
                return False
        if char in WHITESPACE:
            return True
        if self.done:
            return False
        if not self.frames:
            return self._start_value(char, self.schema)
        return self._structural(char, self.frames[-1])

    # --------------------------------------------------------------- values
    def _start_value(self, char: str, schema: dict[str, Any]) -> bool:
        types = _types(schema)
        self.value_schema = schema
        if char == "{" and "object" in types:
            schema = self._pick_case(schema)
            self.frames.append(_Frame(True, schema, "key_or_end"))
            return True
        if char == "[" and "array" in types:
            self.frames.append(_Frame(False, schema, "value_or_end"))
            return True
        if char == '"' and "string" in types:
            if "enum" in schema and not self._enum_left(schema):
                return False
            self.lex, self.buf, self.is_key = "str", "", False
            return True
        if (char == "-" or char.isdigit()) and types & {"number", "integer"}:
            self.lex, self.buf = "num", char
            return True
        for word, kind in (("true", "boolean"), ("false", "boolean"), ("null", "null")):
            if char == word[0] and kind in types:
                self.lex, self.buf = "lit", word[1:]
                return True
        return False

    def _pick_case(self, schema: dict[str, Any]) -> dict[str, Any]:
        if "cases" not in schema or not self.frames:
            return schema
        key, cases = schema["cases"]
        return cases.get(self.frames[-1].values.get(key, ""), {"type": "object",
                                                               "properties": {}})

    def _value_done(self, text: str | None = None) -> bool:
        if not self.frames:
            self.done = True
            return True
        frame = self.frames[-1]
        if frame.is_object and text is not None:
            frame.values[frame.key] = text
        frame.count += 0 if frame.is_object else 1
        frame.state = "comma_or_end"
        return True

    def _string(self, char: str) -> bool:
        if self.escape:
            return self._escaped(char)
        if char == "\\":
            if self.is_key or "enum" in self.value_schema:
                return False
            self.escape = 1
            self.buf += char
            return True
        if char == '"':
            self.lex = ""
            return self._end_key() if self.is_key else self._end_string()
        if ord(char) < 0x20:
            return False
        self.buf += char
        if self.is_key:
            return any(k.startswith(self.buf) for k in self._keys_left(self.frames[-1]))
        if "enum" in self.value_schema:
            return any(v.startswith(self.buf) for v in self._enum_left(self.value_schema))
        return True

    def _escaped(self, char: str) -> bool:
        if self.escape == 1:
            if char not in _ESCAPES:
                return False
            self.escape = 2 if char == "u" else 0
        elif char in _HEX:
            self.escape = 0 if self.escape == 5 else self.escape + 1
        else:
            return False
        self.buf += char
        return True

    def _end_string(self) -> bool:
        schema = self.value_schema
        if len(self.buf.strip()) < int(schema.get("minLength", 0)):
            return False
        if "enum" in schema and self.buf not in self._enum_left(schema):
            return False
        if any(same_text(self.buf, used) for used in schema.get("not_in", ())):
            return False
        if self.frames and self._unique_key() == self.frames[-1].key:
            self.frames[-2].used.add(self.buf)
        return self._value_done(self.buf)

    def _end_number(self) -> bool:
        self.lex = ""
        text = self.buf
        if not _number_prefix(text, self.value_schema) or text[-1] in "+-.eE":
            return False
        return self._value_done()

    def _literal(self, char: str) -> bool:
        if not self.buf or char != self.buf[0]:
            return False
        self.buf = self.buf[1:]
        if not self.buf:
            self.lex = ""
            return self._value_done()
        return True

    # ---------------------------------------------------------- containers
    def _structural(self, char: str, frame: _Frame) -> bool:
        state = frame.state
        if frame.is_object:
            if char == '"' and state in ("key_or_end", "key") and self._keys_left(frame):
                self.lex, self.buf, self.is_key = "str", "", True
                return True
            if char == "}" and state in ("key_or_end", "comma_or_end"):
                return self._close(set(frame.schema.get("required", ())) <= frame.keys)
            if char == ":" and state == "colon":
                frame.state = "value"
                return True
            if char == "," and state == "comma_or_end" and self._keys_left(frame):
                frame.state = "key"
                return True
            if state == "value":
                return self._start_value(char, frame.schema["properties"][frame.key])
            return False
        items = frame.schema.get("items", {})
        if char == "]" and state in ("value_or_end", "comma_or_end"):
            return self._close(frame.count >= int(frame.schema.get("minItems", 0)))
        if char == "," and state == "comma_or_end":
            frame.state = "value"
            return frame.count < int(frame.schema.get("maxItems", 1 << 30))
        if state in ("value_or_end", "value"):
            if frame.count >= int(frame.schema.get("maxItems", 1 << 30)):
                return False
            return self._start_value(char, items)
        return False

    def _close(self, allowed: bool) -> bool:
        if not allowed:
            return False
        self.frames.pop()
        return self._value_done()

    def _end_key(self) -> bool:
        frame = self.frames[-1]
        if self.buf not in self._keys_left(frame):
            return False
        frame.keys.add(self.buf)
        frame.key, frame.state = self.buf, "colon"
        return True

    def _keys_left(self, frame: _Frame) -> list[str]:
        return [k for k in frame.schema.get("properties", {}) if k not in frame.keys]

    def _unique_key(self) -> str | None:
        if len(self.frames) < 2 or self.frames[-2].is_object:
            return None
        return self.frames[-2].schema.get("unique")

    def _enum_left(self, schema: dict[str, Any]) -> list[str]:
        values = list(schema.get("enum", ()))
        if self.frames and self._unique_key() == self.frames[-1].key:
            values = [v for v in values if v not in self.frames[-2].used]
        return values


def folded(text: str) -> str:
    """``text`` single-spaced, without surrounding whitespace, case folded: the form in
    which :func:`same_text` compares strings."""
    return " ".join(text.split()).casefold()


def same_text(a: str, b: str) -> bool:
    """Whether two strings say the same, case and surrounding or repeated whitespace aside."""
    return folded(a) == folded(b)


def _types(schema: dict[str, Any]) -> set[str]:
    kind = schema.get("type")
    if kind is None:
        return {"object", "array", "string", "number", "integer", "boolean", "null"}
    kinds = {kind} if isinstance(kind, str) else set(kind)
    return kinds | ({"number"} if "integer" in kinds else set())


def _number_prefix(text: str, schema: dict[str, Any]) -> bool:
    """Whether ``text`` can begin a JSON number (an integer when the schema says so)."""
    if "integer" in _types(schema) and "number" not in {schema.get("type")} and (
            "." in text or "e" in text.lower()):
        return False
    body = text.removeprefix("-")
    if not body:
        return True
    if not body[0].isdigit() or (body[0] == "0" and len(body) > 1 and body[1].isdigit()):
        return False
    seen_dot = seen_exp = False
    prev = body[0]
    for char in body[1:]:
        if char == "." and not (seen_dot or seen_exp) and prev.isdigit():
            seen_dot = True
        elif char in "eE" and not seen_exp and prev.isdigit():
            seen_exp = True
        elif char in "+-" and prev in "eE":
            pass
        elif not char.isdigit():
            return False
        prev = char
    return True
