"""Observation formatting: search blocks, image ids, pages, truncation, prompt, rewards."""

import pytest

from knowgen.envs import observations as fmt
from knowgen.envs.prompt import (
    REQUEST_HEADER,
    build_first_observation,
    build_system_prompt,
    extract_request,
)
from knowgen.envs.rewards import combine, compute_reward, passes_reference_gate
from knowgen.envs.spaces import UnicodeText
from knowgen.types import ImageHit, Page, SearchHit


def _hit(n, url=None):
    return ImageHit(title=f"Flag of Land{n}", url=url or f"https://m.invalid/{n}.png",
                    page_url=f"https://e.invalid/wiki/Land{n}", local_path=f"/tmp/{n}.png")


def test_search_blocks_one_per_query():
    text = fmt.format_search_results([
        ("capital Lima", [SearchHit("Peru", "https://e.invalid/wiki/Peru", "Peru is a\ncountry."),
                          SearchHit("Lima", "https://e.invalid/wiki/Lima", "")]),
        ("zzz", []),
    ])
    lines = text.splitlines()
    assert lines[0] == "--- search result for [capital Lima] ---"
    assert lines[1] == "[Peru](https://e.invalid/wiki/Peru) Peru is a country."
    assert lines[2] == "[Lima](https://e.invalid/wiki/Lima)"
    assert lines[3] == "--- end of search result ---"
    assert lines[5:] == ["--- search result for [zzz] ---", "No results for 'zzz'.",
                         "--- end of search result ---"]


def test_image_pool_ids_are_three_digits_and_deduplicated_by_url():
    pool = fmt.ImagePool()
    ids = [pool.add(_hit(n)) for n in (1, 2, 1, 3)]
    assert ids == ["IMG_001", "IMG_002", "IMG_001", "IMG_003"]
    assert pool.ids() == ["IMG_001", "IMG_002", "IMG_003"] and len(pool) == 3
    assert pool.get("IMG_002").title == "Flag of Land2" and pool.get("IMG_009") is None
    assert "IMG_003" in pool and "IMG_004" not in pool
    same_file = ImageHit("x", "", "", "/tmp/a.png")
    assert pool.add(same_file) == pool.add(same_file) == "IMG_004"


def test_image_results_list_id_title_url_path_and_page():
    text = fmt.format_image_results("Flag of Land", [("IMG_001", _hit(1)), ("IMG_002", _hit(2))])
    assert "IMG_001: Flag of Land1" in text
    for field in ("url: https://m.invalid/1.png", "local_path: /tmp/1.png",
                  "page_url: https://e.invalid/wiki/Land1"):
        assert field in text
    assert text.index("IMG_001") < text.index("IMG_002")
    assert fmt.format_image_results("q", []) == "No images found for 'q'."


def test_page_and_wrapping_and_truncation():
    page = Page(url="https://e.invalid/wiki/Peru", title="Peru", text="Line.\n" * 500)
    body = fmt.format_page(page)
    assert body.startswith("Title: Peru\nURL: https://e.invalid/wiki/Peru\n\nLine.")
    wrapped = fmt.wrap_tool_response(body, 200)
    assert wrapped.startswith("<tool_response>\n") and wrapped.endswith("\n</tool_response>")
    inner = wrapped[len("<tool_response>\n"):-len("\n</tool_response>")]
    assert inner.endswith(fmt.TRUNCATION_MARK) and len(inner) <= 200 + len(fmt.TRUNCATION_MARK) + 1
    short = fmt.wrap_tool_response("short", 200)
    assert fmt.TRUNCATION_MARK not in short


def test_truncate_without_line_breaks():
    assert fmt.truncate("x" * 50, 10) == "x" * 10 + "\n[truncated]"
    assert fmt.truncate("abc", 10) == "abc"


def test_notices():
    assert "Tool calls left: 3" in fmt.budget_line(3, 5)
    notice = fmt.must_answer_notice("This is your final turn.")
    assert "no longer allowed" in notice and "<answer>" in notice
    assert len(fmt.format_invalid_action("e" * 5000)) < 1200


def test_system_prompt_states_tools_format_and_budgets():
    prompt = build_system_prompt(max_turns=7, max_tool_calls=4, top_k=3)
    for needle in ("search(queries: list[str], top_k: int = 3)", "image_search(query: str",
                   "browse(url: str, query: str)", "<tool_call>", "<answer>", "gen_prompt",
                   "reference_images", "the first reference image", "At most 4 tool calls",
                   "7 turns", "<think>", "<tool_response>"):
        assert needle in prompt, needle
    obs = build_first_observation(prompt, "  Draw the flag of France. ")
    assert REQUEST_HEADER in obs and extract_request(obs) == "Draw the flag of France."
    assert extract_request("no header here") == "no header here"


def test_rewards_and_gate():
    assert combine(0.8, 0.5, 0.5) == pytest.approx(0.65)
    assert combine(0.8, 0.5, 0.0) == pytest.approx(0.8)
    with pytest.raises(ValueError):
        combine(1, 1, 1.5)
    assert [passes_reference_gate(n) for n in range(6)] == [False, True, True, True, True, False]
    terms = compute_reward(0.9, 1.0, 0.5, n_references=0)
    assert terms.gated and terms.reward == 0.0 and terms.image == 0.9
    assert compute_reward(0.9, 1.0, 0.5, 0, reference_gate=False).reward == pytest.approx(0.95)
    assert set(terms.to_dict()) == {"image", "text", "alpha", "gated", "reward"}


def test_unicode_text_space():
    space = UnicodeText(20)
    assert space.contains("Côte d'Ivoire <x>") and space.contains("")
    assert not space.contains("x" * 21) and not space.contains(3)
    assert space.contains(space.sample())
    assert space == UnicodeText(20) and space != UnicodeText(21)
