"""Vector environments, GRPO groups and the asyncio batch on the real offline world."""

import asyncio

import gymnasium as gym
import pytest

import knowgen  # noqa: F401  (registers the environment)
from knowgen.envs import ENV_ID
from knowgen.envs.protocol import format_tool_call
from knowgen.envs.vector import AsyncBatch, env_info, group_reset, make_vector_env, run_batch
from knowgen.errors import ConfigError
from knowgen.registry import POLICIES

N = 8
ANSWER = '<answer>{"gen_prompt": "a flag", "reference_images": []}</answer>'


def search(word: str) -> str:
    return format_tool_call("search", {"queries": [f"capital {word}"]})


@pytest.fixture(scope="module")
def sync_envs(world_benchmark, backends):
    envs = make_vector_env(N, mode="sync", benchmark=world_benchmark, **backends)
    yield envs
    envs.close()


def test_make_vec_sync_reset_and_step(sync_envs):
    obs, info = sync_envs.reset(seed=3)
    assert isinstance(obs, tuple) and len(obs) == N
    assert all(o.startswith(obs[0][:200]) for o in obs)  # same system prompt
    assert len(set(info["task_id"])) > 1  # seeds 3..10 draw different tasks
    obs, reward, terminated, truncated, info = sync_envs.step([search(str(i)) for i in range(N)])
    assert all("<tool_response>" in o for o in obs)
    assert list(reward) == [0.0] * N and not terminated.any() and not truncated.any()
    assert list(info["turn"]) == [1] * N
    assert list(info["last_action"]["tool"]) == ["search"] * N
    single = env_info(info, 3)
    assert single["last_action"] == {"kind": "tool", "tool": "search", "ok": True, "error": ""}
    assert single["turn"] == 1 and single["task_id"] == info["task_id"][3]


def test_group_reset_starts_every_env_on_one_task(sync_envs, world_benchmark):
    task_id = world_benchmark.tasks("test")[5].id
    obs, info = group_reset(sync_envs, task_id, seed=0)
    assert len(set(obs)) == 1 and set(info["task_id"]) == {task_id}


def test_group_reset_on_a_list_of_envs(make_env, world_benchmark):
    envs = [make_env() for _ in range(3)]
    task_id = world_benchmark.tasks("test")[2].id
    obs, infos = group_reset(envs, task_id, seed=1)
    assert len(set(obs)) == 1 and [i["task_id"] for i in infos] == [task_id] * 3


@pytest.mark.slow
def test_autoreset_next_step(sync_envs):
    assert sync_envs.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP
    sync_envs.reset(seed=0)
    actions = [ANSWER] + [search("x")] * (N - 1)
    obs, reward, terminated, truncated, info = sync_envs.step(actions)
    assert terminated[0] and not terminated[1:].any()
    assert env_info(info, 0)["reward_terms"]["gated"]  # no references: gated, reward 0
    assert "drawn" in obs[0]
    # The next step ignores env 0's action and resets it.
    obs, reward, terminated, truncated, info = sync_envs.step([ANSWER] + [search("y")] * (N - 1))
    assert info["turn"][0] == 0 and env_info(info, 0)["last_action"]["kind"] is None
    assert obs[0].startswith(sync_envs.envs[0].unwrapped.system_prompt[:300])
    assert reward[0] == 0.0 and not terminated[0] and not truncated[0]
    assert list(info["turn"][1:]) == [2] * (N - 1)


def _random_rollout(envs, steps=3):
    policies = [POLICIES.create("random", seed=i) for i in range(N)]
    obs, info = envs.reset(seed=11)
    trace = [obs]
    for i, p in enumerate(policies):
        p.reset(obs[i], env_info(info, i))
    for _ in range(steps):
        single = [env_info(info, i) for i in range(N)]
        actions = [p.act(obs[i], single[i]) for i, p in enumerate(policies)]
        obs, reward, terminated, truncated, info = envs.step(actions)
        trace.append((actions, obs, list(reward), list(terminated), list(truncated)))
    return trace


@pytest.mark.slow
def test_same_seed_runs_are_identical(world_benchmark, backends, sync_envs):
    other = make_vector_env(N, mode="sync", benchmark=world_benchmark, **backends)
    try:
        assert _random_rollout(sync_envs) == _random_rollout(other)
    finally:
        other.close()


@pytest.mark.slow
def test_async_vector_env_matches_sync(world_benchmark, sync_envs):
    spec = f"world:cache_dir={world_benchmark.gt_dir.parents[1]}"  # reuse the session's cache
    envs = gym.vector.AsyncVectorEnv(
        [lambda: gym.make(ENV_ID, benchmark=spec) for _ in range(N)], shared_memory=False)
    try:
        obs, info = envs.reset(seed=5)
        sync_obs, sync_info = sync_envs.reset(seed=5)
        assert obs == sync_obs and list(info["task_id"]) == list(sync_info["task_id"])
        actions = [search(str(i)) for i in range(N)]
        assert envs.step(actions)[0] == sync_envs.step(actions)[0]
    finally:
        envs.close()


def test_make_vector_env_rejects_bad_arguments():
    with pytest.raises(ConfigError, match="vector mode"):
        make_vector_env(2, mode="threads")
    with pytest.raises(ConfigError, match="num_envs"):
        make_vector_env(0, mode="sync")


@pytest.mark.slow
def test_run_batch_matches_one_by_one(make_env, world_benchmark):
    task_ids = [t.id for t in world_benchmark.tasks("test")[:N]]
    envs = [make_env() for _ in range(N)]
    policies = [POLICIES.create("scripted") for _ in range(N)]
    results = asyncio.run(run_batch(envs, policies, task_ids))
    assert [r["task_id"] for r in results] == task_ids

    env, policy = make_env(), POLICIES.create("scripted")
    for task_id, result in zip(task_ids, results):
        obs, info = env.reset(options={"task_id": task_id})
        policy.reset(obs, info)
        done, turns = False, 0
        while not done:
            obs, reward, terminated, truncated, info = env.step(policy.act(obs, info))
            done, turns = terminated or truncated, turns + 1
        assert result["reward"] == reward and result["turns"] == turns
        assert result["info"]["reward_terms"] == info["reward_terms"]
    assert sum(r["reward"] for r in results) > 0  # the scripted searcher solves some tasks

    # More tasks than environments, at most 3 at once, through the class.
    batch = AsyncBatch(envs[:3], policies[:3], max_concurrency=2)
    again = batch.run(task_ids[:5])
    assert [r["reward"] for r in again] == [r["reward"] for r in results[:5]]


def test_run_batch_rejects_mismatched_lengths(make_env):
    with pytest.raises(ConfigError, match="one policy per environment"):
        asyncio.run(run_batch([make_env()], [], ["x"]))
