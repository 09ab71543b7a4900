"""Hostile actions: unencodable text, super-linear patterns, objects whose methods raise.

Each test here failed before actions were normalised once on entry and parsed
in linear time. The fuzz tests at the end draw from these classes with
hypothesis; the 10,000-action probe and its timings are ``perf/fuzz_probe.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hostile import EvilStr, Hostile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from knowgen.envs.actions import parse_any_action
from knowgen.envs.normalize import clean_text, normalize_action
from knowgen.envs.protocol import parse_action

SURROGATE_ANSWERS = {
    # plain ASCII text: the JSON escape decodes to a lone surrogate
    "text": '<answer>{"gen_prompt": "a flag \\ud800 of Peru", "reference_images": []}</answer>',
    "dict": {"answer": {"gen_prompt": "a flag \ud800 of Peru", "reference_images": []}},
    "openai": {"role": "assistant", "content": None, "tool_calls": [{
        "id": "c1", "type": "function", "function": {
            "name": "answer",
            "arguments": '{"gen_prompt": "a flag \\udfff of Peru", "reference_images": []}'}}]},
}


@pytest.mark.parametrize("fmt", sorted(SURROGATE_ANSWERS))
def test_lone_surrogate_in_gen_prompt_is_drawn_and_judged(make_env, fmt, tmp_path):
    env = make_env(max_turns=3)
    env.image_dir = str(tmp_path)
    env.reset(seed=0)
    _obs, reward, terminated, _, info = env.step(SURROGATE_ANSWERS[fmt])
    assert terminated and info["last_action"]["kind"] == "answer"
    assert "\ufffd" in info["answer"]["gen_prompt"]
    assert info["generated_image"] and 0.0 <= reward <= 1.0
    # everything the episode kept can be written as UTF-8 (a sample log, a transcript)
    json.dumps([env.turns, env.transcript, info], ensure_ascii=False).encode("utf-8")
    env.render_mode = "ansi"
    env.render().encode("utf-8")


def test_surrogates_in_tool_arguments_and_think_are_replaced(make_env):
    env = make_env()
    env.reset(seed=0)
    _, _, _, _, info = env.step('<think>\\ud800 \ud800</think><tool_call>{"name": "search", '
                                '"arguments": {"queries": ["Peru \\udc00 capital"]}}</tool_call>')
    assert info["last_action"]["kind"] == "tool"
    for message in env.messages(fmt="openai"):
        json.dumps(message, ensure_ascii=False).encode("utf-8")


STALL_SCRIPT = """
import sys, time
from knowgen.envs.protocol import parse_action
n = 65536
cases = ["<tool_call>```" + " " * (n - 15) + "x", "<tool_call>" * (n // 11),
         "<think>" * (n // 7), "<answer>```json" + "\\n" * (n - 20) + "{}"]
for text in cases:
    parse_action(text)
print("done")
"""


def test_adversarial_turns_of_the_largest_size_do_not_stall():
    """Each pattern took minutes to hours at 65,536 characters before; now milliseconds.

    Run in a child process so a regression fails by its time limit instead of
    hanging the suite; speed itself is measured in perf/fuzz_probe.py.
    """
    proc = subprocess.run([sys.executable, "-c", STALL_SCRIPT], capture_output=True, text=True, check=False,
                          timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "done", proc.stderr


@pytest.mark.parametrize(("text", "kind"), [
    ('<tool_call>```json\n{"name": "search", "arguments": {"queries": ["a"]}}\n```</tool_call>',
     "tool"),
    ('<tool_call>```{"name": "search", "arguments": {"queries": ["a"]}}```</tool_call>', "tool"),
    ("<tool_call>``````</tool_call>", "invalid"),
    ("<tool_call>```" + " " * 50 + "x</tool_call>", "invalid"),
    ("<think>a</think><think>b</think>" + '<answer>{"gen_prompt": "p"}</answer>', "answer"),
    ("<tool_call>x</tool_call><tool_call>", "invalid"),
])
def test_linear_parser_keeps_the_protocol(text, kind):
    assert parse_action(text).kind == kind


@pytest.mark.parametrize("action", [
    Hostile(),
    {"tool": "search", "arguments": {"queries": [Hostile()]}},
    {"tool": "search", "arguments": {"queries": [EvilStr("Peru")]}},
    {"answer": {"gen_prompt": Hostile(), "reference_images": []}},
    {Hostile(): "x"},
    [Hostile()],
    {"role": "assistant", "content": [Hostile()], "tool_calls": [Hostile()]},
    EvilStr("<answer>{}</answer>"),
], ids=lambda _: "hostile")
def test_actions_whose_methods_raise_are_invalid_turns(make_env, action):
    env = make_env(max_turns=4)
    env.reset(seed=0)
    obs, _, _, _, info = env.step(action)
    assert info["last_action"]["kind"] in ("invalid", "tool")
    assert isinstance(obs, str)
    env.messages(fmt="hf")
    env.render_mode = "ansi"
    assert isinstance(env.render(), str)


def test_normalize_action_copies_into_plain_values():
    value, problem = normalize_action({"a": [EvilStr("x\ud800"), (1, 2.5, None)]}, 100)
    assert problem == "" and value == {"a": ["x\ufffd", (1, 2.5, None)]}
    assert type(value["a"][0]) is str
    assert normalize_action([[[[1]]]], 100, max_depth=2)[1].startswith("nested")
    assert "characters" in normalize_action(["x" * 200], 100)[1]
    assert clean_text("plain") == "plain" and clean_text("\udfff") == "\ufffd"


# --- fuzz: the classes above, mixed with ordinary JSON values ----------------------------

surrogates = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
wild_text = st.text(st.characters(codec=None) | surrogates, max_size=30)
HOSTILE_MAKERS = [Hostile, lambda: EvilStr("x"), lambda: b"bytes", object,
                  lambda: float("nan"), lambda: 2**80]



class Slot(int):
    """Where a hostile object goes (hypothesis prints examples, so it holds none itself)."""


hostile = st.integers(0, len(HOSTILE_MAKERS) - 1).map(Slot)


def arm(value):
    """``value`` with every :class:`Slot` replaced by its hostile object."""
    if isinstance(value, Slot):
        return HOSTILE_MAKERS[int(value)]()
    if isinstance(value, list):
        return [arm(v) for v in value]
    if isinstance(value, dict):
        return {arm(k): arm(v) for k, v in value.items()}
    return value
values = st.recursive(st.none() | st.booleans() | st.integers() | wild_text | hostile,
                      lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(wild_text | hostile, inner, max_size=3), max_leaves=10)
tag_soup = st.lists(st.sampled_from(["<tool_call>", "</tool_call>", "<answer>", "</answer>",
                                     "<think>", "</think>", "```", "```json", " ", "\n", "{",
                                     '"gen_prompt"', ":", "\\ud800", "\ud800"]) | wild_text,
                    max_size=40).map("".join)
actions = (values | tag_soup
           | st.builds(lambda v: {"tool": "search", "arguments": {"queries": v}}, values)
           | st.builds(lambda v: {"answer": {"gen_prompt": v, "reference_images": []}}, values))


@settings(max_examples=150, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(batch=st.lists(actions, min_size=1, max_size=4))
def test_fuzz_hostile_actions_never_escape_step(make_env, batch):
    env = make_env(max_turns=3)
    env.reset(seed=0)
    for action in batch:
        _, reward, term, trunc, _info = env.step(arm(action))
        assert 0.0 <= reward <= 1.0
        if term or trunc:
            env.reset(seed=1)
    json.dumps([env.turns, env.transcript], ensure_ascii=False, default=repr).encode("utf-8")


@settings(max_examples=300, deadline=None, database=None)
@given(action=actions)
def test_fuzz_parsed_strings_are_always_encodable(action):
    parsed = parse_any_action(arm(action))
    texts = [parsed.error, parsed.think]
    if parsed.answer is not None:
        texts += [parsed.answer.gen_prompt, *(r.note for r in parsed.answer.reference_images)]
    if parsed.tool_call is not None:
        texts.append(json.dumps(parsed.tool_call.arguments, ensure_ascii=False))
    for text in texts:
        text.encode("utf-8")
