"""Every registered knowgen id passes Gymnasium's checker; dict observations and budgets."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.registration import load_env_creator
from gymnasium.utils.env_checker import check_env
from PIL import Image

import knowgen  # noqa: F401  (registers the ids)
from knowgen.envs import ENV_IDS, MULTIMODAL_ENV_ID
from knowgen.envs.protocol import format_tool_call
from knowgen.envs.spaces import letterbox
from knowgen.reference_policies.common import parse_images


def _registered_ids():
    return sorted(i for i in gym.envs.registry if i.startswith("knowgen/"))


def test_registry_holds_every_declared_id():
    assert _registered_ids() == sorted(ENV_IDS)


def _make_from_spec(env_id, world_benchmark, backends, **kwargs):
    """Build through the registered entry point and kwargs, with the shared backends."""
    spec = gym.spec(env_id)
    creator = load_env_creator(spec.entry_point)
    return creator(benchmark=world_benchmark, **backends, **{**spec.kwargs, **kwargs})


@pytest.mark.parametrize("env_id", _registered_ids())
def test_check_env_passes_for_every_registered_id(env_id, world_benchmark, backends):
    env = _make_from_spec(env_id, world_benchmark, backends)
    check_env(env, skip_render_check=True)
    obs, _info = env.reset(seed=7)
    assert env.observation_space.contains(obs)
    obs, *_ = env.step(format_tool_call("image_search", {"query": "Flag of France"}))
    assert env.observation_space.contains(obs)
    env.close()


def test_dict_observations_hold_the_listed_images(world_benchmark, backends):
    env = _make_from_spec(MULTIMODAL_ENV_ID, world_benchmark, backends,
                          observation_image_size=64, max_images_per_observation=3)
    obs, _info = env.reset(seed=1)
    assert obs["num_images"] == 0 and obs["image_ids"] == "" and not obs["images"].any()
    obs, *_, info = env.step(format_tool_call("image_search", {"query": "Flag of Peru"}))
    listed = parse_images(obs["text"])
    assert len(listed) == 3  # capped by max_images_per_observation
    assert obs["images"].shape == (3, 64, 64, 3) and obs["images"].dtype == np.uint8
    assert obs["image_ids"] == ",".join(i.img_id for i in listed) and obs["num_images"] == 3
    for k, path in enumerate(info["observation_images"]):
        assert np.array_equal(obs["images"][k], letterbox(path, 64))
    obs, *_ = env.step(format_tool_call("search", {"queries": ["Peru"]}))
    assert obs["num_images"] == 0 and not obs["images"].any()
    assert env.observation_space["images"].shape == (3, 64, 64, 3)


@pytest.mark.slow
def test_gym_make_multimodal_from_spec_strings(tmp_path):
    env = gym.make(MULTIMODAL_ENV_ID, benchmark=f"world:cache_dir={tmp_path}")
    check_env(env.unwrapped, skip_render_check=True)
    obs, info = env.reset(seed=2)
    assert set(obs) == {"text", "images", "image_ids", "num_images"}
    assert info["request"] in obs["text"]
    env.close()


def test_letterbox_keeps_aspect_and_pads_black(tmp_path):
    path = tmp_path / "wide.png"
    Image.new("RGBA", (200, 100), (255, 0, 0, 255)).save(path)
    box = letterbox(str(path), 40)
    assert box.shape == (40, 40, 3)
    assert (box[20, 20] == [255, 0, 0]).all()  # the picture, centred
    assert not box[0].any() and not box[-1].any()  # padding rows above and below
    assert (box[10:30] == [255, 0, 0]).all()
    transparent = tmp_path / "clear.png"
    Image.new("RGBA", (10, 10), (0, 0, 0, 0)).save(transparent)
    assert (letterbox(str(transparent), 10) == 255).all()  # transparency laid on white


def test_every_budget_is_configurable(make_env):
    env = make_env(max_turns=3, max_tool_calls=5, forced_final_turn=False,
                   max_images_per_observation=2, max_observation_chars=1200)
    obs, info = env.reset(seed=0)
    assert "At most 5 tool calls and 3 turns" in obs and "Shows at most 2 images" in obs
    obs, *_ = env.step(format_tool_call("image_search", {"query": "Flag of Peru"}))
    assert len(parse_images(obs)) == 2
    obs, *_ = env.step(format_tool_call("search", {"queries": ["capital", "flag", "currency"]}))
    assert "[truncated]" in obs and len(obs.split("</tool_response>")[0]) < 1300
    assert "final turn" not in obs  # no turn is reserved for the answer
    obs, reward, term, trunc, info = env.step(format_tool_call("search", {"queries": ["Lima"]}))
    assert trunc and not term and reward == 0.0
    assert info["last_action"]["ok"] is True and "search result for [Lima]" in obs
    assert "The episode is over" in obs and info["answer"] is None
