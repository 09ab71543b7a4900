"""Fixtures of the serving tests: one world and one set of backends, a local env, a server."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def world_cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("world_cache"))


@pytest.fixture(scope="session")
def shared_backends(world_cache):
    """The offline world (test split) and the default backends, built once."""
    from knowgen.benchmarks.world import WorldBenchmark
    from knowgen.envs.backends import build_backends

    return {"benchmark": WorldBenchmark(cache_dir=world_cache), **build_backends()}


@pytest.fixture(scope="session")
def local_env(shared_backends):
    """An in-process SearchGenEnv with the settings the servers use (world, test split)."""
    from knowgen.envs.searchgen import SearchGenEnv

    return SearchGenEnv(**shared_backends)


@pytest.fixture(scope="session")
def recorded(local_env):
    """Scripted episodes of seeds 0 to 7, played in-process (the reference of every test)."""
    from serving_helpers import play_in_process

    return {seed: play_in_process(local_env, seed=seed) for seed in range(8)}


@pytest.fixture(scope="module")
def served(shared_backends):
    """An environment server on 127.0.0.1 (free port) sharing the session's backends."""
    pytest.importorskip("openenv")
    from knowgen.envs.openenv_server import create_env_app
    from knowgen.generators.server import BackgroundServer

    app = create_env_app(backends=shared_backends, max_sessions=8, max_request_bytes=64 * 1024)
    with BackgroundServer(app, name="environment server") as server:
        server.app = app
        yield server
