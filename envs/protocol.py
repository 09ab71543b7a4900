"""The action protocol: what an assistant turn may contain, and its parser.

An assistant turn is an optional ``<think>...</think>`` block followed by exactly
one of

* ``<tool_call>{"name": "<tool>", "arguments": {...}}</tool_call>``, or
* ``<answer>{"gen_prompt": "...", "reference_images": [{"img_id": "IMG_001", "note": "..."}]}</answer>``.

Tools: ``search(queries: list[str], top_k=5)`` (a single string is accepted as
one query), ``image_search(query: str, top_k=5)``, ``browse(url: str,
query: str)`` and ``fetch_image(url: str)``.

The parser is lenient where leniency cannot change the meaning (surrounding
whitespace, a Markdown code fence inside a tag, a missing closing tag at the very
end of the text, ``arguments`` given as a JSON string) and strict where it
matters: two tool calls, a call and an answer together, invalid JSON, unknown
tools or arguments, wrong argument types and unknown image ids all give an
``"invalid"`` action whose error tells the model how to fix its turn.

Example:
    >>> act = parse_action('<tool_call>{"name": "search", "arguments": {"queries": ["Paris"]}}</tool_call>')
    >>> act.kind, act.tool_call.arguments
    ('tool', {'queries': ['Paris']})
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from knowgen.envs.normalize import normalize_action
from knowgen.types import Answer, ReferenceImage, ToolCall

TOOL_NAMES: tuple[str, ...] = ("search", "image_search", "browse", "fetch_image")
"""Tools the environment offers, in the order the system prompt lists them."""

MAX_REFERENCES = 5
"""Most reference images an answer may list."""

MAX_QUERIES = 5
"""Most queries one ``search`` call may carry."""

MAX_TOP_K = 10
"""Largest ``top_k`` a search or image search may ask for."""

IMG_ID_PATTERN = re.compile(r"IMG_(\d{3,})", re.IGNORECASE)

MAX_JSON_DEPTH = 32
"""Deepest nesting of lists and objects a JSON body of a turn may have."""

_FENCE = "```"
_FENCE_LANG = re.compile(r"[A-Za-z0-9_-]*")

_TOOL_HELP = (
    'Write exactly one <tool_call>{"name": ..., "arguments": {...}}</tool_call> or one '
    '<answer>{"gen_prompt": ..., "reference_images": [...]}</answer> per turn.'
)
_ARG_SPECS: dict[str, str] = {
    "search": 'search takes {"queries": ["...", ...], "top_k": 5} (top_k optional)',
    "image_search": 'image_search takes {"query": "...", "top_k": 5} (top_k optional)',
    "browse": 'browse takes {"url": "https://...", "query": "what to look for"}',
    "fetch_image": 'fetch_image takes {"url": "<an image url seen in a page or a result>"}',
}


@dataclass(frozen=True)
class ParsedAction:
    """The result of parsing one assistant turn.

    Attributes:
        kind: ``"tool"``, ``"answer"`` or ``"invalid"``.
        tool_call: The call when ``kind == "tool"``; arguments are normalised
            (``search`` always has a ``queries`` list; ``top_k`` only when given).
        answer: The answer when ``kind == "answer"``; references sorted by id.
        error: What was wrong and how to fix it when ``kind == "invalid"``.
        think: The text of the ``<think>`` block(s), if any.
    """

    kind: Literal["tool", "answer", "invalid"]
    tool_call: ToolCall | None = None
    answer: Answer | None = None
    error: str = ""
    think: str = ""


def format_tool_call(name: str, arguments: dict[str, Any], think: str = "") -> str:
    """Write a tool call in the protocol (the inverse of :func:`parse_action`)."""
    body = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)
    return _with_think(f"<tool_call>{body}</tool_call>", think)


def format_answer(answer: Answer, think: str = "") -> str:
    """Write an answer in the protocol (the inverse of :func:`parse_action`)."""
    body = json.dumps(answer.to_dict(), ensure_ascii=False)
    return _with_think(f"<answer>{body}</answer>", think)


def _with_think(text: str, think: str) -> str:
    return f"<think>{think}</think>\n{text}" if think else text


def img_id_number(img_id: str) -> int:
    """The number inside ``IMG_###`` (used to sort ids)."""
    match = IMG_ID_PATTERN.fullmatch(img_id)
    return int(match.group(1)) if match else 0


def _invalid(error: str, think: str = "") -> ParsedAction:
    return ParsedAction(kind="invalid", error=error, think=think)


def _cut_blocks(text: str, tag: str) -> tuple[list[str], str]:
    """Bodies of the closed ``<tag>...</tag>`` blocks, and the text with each replaced by a space.

    Each block runs from an opening tag to the nearest closing tag after it.
    One pass of ``str.find`` calls, so the cost is linear in ``len(text)`` however
    many unclosed tags the text holds (a regular expression would rescan the rest
    of the text from every opening tag).
    """
    opening, closing = f"<{tag}>", f"</{tag}>"
    bodies: list[str] = []
    pieces: list[str] = []
    pos = 0
    while True:
        start = text.find(opening, pos)
        if start < 0:
            break
        end = text.find(closing, start + len(opening))
        if end < 0:  # no closing tag after this one, so none after any later one either
            break
        bodies.append(text[start + len(opening):end])
        pieces += [text[pos:start], " "]
        pos = end + len(closing)
    if not bodies:
        return bodies, text
    pieces.append(text[pos:])
    return bodies, "".join(pieces)


def _split_think(text: str) -> tuple[str, str, str]:
    """Remove think blocks; return (rest, think text, error)."""
    if "think>" not in text:  # fast path: most turns of a trained model have no stray tags
        return text, "", ""
    thoughts, rest = _cut_blocks(text, "think")
    if "</think>" in rest:  # an opening tag supplied by the chat template
        head, _, rest = rest.rpartition("</think>")
        thoughts.insert(0, head)
    if "<think>" in rest:
        return rest, "", "Your <think> block is not closed: end it with </think> before acting."
    return rest, "\n".join(t.strip() for t in thoughts), ""


def _find_blocks(text: str, tag: str) -> list[str]:
    """Bodies of ``<tag>`` blocks; one unclosed block at the end of the text counts too."""
    opening = f"<{tag}>"
    if opening not in text:
        return []
    start = text.find(opening)
    end = text.find(f"</{tag}>", start)
    if end >= 0 and text.find(opening, start + 1) < 0:  # fast path: exactly one closed block
        return [text[start + len(opening):end]]
    bodies, rest = _cut_blocks(text, tag)
    n_open = rest.count(opening)
    if n_open == 1:
        return bodies + [rest[rest.find(opening) + len(opening):]]
    return bodies + [""] * n_open


def _strip_fence(body: str) -> str:
    """The inside of a Markdown code fence around ``body`` (``body`` itself when there is none).

    ```` ```json {...} ``` ```` gives ``{...}``: the opening fence may carry a
    language name. Linear in ``len(body)``.
    """
    if len(body) < 2 * len(_FENCE) or not (body.startswith(_FENCE) and body.endswith(_FENCE)):
        return body
    inner = body[len(_FENCE):-len(_FENCE)]
    lang = _FENCE_LANG.match(inner)
    return inner[lang.end() if lang else 0:]


def _load_json(body: str, tag: str) -> tuple[Any, str]:
    body = _strip_fence(body.strip()).strip()
    if not body:
        return None, f"The <{tag}> block is empty: put a JSON object inside it."
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        return None, (
            f"The content of <{tag}> is not valid JSON ({exc.msg} at line {exc.lineno}, "
            f"column {exc.colno}). Use double quotes for strings and keys and no trailing commas."
        )
    except RecursionError:
        return None, f"The content of <{tag}> is nested too deeply; write a flat JSON object."
    # JSON escapes can spell lone surrogates ("\\ud800") in plain ASCII: clean them here.
    data, problem = normalize_action(data, max(len(body), 1), MAX_JSON_DEPTH)
    if problem:
        return None, f"The content of <{tag}> is nested too deeply; write a flat JSON object."
    return data, ""


def parse_action(text: Any, known_image_ids: Iterable[str] = ()) -> ParsedAction:
    """Parse one assistant turn.

    Args:
        text: The assistant's raw text (anything that is not a string is invalid).
        known_image_ids: Image ids shown to the agent so far in this episode;
            an answer citing any other id is invalid.

    Returns:
        The parsed action; never raises.
    """
    if not isinstance(text, str):
        return _invalid(f"The action must be text, got {type(text).__name__}. {_TOOL_HELP}")
    rest, think, error = _split_think(text)
    if error:
        return _invalid(error)
    calls = _find_blocks(rest, "tool_call")
    answers = _find_blocks(rest, "answer")
    if calls and answers:
        return _invalid(
            "Your turn holds both a <tool_call> and an <answer>. Either call one tool or answer, "
            "not both.", think)
    if len(calls) > 1:
        return _invalid(
            f"Your turn holds {len(calls)} tool calls; only one is allowed per turn. Make one "
            "call now and the next one after you have read its result.", think)
    if len(answers) > 1:
        return _invalid(f"Your turn holds {len(answers)} answers; give exactly one <answer>.", think)
    if calls:
        return _parse_tool_call(calls[0], think)
    if answers:
        return _parse_answer(answers[0], set(known_image_ids), think)
    return _invalid(f"No <tool_call> or <answer> found in your turn. {_TOOL_HELP}", think)


def _parse_tool_call(body: str, think: str) -> ParsedAction:
    data, error = _load_json(body, "tool_call")
    if error:
        return _invalid(error, think)
    return tool_call_from_data(data, think)


def tool_call_from_data(data: Any, think: str = "") -> ParsedAction:
    """Check a decoded tool call ``{"name": ..., "arguments": {...}}``.

    ``arguments`` may be a dict or a JSON string holding one.

    Args:
        data: The decoded call (anything; non-dicts are invalid).
        think: The turn's reasoning text, kept on the result.

    Returns:
        A ``"tool"`` action with normalised arguments, or an ``"invalid"`` one.
    """
    if not isinstance(data, dict):
        return _invalid('A tool call must be a JSON object {"name": ..., "arguments": {...}}.', think)
    name = data.get("name")
    if not isinstance(name, str) or name not in TOOL_NAMES:
        return _invalid(
            f"Unknown tool {name!r}. Available tools: {', '.join(TOOL_NAMES)}.", think)
    extra = sorted(set(data) - {"name", "arguments"})
    if extra:
        return _invalid(
            f"Unexpected key(s) {extra} in the tool call: give only \"name\" and \"arguments\".",
            think)
    args = data.get("arguments", {})
    if isinstance(args, str):
        args, error = _load_json(args, "tool_call") if args.strip() else ({}, "")
        if error:
            return _invalid(f"The arguments string is not valid JSON. {_ARG_SPECS[name]}.", think)
    if not isinstance(args, dict):
        return _invalid(f'"arguments" must be a JSON object: {_ARG_SPECS[name]}.', think)
    normalised, error = _CHECKERS[name](args)
    if error:
        return _invalid(f"{error} ({_ARG_SPECS[name]}).", think)
    return ParsedAction(kind="tool", tool_call=ToolCall(name=name, arguments=normalised),
                        think=think)


def _check_keys(args: dict[str, Any], allowed: set[str], required: set[str]) -> str:
    unknown = sorted(set(args) - allowed)
    if unknown:
        return f"Unknown argument(s) {unknown}"
    missing = sorted(required - set(args))
    if missing:
        return f"Missing argument(s) {missing}"
    return ""


def _check_top_k(args: dict[str, Any], out: dict[str, Any]) -> str:
    if "top_k" not in args or args["top_k"] is None:
        return ""
    top_k = args["top_k"]
    if isinstance(top_k, bool) or not isinstance(top_k, int):
        return f"top_k must be a whole number, got {top_k!r}"
    if not 1 <= top_k <= MAX_TOP_K:
        return f"top_k must be between 1 and {MAX_TOP_K}, got {top_k}"
    out["top_k"] = top_k
    return ""


def _check_text(value: Any, what: str, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        return f"{what} must be a string, got {type(value).__name__}"
    if not allow_empty and not value.strip():
        return f"{what} must not be empty"
    return ""


def _check_search(args: dict[str, Any]) -> tuple[dict[str, Any], str]:
    error = _check_keys(args, {"queries", "top_k"}, {"queries"})
    if error:
        return {}, error
    queries = args["queries"]
    if isinstance(queries, str):
        queries = [queries]
    if not isinstance(queries, list) or not queries:
        return {}, "queries must be a non-empty list of strings"
    if len(queries) > MAX_QUERIES:
        return {}, f"At most {MAX_QUERIES} queries per search, got {len(queries)}"
    for i, query in enumerate(queries):
        error = _check_text(query, f"queries[{i}]")
        if error:
            return {}, error
    out: dict[str, Any] = {"queries": [q.strip() for q in queries]}
    return out, _check_top_k(args, out)


def _check_image_search(args: dict[str, Any]) -> tuple[dict[str, Any], str]:
    error = _check_keys(args, {"query", "top_k"}, {"query"}) or _check_text(args["query"], "query")
    if error:
        return {}, error
    out: dict[str, Any] = {"query": args["query"].strip()}
    return out, _check_top_k(args, out)


def _check_browse(args: dict[str, Any]) -> tuple[dict[str, Any], str]:
    error = _check_keys(args, {"url", "query"}, {"url"}) or _check_text(args["url"], "url")
    if error:
        return {}, error
    query = args.get("query", "")
    error = _check_text(query, "query", allow_empty=True)
    if error:
        return {}, error
    return {"url": args["url"].strip(), "query": query.strip()}, ""


def _check_fetch_image(args: dict[str, Any]) -> tuple[dict[str, Any], str]:
    error = _check_keys(args, {"url"}, {"url"}) or _check_text(args["url"], "url")
    if error:
        return {}, error
    return {"url": args["url"].strip()}, ""


_CHECKERS = {"search": _check_search, "image_search": _check_image_search,
             "browse": _check_browse, "fetch_image": _check_fetch_image}


def _parse_answer(body: str, known: set[str], think: str) -> ParsedAction:
    data, error = _load_json(body, "answer")
    if error:
        return _invalid(error, think)
    return answer_from_data(data, known, think)


def answer_from_data(data: Any, known_image_ids: Iterable[str] = (),
                     think: str = "") -> ParsedAction:
    """Check a decoded answer ``{"gen_prompt": ..., "reference_images": [...]}``.

    Args:
        data: The decoded answer (anything; non-dicts are invalid).
        known_image_ids: Image ids shown so far; any other cited id is invalid.
        think: The turn's reasoning text, kept on the result.

    Returns:
        An ``"answer"`` action (references sorted by id), or an ``"invalid"`` one.
    """
    known = set(known_image_ids)
    if not isinstance(data, dict):
        return _invalid('The answer must be a JSON object {"gen_prompt": ..., '
                        '"reference_images": [...]}.', think)
    prompt = data.get("gen_prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        return _invalid('The answer needs "gen_prompt": a non-empty string describing the '
                        "image to generate.", think)
    refs, error = _parse_references(data.get("reference_images", []), known)
    if error:
        return _invalid(error, think)
    return ParsedAction(kind="answer", answer=Answer(prompt.strip(), refs), think=think)


def _parse_references(items: Any, known: set[str]) -> tuple[tuple[ReferenceImage, ...], str]:
    if items is None:
        items = []
    if not isinstance(items, list):
        return (), ('"reference_images" must be a list of {"img_id": "IMG_###", "note": "..."} '
                    "objects.")
    if len(items) > MAX_REFERENCES:
        return (), f"At most {MAX_REFERENCES} reference images are allowed, got {len(items)}."
    refs: dict[str, ReferenceImage] = {}
    for i, item in enumerate(items):
        if isinstance(item, str):
            item = {"img_id": item}
        if not isinstance(item, dict) or not isinstance(item.get("img_id"), str):
            return (), (f'reference_images[{i}] must be an object with "img_id" (a string such as '
                        '"IMG_001") and an optional "note".')
        note = item.get("note", "")
        if not isinstance(note, str):
            return (), f"reference_images[{i}].note must be a string."
        raw = item["img_id"].strip()
        if not IMG_ID_PATTERN.fullmatch(raw):
            return (), f"reference_images[{i}].img_id {raw!r} is not of the form IMG_###."
        img_id = raw.upper()
        if img_id not in known:
            shown = ", ".join(sorted(known, key=img_id_number)) or "none yet: run image_search first"
            return (), (f"{img_id} is not an image id shown in this episode. Use only ids from "
                        f"image_search or fetch_image results (shown so far: {shown}).")
        if img_id in refs:
            return (), f"{img_id} is listed twice in reference_images; list each image once."
        refs[img_id] = ReferenceImage(img_id=img_id, note=note.strip())
    ordered = sorted(refs.values(), key=lambda r: img_id_number(r.img_id))
    return tuple(ordered), ""


def extract_think(text: str) -> str:
    """The text of the ``<think>`` block(s) in ``text`` ("" when there is none)."""
    return _split_think(text)[1] if isinstance(text, str) else ""
