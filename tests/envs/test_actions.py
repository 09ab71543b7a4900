"""The three action formats (text, dict, OpenAI) parse to the same actions and observations."""

import json

import pytest

from knowgen.envs.actions import (
    ACTION_FORMATS,
    action_to_text,
    detect_action_format,
    exceeds_limits,
    parse_any_action,
    parse_dict_action,
    register_action_format,
    unregister_action_format,
)
from knowgen.envs.protocol import format_answer, format_tool_call, parse_action
from knowgen.errors import ConfigError, UnknownNameError
from knowgen.types import Answer, ReferenceImage

ARGS = {"queries": ["capital Lima"], "top_k": 3}


def _openai(name, arguments, content=None, as_string=True):
    args = json.dumps(arguments) if as_string else arguments
    return {"role": "assistant", "content": content,
            "tool_calls": [{"id": "call_9", "type": "function",
                            "function": {"name": name, "arguments": args}}]}


@pytest.mark.parametrize("action", [
    format_tool_call("search", ARGS, think="look it up"),
    {"tool": "search", "arguments": ARGS, "think": "look it up"},
    {"name": "search", "arguments": ARGS, "think": "look it up"},
    _openai("search", ARGS, content="<think>look it up</think>"),
    _openai("search", ARGS, as_string=False, content="<think>look it up</think>"),
    _openai("search", ARGS, content="<think>look it up</think>")["tool_calls"],
    _openai("search", ARGS, content="<think>look it up</think>")["tool_calls"][0],
    {**_openai("search", ARGS), "reasoning_content": "look it up"},
])
def test_every_format_gives_the_same_tool_call(action):
    reference = parse_action(format_tool_call("search", ARGS, think="look it up"))
    parsed = parse_any_action(action)
    assert parsed.kind == "tool" and parsed.tool_call == reference.tool_call
    if not isinstance(action, list) and "function" not in action:
        assert parsed.think == "look it up"


def test_every_format_gives_the_same_answer():
    answer = Answer("the first reference image", (ReferenceImage("IMG_002", "flag"),))
    known = ["IMG_001", "IMG_002"]
    expected = parse_action(format_answer(answer), known).answer
    for action in (
        format_answer(answer),
        {"answer": answer.to_dict()},
        {"answer": json.dumps(answer.to_dict())},
        {"role": "assistant", "content": format_answer(answer)},
        {"role": "assistant", "content": [{"type": "text", "text": format_answer(answer)}]},
        _openai("answer", answer.to_dict()),
    ):
        parsed = parse_any_action(action, known)
        assert parsed.kind == "answer" and parsed.answer == expected, action
    unknown = parse_any_action({"answer": answer.to_dict()}, ["IMG_001"])
    assert unknown.kind == "invalid" and "IMG_002 is not an image id" in unknown.error


@pytest.mark.parametrize(("action", "message"), [
    (None, "Unsupported action of type NoneType"),
    (42, "Unsupported action of type int"),
    (3.5, "Unsupported action"),
    ([1, 2, 3], "Unsupported action of type list"),
    ([], "Unsupported action"),
    ({}, "none of the keys"),
    ({"junk": 1, "more": [1]}, "none of the keys"),
    ({"tool": "paint", "arguments": {}}, "Unknown tool 'paint'"),
    ({"tool": "search", "arguments": {"queries": 5}}, "queries must be a non-empty list"),
    ({"tool": "search", "arguments": {"queries": ["a"]}, "extra": 1}, "Unexpected key"),
    ({"tool": "search", "arguments": ["a"]}, '"arguments" must be a JSON object'),
    ({"tool": "search", "answer": {}}, "not both"),
    ({"answer": "not json"}, '"answer" must be an object'),
    ({"answer": {"gen_prompt": 7}}, "gen_prompt"),
    ({"think": 3, "tool": "search"}, '"think" must be a string'),
    ({"role": "user", "content": "hi"}, 'role must be "assistant"'),
    ({"role": "assistant", "content": None}, "neither a tool call nor any content"),
    ({"role": "assistant", "content": 5}, '"content" must be a string'),
    ({"tool_calls": "search"}, '"tool_calls" must be a list'),
    ({"tool_calls": [_openai("search", ARGS)["tool_calls"][0]] * 2}, "2 tool calls"),
    (_openai("search", ARGS, content="<answer>{}</answer>"), "give only one"),
    (_openai("search", "{not json", as_string=False), "not valid JSON"),
    ({"tool_calls": [{"type": "function", "function": "search"}]}, "A tool call must be"),
    ("x" * 70000, "too large to read (70000 characters"),
    ({"tool": "search", "arguments": {"queries": ["q" * 70000]}}, "too large to read"),
    ('<tool_call>' + "[" * 10000 + "]" * 10000 + "</tool_call>", "nested too deeply"),
])
def test_malformed_actions_are_invalid_not_exceptions(action, message):
    parsed = parse_any_action(action)
    assert parsed.kind == "invalid"
    assert message in parsed.error


def test_deeply_nested_structures_are_refused_without_recursion():
    nested: dict = {}
    node = nested
    for _ in range(10000):
        node["a"] = {}
        node = node["a"]
    assert "nested more than" in exceeds_limits(nested, 10**9)
    parsed = parse_any_action({"tool": "search", "arguments": nested})
    assert parsed.kind == "invalid" and "too large to read" in parsed.error
    assert action_to_text(nested) == "[a dict action too large to show]"
    loop: dict = {}
    loop["self"] = loop
    assert parse_any_action(loop).kind == "invalid"


def test_detection_and_fixed_formats():
    assert detect_action_format("x") == "text"
    assert detect_action_format({"tool": "search"}) == "dict"
    assert detect_action_format({"tool_calls": []}) == "openai"
    assert detect_action_format([{"function": {}}]) == "openai"
    assert detect_action_format(7) is None
    text_only = parse_any_action({"tool": "search", "arguments": ARGS}, fmt="text")
    assert text_only.kind == "invalid" and "must be text" in text_only.error
    assert parse_any_action(format_tool_call("search", ARGS), fmt="dict").kind == "invalid"
    with pytest.raises(UnknownNameError, match="Available: auto, dict, openai, text"):
        parse_any_action("x", fmt="xml")


def test_a_registered_format_is_detected_and_may_fail_safely():
    def parse_pair(action, known):
        name, query = action
        return parse_dict_action({"tool": name, "arguments": {"query": query}}, known)

    register_action_format("pair", parse_pair, detect=lambda a: isinstance(a, tuple))
    try:
        parsed = parse_any_action(("image_search", "Flag of Peru"))
        assert parsed.kind == "tool" and parsed.tool_call.arguments == {"query": "Flag of Peru"}
        broken = parse_any_action(("only one",))  # the parser raises: an invalid action
        assert broken.kind == "invalid" and "could not be read (ValueError)" in broken.error
    finally:
        unregister_action_format("pair")
    assert "pair" not in ACTION_FORMATS
    assert detect_action_format(("a", "b")) is None


@pytest.mark.slow  # the first answer of a session renders the world's ground truths
def test_env_gives_identical_observations_for_every_format(make_env):
    actions = [
        format_tool_call("image_search", {"query": "Flag of Peru"}),
        {"tool": "image_search", "arguments": {"query": "Flag of Peru"}},
        _openai("image_search", {"query": "Flag of Peru"}),
    ]
    results = []
    for action in actions:
        env = make_env()
        env.reset(seed=5)
        obs, reward, term, trunc, info = env.step(action)
        results.append((obs, reward, term, trunc, info))
    assert results[0] == results[1] == results[2]
    assert results[0][4]["last_action"] == {"kind": "tool", "tool": "image_search", "ok": True,
                                            "error": ""}
    env = make_env()
    env.reset(seed=5)
    env.step(actions[2])
    obs, reward, term, _trunc, info = env.step(
        {"answer": {"gen_prompt": "the first reference image", "reference_images": ["IMG_001"]}})
    assert term and info["answer"]["reference_images"][0]["img_id"] == "IMG_001"


def test_env_action_format_setting(make_env):
    env = make_env(action_format="text")
    env.reset(seed=0)
    obs, *_, info = env.step({"tool": "search", "arguments": ARGS})
    assert info["last_action"]["kind"] == "invalid" and "must be text" in obs
    with pytest.raises(ConfigError, match="action_format"):
        make_env(action_format="yaml")


def test_env_refuses_oversized_actions_and_keeps_a_bounded_copy(make_env):
    env = make_env(max_action_chars=1000)
    env.reset(seed=0)
    action = "<think>" + "x" * 5000 + "</think>"
    obs, *_ = env.step(action)
    assert f"too large to read ({len(action)} characters; the limit is 1000" in obs
    kept, _ = env.turns[-1]
    assert len(kept) < 1100 and kept.endswith("[truncated]")
    env.step({"tool": "search", "arguments": {"queries": ["y" * 5000]}})
    assert env.turns[-1][0] == "[a dict action too large to show]"
