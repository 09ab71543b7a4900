"""Shared fixtures: one world benchmark (tmp cache) and one set of backends per session."""

import pytest

from knowgen.envs.searchgen import SearchGenEnv
from knowgen.registry import (
    BROWSERS,
    GENERATORS,
    IMAGE_JUDGES,
    IMAGE_SEARCH,
    TEXT_JUDGES,
    TEXT_SEARCH,
)


@pytest.fixture(scope="session")
def world_benchmark(tmp_path_factory):
    from knowgen.benchmarks.world import WorldBenchmark

    return WorldBenchmark(cache_dir=str(tmp_path_factory.mktemp("world_cache")))


@pytest.fixture(scope="session")
def backends():
    return {
        "text_search": TEXT_SEARCH.create("local"),
        "image_search": IMAGE_SEARCH.create("local"),
        "browser": BROWSERS.create("local"),
        "generator": GENERATORS.create("compositor"),
        "image_judge": IMAGE_JUDGES.create("offline"),
        "text_judge": TEXT_JUDGES.create("offline"),
    }


@pytest.fixture(scope="session")
def make_env(world_benchmark, backends):
    """Build a SearchGenEnv on the world test split with shared backends."""

    def make(**kwargs):
        return SearchGenEnv(benchmark=world_benchmark, **{**backends, **kwargs})

    return make
