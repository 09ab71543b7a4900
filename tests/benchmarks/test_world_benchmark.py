"""Tests of the ``world`` benchmark loader and its ground-truth cache."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from knowgen.benchmarks.base import Benchmark
from knowgen.benchmarks.world import WorldBenchmark
from knowgen.errors import ConfigError, UnknownNameError
from knowgen.registry import BENCHMARKS
from knowgen.world.data import load_world
from knowgen.world.render import render_gt
from knowgen.world.tasks import generate_tasks


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """A benchmark whose test split was rendered once into a temporary cache."""
    cache = tmp_path_factory.mktemp("cache")
    bench = BENCHMARKS.create("world", seed=0, cache_dir=str(cache))
    return bench, bench.tasks("test"), cache


def test_registered_and_follows_the_protocol(tmp_path):
    bench = BENCHMARKS.create(f"world:seed=3,cache_dir={tmp_path}")
    assert isinstance(bench, WorldBenchmark) and isinstance(bench, Benchmark)
    assert bench.name == "world" and bench.seed == 3
    assert bench.splits() == ["train", "test", "test-ood"]
    assert bench.version.startswith(load_world().version + ".t")
    assert bench.gt_dir == (tmp_path / f"world-{bench.fingerprint()}-seed3" / "gt").resolve()
    assert not bench.gt_dir.exists()  # nothing is rendered before tasks are asked for


def test_unknown_split_and_bad_seed(tmp_path):
    bench = WorldBenchmark(cache_dir=str(tmp_path))
    with pytest.raises(UnknownNameError, match="Did you mean 'test'"):
        bench.tasks("tset")
    with pytest.raises(ConfigError):
        WorldBenchmark(seed="zero", cache_dir=str(tmp_path))


@pytest.mark.slow
def test_tasks_point_at_rendered_ground_truth(rendered):
    bench, tasks, cache = rendered
    world = load_world()
    plain = generate_tasks(world, "test", seed=0)
    assert [t.id for t in tasks] == [t.id for t in plain]
    for t in tasks:
        path = Path(t.gt_image)
        assert path.is_absolute() and path.is_file()
        assert path.parent == bench.gt_dir and path.name == f"{t.id}.png"
        assert path.is_relative_to(cache.resolve())
    for t in tasks[:: max(1, len(tasks) // 10)]:
        with Image.open(t.gt_image) as img:
            assert img.size == (512, 512)
            assert img.convert("RGB").tobytes() == render_gt(t, world).tobytes()
    assert not list(bench.gt_dir.glob("*.tmp"))


@pytest.mark.slow
def test_cache_is_reused_and_repaired(rendered):
    bench, tasks, _ = rendered
    kept, removed = Path(tasks[0].gt_image), Path(tasks[1].gt_image)
    stamp = kept.stat().st_mtime_ns
    removed.unlink()
    again = WorldBenchmark(seed=0, cache_dir=str(bench.gt_dir.parent.parent)).tasks("test")
    assert [t.gt_image for t in again] == [t.gt_image for t in tasks]
    assert kept.stat().st_mtime_ns == stamp
    assert removed.is_file()


@pytest.mark.slow
def test_task_lookup_across_splits(rendered, tmp_path):
    bench, tasks, _ = rendered
    assert bench.task(tasks[3].id) == tasks[3]
    fresh = WorldBenchmark(seed=0, cache_dir=str(tmp_path))
    train_id = generate_tasks(load_world(), "train", seed=0)[0].id
    found = fresh.task(train_id)
    assert found.id == train_id and Path(found.gt_image).is_file()
    assert [p.name for p in fresh.gt_dir.iterdir()] == [f"{train_id}.png"]
    with pytest.raises(UnknownNameError, match="Did you mean"):
        fresh.task(train_id + "x")


def test_seeds_use_separate_caches(tmp_path):
    a, b = WorldBenchmark(seed=0, cache_dir=str(tmp_path)), WorldBenchmark(seed=1, cache_dir=str(tmp_path))
    assert a.gt_dir != b.gt_dir and a.gt_dir.parent.parent == b.gt_dir.parent.parent
