"""Record/replay tool cache on the real offline world."""

import shutil
import sqlite3
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from knowgen.envs.protocol import format_answer, format_tool_call
from knowgen.envs.searchgen import SearchGenEnv
from knowgen.errors import ConfigError, DataError, ToolError
from knowgen.registry import IMAGE_SEARCH, TEXT_SEARCH
from knowgen.search.toolcache import (
    CachedImageSearch,
    CachedTextSearch,
    ToolCache,
    wrap_backends,
)
from knowgen.types import Answer, ReferenceImage
from knowgen.world.data import load_world


class Exploding:
    """A backend that fails the test if any tool is called."""

    def __getattr__(self, name):
        def fail(*args, **kwargs):
            raise AssertionError(f"backend called in replay mode: {name}{args}")
        return fail


@pytest.fixture(scope="module")
def world():
    return load_world()


@pytest.fixture(scope="module")
def bench_spec(tmp_path_factory):
    return f"world:cache_dir={tmp_path_factory.mktemp('world_cache')}"


def _episode(env, world, task_index=0, image_query=None):
    """A fixed action sequence: search, image search, browse, fetch, bad browse, answer."""
    steps = []
    obs, info = env.reset(options={"task_index": task_index})
    steps.append((obs, 0.0, False, False, info))
    entity = world.entities[env.task.facts.entities[0].entity_id]
    image = world.images[entity.image_id]
    actions = [
        format_tool_call("search", {"queries": [entity.name, f"{entity.name} history"]}),
        format_tool_call("image_search", {"query": image_query or image.title}),
        format_tool_call("browse", {"url": entity.page_url, "query": "colours"}),
        format_tool_call("fetch_image", {"url": image.url}),
        format_tool_call("browse", {"url": "https://encyclopedia.world.invalid/wiki/Nowhere"}),
    ]
    for action in actions:
        steps.append(env.step(action))
    ids = steps[-1][4]["image_ids"]
    texts = " ".join(f'"{t}"' for t in env.task.facts.required_text)
    answer = Answer(f"A poster of the reference image with {texts}",
                    tuple(ReferenceImage(i, "picture") for i in ids[-1:]))
    steps.append(env.step(format_answer(answer)))
    return steps


@pytest.mark.slow
def test_record_then_replay_end_to_end(tmp_path, world, bench_spec):
    db = str(tmp_path / "c.sqlite")
    off = _episode(SearchGenEnv(benchmark=bench_spec), world)
    recorded = _episode(SearchGenEnv(tool_cache=db, tool_cache_mode="record",
                                     benchmark=bench_spec), world)
    replay_env = SearchGenEnv(tool_cache=db, tool_cache_mode="replay", benchmark=bench_spec)
    assert replay_env.text_search.inner is None and replay_env.browser.inner is None
    replayed = _episode(replay_env, world)

    assert [s[0] for s in replayed] == [s[0] for s in recorded]
    assert [s[4] for s in replayed] == [s[4] for s in recorded]
    assert [s[1:4] for s in replayed] == [s[1:4] for s in recorded]
    final = recorded[-1]
    assert final[2] and final[1] > 0  # terminated with a positive reward
    # the cache changes only where images live, never the reward
    assert final[1] == off[-1][1]
    assert final[4]["reward_terms"] == off[-1][4]["reward_terms"]
    # tool results (failures included) are the ones of the real backends
    assert [s[4]["last_action"] for s in recorded] == [s[4]["last_action"] for s in off]
    assert recorded[5][4]["last_action"]["ok"] is False
    assert recorded[2][4]["observation_images"]
    for path in recorded[2][4]["observation_images"]:
        assert Path(path).parent == Path(f"{db}.images") and Path(path).is_file()
    with sqlite3.connect(db) as conn:
        tools = {row[0] for row in conn.execute("SELECT tool FROM calls")}
    assert tools == {"search", "search_images", "browse", "fetch_image"}


@pytest.mark.slow
def test_replay_with_failing_backends_and_miss(tmp_path, world, bench_spec):
    db = str(tmp_path / "c.sqlite")
    recorded = _episode(SearchGenEnv(tool_cache=db, tool_cache_mode="record",
                                     benchmark=bench_spec), world, task_index=1)
    shutil.rmtree(f"{db}.images")  # images come back from the blobs
    env = SearchGenEnv(tool_cache=db, tool_cache_mode="replay", benchmark=bench_spec,
                       text_search=Exploding(), image_search=Exploding(), browser=Exploding())
    replayed = _episode(env, world, task_index=1)
    assert [s[0] for s in replayed] == [s[0] for s in recorded]
    assert [s[4] for s in replayed] == [s[4] for s in recorded]
    assert replayed[-1][1] == recorded[-1][1]

    miss = _episode(env, world, task_index=1, image_query="a query never recorded")
    obs, _, terminated, truncated, info = miss[2]
    assert "not recorded with these settings" in obs and "search_images" in obs
    assert "a query never recorded" in obs
    assert info["last_action"]["ok"] is False and not (terminated or truncated)


def test_image_bytes_survive_deleting_originals(tmp_path, world):
    image = next(iter(world.images.values()))
    original = world.image_path(image.id)
    copy = tmp_path / "orig" / original.name
    copy.parent.mkdir()
    shutil.copy(original, copy)

    class CopyImages:
        def __init__(self):
            self.local = IMAGE_SEARCH.create("local")

        def fetch_image(self, url):
            return replace(self.local.fetch_image(url), local_path=str(copy))

    db = tmp_path / "img.sqlite"
    recorder = CachedImageSearch(CopyImages(), ToolCache(db, "record"), "local")
    hit = recorder.fetch_image(image.url)
    copy.unlink()
    shutil.rmtree(f"{db}.images")
    replayer = CachedImageSearch(None, ToolCache(db, "replay"), "local")
    again = replayer.fetch_image(image.url)
    assert again == hit and again.image_id == image.id
    restored = Path(again.local_path)
    assert restored.is_file() and restored.parent == Path(f"{db}.images")
    assert restored.read_bytes() == original.read_bytes()
    with Image.open(restored) as img:
        img.load()
        assert img.size[0] > 0 and img.size[1] > 0


def test_recorded_tool_error_replays(tmp_path):
    db = tmp_path / "err.sqlite"
    recorder = CachedImageSearch(IMAGE_SEARCH.create("local"), ToolCache(db, "record"), "local")
    with pytest.raises(ToolError) as first:
        recorder.fetch_image("https://example.com/nothing.png")
    replayer = CachedImageSearch(Exploding(), ToolCache(db, "replay"), "local")
    with pytest.raises(ToolError) as second:
        replayer.fetch_image("https://example.com/nothing.png")
    assert str(second.value) == str(first.value)
    # another identity is another backend: a miss
    other = CachedImageSearch(Exploding(), ToolCache(db, "replay"), "serper")
    with pytest.raises(ToolError, match="not recorded with these settings"):
        other.fetch_image("https://example.com/nothing.png")


def test_four_threads_share_one_cache(tmp_path):
    db = tmp_path / "threads.sqlite"
    local = TEXT_SEARCH.create("local")
    queries = [f"{word} {n}" for word in ("capital", "flag", "currency", "logo")
               for n in range(6)]
    recorder = CachedTextSearch(local, ToolCache(db, "record"), "local")
    results, errors = {}, []

    def work(part):
        try:
            for q in part:
                results[q] = recorder.search(q, top_k=3)
        except Exception as exc:  # noqa: BLE001 - any failure is reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(queries[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0] == len(queries)
    replayer = CachedTextSearch(None, ToolCache(db, "replay"), "local")
    for q in queries:
        assert replayer.search(q, top_k=3) == results[q] == local.search(q, top_k=3)


def test_bad_config(tmp_path, bench_spec):
    with pytest.raises(ConfigError, match="tool_cache_mode"):
        ToolCache(tmp_path / "x.sqlite", "replay-ish")
    with pytest.raises(ConfigError, match="needs tool_cache"):
        wrap_backends({}, None, "record", {})
    with pytest.raises(ConfigError, match="needs tool_cache"):
        SearchGenEnv(tool_cache_mode="replay", benchmark=bench_spec)
    with pytest.raises(ConfigError, match="Unknown tool_cache_mode"):
        SearchGenEnv(tool_cache=str(tmp_path / "c.sqlite"), tool_cache_mode="rec",
                     benchmark=bench_spec)
    with pytest.raises(DataError, match="does not exist"):
        ToolCache(tmp_path / "missing.sqlite", "replay")
    bad = tmp_path / "bad.sqlite"
    bad.write_text("not a database " * 100)
    with pytest.raises(DataError, match="not a usable SQLite file"):
        ToolCache(bad, "record")
    off = wrap_backends({"text_search": "x"}, None, "off", {})
    assert off == {"text_search": "x"}
