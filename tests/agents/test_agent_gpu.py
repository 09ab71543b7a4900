"""The transformers agent backend on a CUDA GPU (skipped without one)."""

import pytest

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_transformers_policy_runs_an_episode_on_cuda(tiny_agent_dir, world_env, one_entity_task,
                                                     dtype):
    from knowgen.agents.policy import transformers_policy

    policy = transformers_policy(path=str(tiny_agent_dir), device="cuda", dtype=dtype, seed=2)
    backend = policy.backend
    assert next(backend.model.parameters()).device.type == "cuda"
    assert str(backend.model.dtype) == f"torch.{dtype}"
    obs, info = world_env.reset(options={"task_id": one_entity_task.id})
    policy.reset(obs, info)
    actions, done = [], False
    while not done:
        actions.append(policy.act(obs, info))
        assert 0 < backend.last_new_tokens <= backend.generation["max_new_tokens"]
        obs, _reward, terminated, truncated, info = world_env.step(actions[-1])
        done = terminated or truncated
    assert 1 <= len(actions) <= info["max_turns"]
    # the same seed replays the same episode on the GPU
    again = transformers_policy(path=str(tiny_agent_dir), device="cuda", dtype=dtype, seed=2)
    obs, info = world_env.reset(options={"task_id": one_entity_task.id})
    again.reset(obs, info)
    assert again.act(obs, info) == actions[0]
