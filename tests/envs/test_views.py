"""Context views: the compact view of real tool results keeps what decisions need."""

import pytest

from knowgen.envs.protocol import format_tool_call
from knowgen.envs.views import (
    apply_view,
    compact_observation,
    uses_browse,
    view_function,
)
from knowgen.errors import ConfigError


@pytest.fixture()
def observations(make_env):
    """Real search, image search and browse observations of one episode."""
    env = make_env(split="train", top_k=3)
    env.reset(options={"task_index": 0})
    search, *_ = env.step(format_tool_call("search", {"queries": ["capital Tirana"]}))
    images, *_ = env.step(format_tool_call("image_search", {"query": "Flag of Albania"}))
    page, *_ = env.step(format_tool_call(
        "browse", {"url": "https://encyclopedia.world.invalid/wiki/Albania", "query": "flag"}))
    return search, images, page


def test_compact_search_result_keeps_titles_and_snippets(observations):
    search = observations[0]
    compact = compact_observation(search)
    assert "http" not in compact and "---" not in compact and "Tool calls left" not in compact
    assert "Albania: Tirana serves as the capital city of Albania" in compact
    assert compact.count("\n") == 2  # three results, one line each
    assert len(compact) < 0.6 * len(search)


def test_compact_image_result_keeps_ids_and_titles_only(observations):
    compact = compact_observation(observations[1])
    assert compact.splitlines()[0] == "IMG_001: Flag of Albania"
    assert all(line.startswith("IMG_") for line in compact.splitlines())
    assert "local_path" not in compact and "url" not in compact


def test_compact_page_keeps_the_text(observations):
    compact = compact_observation(observations[2])
    assert compact.startswith("Title: Albania") and "URL:" not in compact
    assert "national flag of Albania uses the colours" in compact


def test_compact_view_keeps_the_first_three_results_of_each_query(make_env):
    """What the compact view shows does not depend on the environment's top_k."""
    shown = {}
    for top_k in (3, 5):
        env = make_env(split="train", top_k=top_k)
        env.reset(options={"task_index": 0})
        search, *_ = env.step(format_tool_call(
            "search", {"queries": ["capital Tirana", "Albania"]}))
        images, *_ = env.step(format_tool_call("image_search", {"query": "Flag of Albania"}))
        shown[top_k] = (compact_observation(search), compact_observation(images))
    assert shown[5] == shown[3]
    search, images = shown[5]
    assert len([x for x in search.splitlines() if x]) == 6 and len(images.splitlines()) == 3
    env = make_env(split="train", top_k=5)
    env.reset(options={"task_index": 0})
    images, *_ = env.step(format_tool_call("image_search", {"query": "Flag of Albania"}))
    assert len(compact_observation(images, max_results=None).splitlines()) == 5


def test_final_turn_notice_is_kept():
    obs = ("<tool_response>\nIMG_001: Flag of Peru\n  url: https://x/p.png\n</tool_response>\n\n"
           "This is the final turn: answer now.")
    assert compact_observation(obs) == "IMG_001: Flag of Peru\n\nThis is the final turn: answer now."


def test_view_function_full_is_identity_and_unknown_is_refused():
    assert view_function("full")("x\n  url: y") == "x\n  url: y"
    assert view_function(None)("z") == "z"
    with pytest.raises(ConfigError, match="full, compact"):
        view_function("tiny")


def test_apply_view_rewrites_tool_messages_and_system_only():
    record = {"messages": [
        {"role": "system", "content": "long prompt"},
        {"role": "user", "content": "Draw the flag of Peru.  url: kept"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"type": "function", "function": {"name": "browse", "arguments": "{}"}}]},
        {"role": "tool", "name": "browse", "content": "Title: Peru\nURL: https://p\n\nText."},
    ], "tools": "[...]", "task_id": "t"}
    out = apply_view(record, "compact", "Search, then answer.")
    assert out["messages"][0] == {"role": "system", "content": "Search, then answer."}
    assert out["messages"][1] == record["messages"][1]
    assert out["messages"][3]["content"] == "Title: Peru\n\nText."
    assert "tools" not in out and record["tools"] == "[...]"  # the input is not changed
    assert uses_browse(record) and not uses_browse({"messages": record["messages"][:2]})
    assert apply_view(record, "full") == record
