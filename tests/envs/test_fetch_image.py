"""The fetch_image tool of SearchGenEnv on the real offline world."""

from pathlib import Path

import pytest
from gymnasium.utils.env_checker import check_env
from PIL import Image

from knowgen.envs.protocol import format_answer, format_tool_call
from knowgen.reference_policies.common import parse_images
from knowgen.types import Answer, ReferenceImage
from knowgen.world.data import load_world


def _fetch(url):
    return format_tool_call("fetch_image", {"url": url})


@pytest.fixture(scope="module")
def world():
    return load_world()


def test_known_url_keeps_its_id(make_env):
    env = make_env()
    env.reset(seed=0)
    obs, *_, info = env.step(format_tool_call("image_search", {"query": "Flag of Peru"}))
    shown = parse_images(obs)
    assert shown
    target = shown[-1]
    obs, reward, terminated, truncated, info = env.step(_fetch(f"  {target.url} "))
    fetched = parse_images(obs)
    assert [(i.img_id, i.url, i.local_path) for i in fetched] == [
        (target.img_id, target.url, target.local_path)]
    assert "--- fetched image [" in obs and "<tool_response>" in obs
    assert info["last_action"] == {"kind": "tool", "tool": "fetch_image", "ok": True, "error": ""}
    assert info["tool_calls_used"] == 2 and reward == 0.0 and not (terminated or truncated)
    assert info["image_ids"] == [i.img_id for i in shown]  # nothing new was added
    assert info["observation_images"] == [target.local_path]
    with Image.open(info["observation_images"][0]) as img:
        assert img.size[0] > 0


def test_new_world_url_gets_fresh_id_usable_in_answer(make_env, world):
    env = make_env()
    env.reset(options={"task_index": 0})
    obs, *_, info = env.step(format_tool_call("image_search", {"query": "capital city"}))
    before = info["image_ids"]
    entity = env.task.facts.entities[0]
    image = world.images[entity.image_id]
    shown_urls = {i.url for i in parse_images(obs)}
    if image.url in shown_urls:  # make sure the fetched URL is new to this episode
        env.reset(options={"task_index": 0})
        before = []
    obs, *_, info = env.step(_fetch(image.url))
    (fetched,) = parse_images(obs)
    expected_id = f"IMG_{len(before) + 1:03d}"
    assert fetched.img_id == expected_id and fetched.img_id not in before
    assert fetched.url == image.url and fetched.title == image.title
    assert Path(fetched.local_path).name == image.file and Path(fetched.local_path).is_file()
    assert info["image_ids"] == before + [expected_id]
    assert info["observation_images"] == [fetched.local_path]

    texts = " ".join(f'"{t}"' for t in env.task.facts.required_text)
    answer = Answer(f"A poster of the first reference image with {texts}",
                    (ReferenceImage(expected_id, "fetched official picture"),))
    obs, reward, terminated, truncated, info = env.step(format_answer(answer))
    assert terminated and not truncated
    (ref,) = info["references"]
    assert ref["img_id"] == expected_id and ref["image_id"] == image.id
    assert ref["url"] == image.url and ref["local_path"] == fetched.local_path
    assert info["image_judgement"] is not None and info["text_judgement"] is not None
    assert not info["reward_terms"]["gated"]
    assert reward == pytest.approx(info["reward_terms"]["reward"]) and reward > 0


@pytest.mark.parametrize("url", [
    "https://example.com/flag.png",
    "https://media.world.invalid/no-such-file.png",
    "https://encyclopedia.world.invalid/wiki/France",
])
def test_unresolvable_url_gives_error_observation(make_env, url):
    env = make_env()
    env.reset(seed=1)
    obs, _reward, terminated, truncated, info = env.step(_fetch(url))
    assert "Error from fetch_image:" in obs and "<tool_response>" in obs
    assert info["last_action"]["kind"] == "tool" and info["last_action"]["ok"] is False
    assert info["last_action"]["error"] and info["tool_calls_used"] == 1
    assert info["image_ids"] == [] and info["observation_images"] == []
    assert not (terminated or truncated)


@pytest.mark.parametrize("arguments, needle", [
    ({}, "Missing argument"),
    ({"url": ""}, "must not be empty"),
    ({"url": "   "}, "must not be empty"),
    ({"url": 42}, "must be a string"),
    ({"url": ["https://media.world.invalid/flag-fr.png"]}, "must be a string"),
    ({"url": "https://media.world.invalid/flag-fr.png", "top_k": 2}, "Unknown argument"),
])
def test_malformed_arguments_give_invalid_action(make_env, arguments, needle):
    env = make_env()
    env.reset(seed=2)
    obs, *_, info = env.step(format_tool_call("fetch_image", arguments))
    assert obs.startswith("Your last turn could not be carried out:")
    assert needle in obs and "fetch_image takes" in obs  # the hint says how to fix it
    assert info["last_action"]["kind"] == "invalid" and info["tool_calls_used"] == 0


def test_prompt_lists_the_tool_and_check_env_passes(make_env):
    env = make_env()
    obs, _ = env.reset(seed=0)
    assert "fetch_image(url: str)" in obs
    check_env(env, skip_render_check=True)
