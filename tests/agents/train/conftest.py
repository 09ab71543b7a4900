"""Fixtures of the training tests: one world benchmark and one set of backends per session."""

import pytest

pytest.importorskip("trl")

from knowgen.registry import (
    BROWSERS,
    GENERATORS,
    IMAGE_JUDGES,
    IMAGE_SEARCH,
    TEXT_JUDGES,
    TEXT_SEARCH,
)


@pytest.fixture(scope="session")
def world_benchmark():
    from knowgen.benchmarks.world import WorldBenchmark

    return WorldBenchmark()


@pytest.fixture(scope="session")
def shared_backends(world_benchmark):
    return {
        "benchmark": world_benchmark,
        "text_search": TEXT_SEARCH.create("local"),
        "image_search": IMAGE_SEARCH.create("local"),
        "browser": BROWSERS.create("local"),
        "generator": GENERATORS.create("compositor"),
        "image_judge": IMAGE_JUDGES.create("offline"),
        "text_judge": TEXT_JUDGES.create("offline"),
    }


@pytest.fixture(scope="session")
def expert_records(shared_backends):
    """Real scripted-expert records of the first tasks of the world's train split."""
    from knowgen.agents.expert_data import ExpertDataConfig, generate_expert_data

    records, _ = generate_expert_data(ExpertDataConfig(limit=10, env_overrides=shared_backends))
    assert records
    return records


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory, expert_records):
    """A smoke SFT run (4 steps) on the expert records: (config, final checkpoint folder)."""
    from knowgen.agents.expert_data import write_jsonl
    from knowgen.agents.train.config import load_train_config
    from knowgen.agents.train.sft import run_sft

    out = tmp_path_factory.mktemp("smoke_run")
    data = write_jsonl(expert_records, out / "data.jsonl")
    cfg = load_train_config("smoke", {"output_dir": str(out), "sft.data": str(data)})
    return cfg, run_sft(cfg)
