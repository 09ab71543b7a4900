"""The action parser: valid turns, lenient cases, and the errors that teach the model."""

import json

import pytest

from knowgen.envs.protocol import (
    MAX_REFERENCES,
    format_answer,
    format_tool_call,
    img_id_number,
    parse_action,
)
from knowgen.types import Answer, ReferenceImage

KNOWN = ["IMG_001", "IMG_002", "IMG_003", "IMG_004", "IMG_005", "IMG_006", "IMG_010"]


def call(name, arguments, think="plan"):
    body = json.dumps({"name": name, "arguments": arguments})
    return f"<think>{think}</think>\n<tool_call>{body}</tool_call>"


def answer(prompt, ids, extra=None):
    body = {"gen_prompt": prompt, "reference_images": [{"img_id": i, "note": f"n{i}"} for i in ids]}
    body.update(extra or {})
    return f"<think>done</think><answer>{json.dumps(body)}</answer>"


def test_search_call_with_list_and_top_k():
    act = parse_action(call("search", {"queries": ["capital Lima", " Peru "], "top_k": 3}))
    assert act.kind == "tool" and act.error == ""
    assert act.tool_call.name == "search"
    assert act.tool_call.arguments == {"queries": ["capital Lima", "Peru"], "top_k": 3}
    assert act.think == "plan"


def test_search_accepts_a_single_string():
    act = parse_action(call("search", {"queries": "Ouagadougou"}))
    assert act.tool_call.arguments == {"queries": ["Ouagadougou"]}


def test_image_search_and_browse():
    act = parse_action(call("image_search", {"query": "Flag of Peru"}))
    assert act.kind == "tool" and act.tool_call.arguments == {"query": "Flag of Peru"}
    act = parse_action(call("browse", {"url": "https://x.invalid/wiki/Peru", "query": "capital"}))
    assert act.tool_call.arguments == {"url": "https://x.invalid/wiki/Peru", "query": "capital"}
    act = parse_action(call("browse", {"url": "https://x.invalid/wiki/Peru"}))
    assert act.tool_call.arguments["query"] == ""


def test_no_think_block_and_whitespace_are_fine():
    body = '  \n<tool_call>\n {"name": "image_search", "arguments": {"query": "GitHub logo"}} \n</tool_call>\n'
    assert parse_action(body).kind == "tool"


def test_code_fence_inside_the_tag_is_accepted():
    text = '<tool_call>\n```json\n{"name": "search", "arguments": {"queries": ["x"]}}\n```\n</tool_call>'
    assert parse_action(text).kind == "tool"
    text = '<answer>```\n{"gen_prompt": "a flag", "reference_images": []}\n```</answer>'
    assert parse_action(text).kind == "answer"


def test_unclosed_tag_at_the_end_is_accepted():
    text = '<think>x</think><tool_call>{"name": "search", "arguments": {"queries": ["x"]}}'
    assert parse_action(text).kind == "tool"


def test_arguments_given_as_json_string():
    text = '<tool_call>{"name": "search", "arguments": "{\\"queries\\": [\\"x\\"]}"}</tool_call>'
    act = parse_action(text)
    assert act.kind == "tool" and act.tool_call.arguments == {"queries": ["x"]}


def test_tool_tags_inside_think_are_ignored():
    text = ("<think>I could write <tool_call>{}</tool_call> later</think>"
            '<tool_call>{"name": "search", "arguments": {"queries": ["x"]}}</tool_call>')
    assert parse_action(text).kind == "tool"


def test_template_supplied_opening_think_tag():
    text = 'thinking...</think><answer>{"gen_prompt": "p"}</answer>'
    act = parse_action(text)
    assert act.kind == "answer" and act.think == "thinking..."


@pytest.mark.parametrize("text, needle", [
    (call("search", {"queries": ["a"]}) + call("search", {"queries": ["b"]}), "only one"),
    (call("search", {"queries": ["a"]}) + answer("p", []), "both"),
    (answer("p", []) + answer("q", []), "exactly one <answer>"),
    ("<tool_call>{'name': 'search'}</tool_call>", "not valid JSON"),
    ('<tool_call>{"name": "search", "arguments": {"queries": ["a"],}}</tool_call>', "trailing commas"),
    ("<tool_call></tool_call>", "empty"),
    ("I think the answer is France.", "No <tool_call> or <answer>"),
    ("", "No <tool_call> or <answer>"),
    ("<think>never closed <tool_call>", "not closed"),
    (call("web_search", {"queries": ["a"]}), "Unknown tool 'web_search'"),
    (call("search", {"query": "a"}), "Unknown argument"),
    (call("search", {}), "Missing argument"),
    (call("search", {"queries": []}), "non-empty list"),
    (call("search", {"queries": [1, 2]}), "must be a string"),
    (call("search", {"queries": ["  "]}), "must not be empty"),
    (call("search", {"queries": ["a"] * 6}), "At most 5 queries"),
    (call("search", {"queries": ["a"], "top_k": "5"}), "whole number"),
    (call("search", {"queries": ["a"], "top_k": True}), "whole number"),
    (call("search", {"queries": ["a"], "top_k": 0}), "between 1 and"),
    (call("image_search", {"query": ["a"]}), "must be a string"),
    (call("browse", {"query": "capital"}), "Missing argument(s) ['url']"),
    (call("browse", {"url": "u", "query": 3}), "must be a string"),
    ('<tool_call>["search"]</tool_call>', "JSON object"),
    ('<tool_call>{"name": "search", "arguments": [1]}</tool_call>', "must be a JSON object"),
    ('<tool_call>{"name": "search", "arguments": {"queries": ["a"]}, "id": 1}</tool_call>',
     "Unexpected key"),
    ('<answer>"just text"</answer>', "JSON object"),
    ('<answer>{"reference_images": []}</answer>', "gen_prompt"),
    ('<answer>{"gen_prompt": "  "}</answer>', "gen_prompt"),
    ('<answer>{"gen_prompt": "p", "reference_images": {"img_id": "IMG_001"}}</answer>', "must be a list"),
    (answer("p", ["IMG_099"]), "IMG_099 is not an image id shown"),
    (answer("p", ["picture1"]), "not of the form IMG_###"),
    (answer("p", ["IMG_001", "IMG_001"]), "listed twice"),
    (answer("p", KNOWN[:MAX_REFERENCES + 1]), "At most 5 reference images"),
    ('<answer>{"gen_prompt": "p", "reference_images": [{"img_id": "IMG_001", "note": 5}]}</answer>',
     "note must be a string"),
    ('<answer>{"gen_prompt": "p", "reference_images": [{"id": "IMG_001"}]}</answer>', '"img_id"'),
])
def test_invalid_turns_explain_the_fix(text, needle):
    act = parse_action(text, KNOWN)
    assert act.kind == "invalid"
    assert act.tool_call is None and act.answer is None
    assert needle in act.error


def test_non_string_action_is_invalid():
    act = parse_action({"name": "search"})  # type: ignore[arg-type]
    assert act.kind == "invalid" and "must be text" in act.error


def test_answer_references_are_sorted_by_id_and_normalised():
    act = parse_action(answer("the first reference image", ["IMG_010", "img_002", "IMG_003"]), KNOWN)
    assert act.kind == "answer"
    assert [r.img_id for r in act.answer.reference_images] == ["IMG_002", "IMG_003", "IMG_010"]
    assert act.answer.reference_images[0].note == "nimg_002"


def test_answer_with_no_references_and_plain_string_ids():
    act = parse_action('<answer>{"gen_prompt": "a red circle"}</answer>')
    assert act.kind == "answer" and act.answer.reference_images == ()
    act = parse_action('<answer>{"gen_prompt": "p", "reference_images": ["IMG_004"]}</answer>', KNOWN)
    assert act.answer.reference_images == (ReferenceImage("IMG_004", ""),)


def test_unknown_id_error_lists_the_shown_ids():
    act = parse_action(answer("p", ["IMG_007"]), ["IMG_002", "IMG_001"])
    assert "IMG_001, IMG_002" in act.error
    act = parse_action(answer("p", ["IMG_001"]), [])
    assert "run image_search first" in act.error


def test_formatters_round_trip():
    text = format_tool_call("search", {"queries": ["Ñandú", "x"], "top_k": 2}, think="t")
    act = parse_action(text)
    assert act.tool_call.arguments == {"queries": ["Ñandú", "x"], "top_k": 2} and act.think == "t"
    ans = Answer('A poster with "HELLO"', (ReferenceImage("IMG_001", "flag"),))
    act = parse_action(format_answer(ans), ["IMG_001"])
    assert act.answer == ans


def test_img_id_number():
    assert img_id_number("IMG_012") == 12 and img_id_number("IMG_1000") == 1000
    assert img_id_number("nope") == 0
