"""The random-agent, custom-policy and vector-rollout examples run on the real world."""

import runpy
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def world_spec(tmp_path_factory):
    """A world benchmark spec with a tmp cache, ground truth rendered once up front."""
    from knowgen.benchmarks.world import WorldBenchmark

    cache = tmp_path_factory.mktemp("examples_world_cache")
    WorldBenchmark(cache_dir=str(cache)).tasks("test")
    return f"world:cache_dir={cache}"


def _main(name: str):
    return runpy.run_path(str(EXAMPLES / name))["main"]


@pytest.mark.slow
def test_random_agent_loops_episodes(world_spec, capsys):
    results = _main("random_agent.py")(episodes=4, seed=1, benchmark=world_spec)
    assert len(results) == 4 and len({r["task_id"] for r in results}) > 1
    assert all(0.0 <= r["reward"] <= 1.0 and r["turns"] >= 1 for r in results)
    assert "turn 1:" in capsys.readouterr().out
    again = _main("random_agent.py")(episodes=4, seed=1, benchmark=world_spec)
    assert again == results  # seeded: the same episodes again


@pytest.mark.slow
def test_custom_policy_searches_once_then_answers(world_spec):
    results = _main("custom_policy.py")(episodes=3, benchmark=world_spec)
    assert len(results) == 3
    for r in results:
        assert r["turns"] == 2 and r["terms"] is not None
        assert len(r["references"]) <= 1  # at most the top image
    assert any(r["references"] for r in results)
    assert any(r["reward"] > 0 for r in results)


@pytest.mark.slow
def test_vector_rollout_with_scripted_policies(world_spec):
    results = _main("vector_rollout.py")(benchmark=world_spec)
    assert [r["env"] for r in results] == list(range(8))
    assert all(r["turns"] >= 2 for r in results)
    assert sum(r["reward"] for r in results) / 8 > 0.5  # the scripted searcher solves most
