"""Robustness: whatever a policy sends, step never raises, observations and memory stay bounded."""

import itertools
import json
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from knowgen.envs.protocol import TOOL_NAMES, format_tool_call

OVERHEAD = 2000
"""Characters an observation may hold beyond max_observation_chars (errors, notices)."""

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=16)
tool_names = st.sampled_from((*TOOL_NAMES, "paint", "", "answer", "SEARCH")) | json_values
dict_actions = st.fixed_dictionaries(
    {"tool": tool_names, "arguments": json_values},
    optional={"think": json_values, "junk": json_values})
answer_actions = st.fixed_dictionaries({"answer": json_values | st.fixed_dictionaries(
    {"gen_prompt": json_values, "reference_images": json_values})})
typed_args = st.sampled_from(TOOL_NAMES).flatmap(lambda name: st.fixed_dictionaries({
    "tool": st.just(name),
    "arguments": st.dictionaries(st.sampled_from(["queries", "query", "url", "top_k", "x"]),
                                 json_values, max_size=3)}))
openai_actions = st.builds(
    lambda name, args, as_text, content, many: {
        "role": "assistant", "content": content,
        "tool_calls": [{"id": "c", "type": "function",
                        "function": {"name": name,
                                     "arguments": json.dumps(args) if as_text else args}}] * many},
    tool_names, json_values, st.booleans(), st.none() | st.text(max_size=40),
    st.integers(0, 2))
text_actions = (
    st.text(max_size=300)
    | st.builds(lambda v: f"<tool_call>{json.dumps(v)}</tool_call>", json_values)
    | st.builds(lambda v: f"<answer>{json.dumps(v)}</answer>", json_values)
    | st.builds(lambda n, v: format_tool_call(n, v) if isinstance(v, dict) else str(v),
                st.sampled_from(TOOL_NAMES), json_values))
any_action = (text_actions | dict_actions | answer_actions | typed_args | openai_actions
              | json_values)


@pytest.fixture(scope="module")
def fuzz_env(make_env):
    return make_env(max_turns=4, max_observation_chars=1500)


@pytest.fixture(scope="module")
def fuzz_env_dict(make_env):
    return make_env(max_turns=4, max_observation_chars=1500, observation_mode="dict",
                    observation_image_size=32)


def _check_step(env, action):
    obs, reward, term, trunc, info = env.step(action)
    assert env.observation_space.contains(obs)
    text = obs["text"] if isinstance(obs, dict) else obs
    assert isinstance(text, str) and len(text) <= env.config.max_observation_chars + OVERHEAD
    assert isinstance(reward, float) and 0.0 <= reward <= 1.0
    assert info["last_action"]["kind"] in {"tool", "answer", "invalid"}
    return term or trunc


@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(actions=st.lists(any_action, min_size=1, max_size=6))
def test_step_never_raises_on_random_actions(fuzz_env, actions):
    env = fuzz_env
    env.reset(seed=0)
    for action in actions:
        if _check_step(env, action):
            env.reset(seed=1)
    for fmt in ("hf", "openai"):
        messages = env.messages(fmt=fmt)
        assert messages[1]["role"] == "user" and len(messages) <= 2 + 2 * len(env.turns)


@settings(max_examples=40, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(actions=st.lists(any_action | st.just(format_tool_call("image_search", {"query": "flag"})),
                        min_size=1, max_size=5))
def test_dict_observations_stay_in_their_space(fuzz_env_dict, actions):
    env = fuzz_env_dict
    env.reset(seed=0)
    for action in actions:
        if _check_step(env, action):
            env.reset(seed=1)
    env.messages(images=True)


def _nested_dict(depth):
    root: dict = {}
    node = root
    for _ in range(depth):
        node["a"] = {}
        node = node["a"]
    return root


@pytest.mark.slow
def test_huge_and_deep_actions_keep_memory_bounded(make_env):
    five_mb = 5 * 1024 * 1024
    hostile = [  # built afresh for every step, as a policy would send them
        lambda: "<tool_call>" + "x" * five_mb,
        lambda: "<tool_call>" + "[" * 10000 + "]" * 10000 + "</tool_call>",
        lambda: "<answer>" + '{"a": ' * 10000 + "1" + "}" * 10000 + "</answer>",
        lambda: {"tool": "search", "arguments": _nested_dict(10000)},
        lambda: {"tool": "search", "arguments": {"queries": ["y" * five_mb]}},
        lambda: {"tool_calls": [{"type": "function", "function": {
            "name": "browse", "arguments": "{" * five_mb}}]},
        lambda: {"tool": "paint", "arguments": {"colour": "red"}},
        lambda: {"tool": "image_search", "arguments": {"query": ["a", "b"], "top_k": "5"}},
        lambda: {"junk": [1, 2, {"more": None}], "answer": 3},
        lambda: [None, 1, "x"],
        lambda: None,
        lambda: format_tool_call("search", {"queries": ["capital " + "z" * 3000]}),
        lambda: format_tool_call("image_search", {"query": "Flag of Peru"}),
    ]
    env = make_env(max_turns=5, max_observation_chars=1500)
    env.reset(seed=0)
    for make in hostile:  # warm every code path (index loads, caches) before measuring
        if _check_step(env, make()):
            env.reset(seed=0)
    env.reset(seed=0)
    tracemalloc.start()
    try:
        for make in itertools.islice(itertools.cycle(hostile), 200):
            if _check_step(env, make()):
                env.reset(seed=0)
            env.messages(fmt="openai")
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # one 5 MB action in flight at a time, plus bounded copies: far below 200 x 5 MB
    assert peak < 16 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB"
    assert len(env.turns) <= env.config.max_turns
    kept = sum(len(a) if isinstance(a, str) else 0 for a, _ in env.turns)
    assert kept <= env.config.max_turns * (env.config.max_action_chars + 20)
