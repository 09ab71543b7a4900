"""Shared fixtures: one world benchmark (tmp cache) and one set of backends per session."""

import pytest

from knowgen.envs.backends import build_backends
from knowgen.envs.searchgen import SearchGenEnv


@pytest.fixture(scope="session")
def world_benchmark(tmp_path_factory):
    from knowgen.benchmarks.world import WorldBenchmark

    return WorldBenchmark(cache_dir=str(tmp_path_factory.mktemp("world_cache")))


@pytest.fixture(scope="session")
def backends():
    return build_backends()


@pytest.fixture(scope="session")
def make_env(world_benchmark, backends):
    """Build a SearchGenEnv on the world test split with shared backends."""

    def make(**kwargs):
        return SearchGenEnv(benchmark=world_benchmark, **{**backends, **kwargs})

    return make
