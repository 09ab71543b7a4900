"""SearchGenEnv on the real offline world: API checks, budgets, answers, rewards, fuzzing."""

import json

import gymnasium as gym
import pytest
from gymnasium.error import ResetNeeded
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from knowgen.envs import ENV_ID
from knowgen.envs.protocol import format_answer, format_tool_call
from knowgen.envs.rewards import combine
from knowgen.errors import ConfigError, UnknownNameError
from knowgen.reference_policies.common import parse_images
from knowgen.types import Answer, ReferenceImage
from knowgen.world.data import load_world


def _search(q):
    return format_tool_call("search", {"queries": [q]})


def _official_refs(env, obs_list=None):
    """Image-search every required entity's official title; return the matching ids in order."""
    world = load_world()
    ids = []
    for entity in env.task.facts.entities:
        title = world.images[entity.image_id].title
        obs, *_ = env.step(format_tool_call("image_search", {"query": title}))
        ids += [i.img_id for i in parse_images(obs) if i.title == title][:1]
    return ids


def _good_answer(env, ids):
    texts = " ".join(f'"{t}"' for t in env.task.facts.required_text)
    refs = tuple(ReferenceImage(i, "official") for i in ids)
    return format_answer(Answer(f"A poster of the first reference image with {texts}", refs))


def test_check_env_passes(make_env):
    env = make_env()
    check_env(env, skip_render_check=True)


@pytest.mark.slow
def test_gym_make_builds_backends_from_specs(tmp_path):
    env = gym.make(ENV_ID, benchmark=f"world:cache_dir={tmp_path}", max_turns=6,
                   render_mode="ansi")
    check_env(env.unwrapped)
    obs, info = env.reset(seed=3)
    assert info["max_turns"] == 6 and "## Image request" in obs
    env.step(_search("capital"))
    assert "<tool_response>" in env.render()
    env.close()


def test_reset_is_deterministic_and_selects_tasks(make_env):
    env = make_env()
    obs1, info1 = env.reset(seed=123)
    obs2, info2 = env.reset(seed=123)
    assert obs1 == obs2 and info1 == info2
    assert env.task.prompt in obs1 and "<tool_call>" in obs1
    ids = {env.reset(seed=s)[1]["task_id"] for s in range(12)}
    assert len(ids) > 1  # different seeds draw different tasks
    target = env.tasks[3]
    assert env.reset(options={"task_id": target.id})[1]["task_id"] == target.id
    assert env.reset(options={"task_index": 3})[1]["task_id"] == target.id
    with pytest.raises(UnknownNameError):
        env.reset(options={"task_id": "no-such-task"})
    with pytest.raises(ConfigError):
        env.reset(options={"task_index": len(env.tasks)})


def test_unknown_setting_is_refused(make_env):
    with pytest.raises(ConfigError, match="max_turn"):
        make_env(max_turn=3)
    with pytest.raises(ConfigError):
        make_env(alpha=2.0)


def test_info_keys_and_tool_observations(make_env):
    env = make_env()
    obs, info = env.reset(options={"task_index": 0})
    assert info["last_action"]["kind"] is None and info["turn"] == 0
    assert info["tool_calls_left"] == 8 and info["turns_left"] == 10
    obs, reward, term, trunc, info = env.step(
        format_tool_call("search", {"queries": ["capital Lima", "official colour"]}))
    assert (reward, term, trunc) == (0.0, False, False)
    assert obs.startswith("<tool_response>") and obs.count("--- search result for [") == 2
    assert info["last_action"] == {"kind": "tool", "tool": "search", "ok": True, "error": ""}
    assert info["tool_calls_used"] == 1 and info["turn"] == 1
    obs, *_, info = env.step(format_tool_call("image_search", {"query": "Flag of Peru"}))
    first = parse_images(obs)
    assert 1 <= len(first) <= 5 and first[0].img_id == "IMG_001"
    assert info["image_ids"] == [i.img_id for i in first]
    assert info["observation_images"] == [i.local_path for i in first]
    obs, *_, info = env.step(format_tool_call("image_search", {"query": "Flag of Peru", "top_k": 2}))
    again = parse_images(obs)
    assert [i.img_id for i in again] == [i.img_id for i in first[:2]]  # same url keeps its id
    url = next(h for h in first if h.title == "Flag of Peru").page_url
    obs, *_, info = env.step(format_tool_call("browse", {"url": url, "query": "capital"}))
    assert "Title: Peru" in obs and "Lima" in obs
    obs, *_, info = env.step(format_tool_call("browse", {"url": "https://example.com/x", "query": ""}))
    assert "Error from browse" in obs
    assert info["last_action"]["ok"] is False and info["last_action"]["error"]


def test_malformed_action_is_an_observation(make_env):
    env = make_env()
    env.reset(seed=0)
    obs, reward, term, trunc, info = env.step("<tool_call>{oops}</tool_call>")
    assert "not valid JSON" in obs and reward == 0.0 and not (term or trunc)
    assert info["turn"] == 1 and info["tool_calls_used"] == 0
    assert info["last_action"]["kind"] == "invalid"
    obs, *_ = env.step('<answer>{"gen_prompt": "x", "reference_images": ["IMG_001"]}</answer>')
    assert "IMG_001 is not an image id shown" in obs


def test_long_responses_are_truncated(make_env):
    env = make_env(max_observation_chars=300)
    env.reset(seed=0)
    obs, *_ = env.step(format_tool_call("search", {"queries": ["capital", "currency", "flag"]}))
    assert "[truncated]" in obs and len(obs.split("</tool_response>")[0]) < 400


def test_tool_budget_and_forced_final_turn(make_env):
    env = make_env(max_tool_calls=2, max_turns=4)
    env.reset(seed=1)
    obs, *_ = env.step(_search("capital"))
    assert "no longer allowed" not in obs
    obs, *_, info = env.step(_search("currency"))
    assert info["tool_calls_left"] == 0 and "Tools are no longer allowed" in obs
    obs, reward, term, trunc, info = env.step(_search("flag"))
    assert "used all your tool calls" in obs and not (term or trunc)
    assert info["tool_calls_used"] == 2 and "final turn" in obs
    obs, reward, term, trunc, info = env.step(_search("again"))
    assert trunc and not term and reward == 0.0
    assert info["reward_terms"]["image"] == 0.0 and info["answer"] is None
    assert info["image_judgement"] is None and info["references"] == []
    with pytest.raises(ResetNeeded):
        env.step(_search("after the end"))


def test_final_turn_notice_without_tool_exhaustion(make_env):
    env = make_env(max_turns=3)
    env.reset(seed=2)
    obs, *_ = env.step("hello")
    assert "final turn" not in obs
    obs, *_ = env.step("hello")
    assert "This is your final turn" in obs
    _, reward, _term, trunc, info = env.step("still no answer")
    assert trunc and reward == 0.0 and info["last_action"]["kind"] == "invalid"


def test_answer_is_generated_judged_and_saved(make_env, tmp_path):
    env = make_env(image_dir=str(tmp_path))
    env.reset(options={"task_index": 0})
    ids = _official_refs(env)
    assert len(ids) == len(env.task.facts.entities)
    _obs, reward, term, trunc, info = env.step(_good_answer(env, ids))
    assert term and not trunc
    terms = info["reward_terms"]
    assert reward == pytest.approx(combine(terms["image"], terms["text"], 0.5))
    assert terms["image"] == info["image_judgement"]["overall"]
    assert terms["text"] == info["text_judgement"]["score"]
    assert reward >= 0.9 and not terms["gated"]
    saved = tmp_path / f"{env.task.id}.png"
    assert info["generated_image"] == str(saved) and saved.is_file()
    assert isinstance(env.last_image, Image.Image)
    assert [r["img_id"] for r in info["references"]] == ids
    assert info["references"][0]["image_id"] == env.task.facts.entities[0].image_id
    json.dumps(info)  # info is plain data


def test_reference_gate(make_env):
    scores = {}
    for gate in (True, False):
        env = make_env(reference_gate=gate)
        env.reset(options={"task_index": 0})
        ids = _official_refs(env)
        text = " ".join(f'"{t}"' for t in env.task.facts.required_text)
        _, reward, term, _, info = env.step(format_answer(Answer(f"The image {text}.")))
        assert term and info["image_judgement"] is not None and info["text_judgement"] is not None
        scores[gate] = (reward, info["reward_terms"])
        assert ids
    gated_reward, gated_terms = scores[True]
    assert gated_reward == 0.0 and gated_terms["gated"] is True
    open_reward, open_terms = scores[False]
    assert open_terms["gated"] is False
    assert open_reward == pytest.approx(combine(open_terms["image"], open_terms["text"], 0.5))


@pytest.fixture(scope="module")
def fuzz_env(make_env):
    return make_env(max_turns=3)


@settings(max_examples=60, deadline=None, database=None)
@given(actions=st.lists(
    st.one_of(
        st.text(max_size=300),
        st.builds(lambda s: f"<tool_call>{s}</tool_call>", st.text(max_size=120)),
        st.builds(lambda s: f"<answer>{s}</answer>", st.text(max_size=120)),
        st.builds(lambda q: format_tool_call("search", {"queries": [q]}), st.text(max_size=40)),
        st.builds(lambda q: format_tool_call("browse", {"url": q, "query": q}), st.text(max_size=40)),
    ),
    min_size=1, max_size=4))
def test_step_never_raises_on_arbitrary_text(fuzz_env, actions):
    env = fuzz_env
    env.reset(seed=0)
    for action in actions:
        obs, reward, term, trunc, info = env.step(action)
        assert env.observation_space.contains(obs)
        assert isinstance(reward, float) and set(info["last_action"]) == {"kind", "tool", "ok", "error"}
        if term or trunc:
            break
