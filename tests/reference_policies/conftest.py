"""Shared fixtures: the world benchmark (tmp cache) and one SearchGenEnv over its test split."""

import pytest

from knowgen.envs.privileged import bind_policy
from knowgen.envs.searchgen import SearchGenEnv


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("world_cache"))


@pytest.fixture(scope="session")
def world_benchmark(cache_dir):
    from knowgen.benchmarks.world import WorldBenchmark

    return WorldBenchmark(cache_dir=cache_dir)


@pytest.fixture(scope="session")
def env(world_benchmark):
    return SearchGenEnv(benchmark=world_benchmark, split="test")


@pytest.fixture(scope="session")
def play(env):
    """Play one episode of ``policy`` on ``task_id``; return (reward, final info, turns)."""

    def run(policy, task_id):
        bind_policy(policy, env)
        obs, info = env.reset(options={"task_id": task_id})
        policy.reset(obs, info)
        done, reward, turns = False, 0.0, 0
        while not done:
            obs, reward, terminated, truncated, info = env.step(policy.act(obs, info))
            done, turns = terminated or truncated, turns + 1
        return reward, info, turns

    return run
