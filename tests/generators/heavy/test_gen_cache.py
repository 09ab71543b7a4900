"""CachedGenerator: keys, hits and misses, atomic PNG files."""

from __future__ import annotations

import shutil
import threading

import numpy as np
import pytest
from PIL import Image

from knowgen.errors import ToolError
from knowgen.generators.cache import CachedGenerator, cached_generator, describe_generator
from knowgen.generators.compositor import Compositor

PROMPT = 'The first reference image with "BONJOUR" below'


class Counting:
    """A compositor that counts how often it really draws."""

    def __init__(self, size: int = 96):
        self.inner, self.size, self.calls = Compositor(size=size), size, 0

    def generate(self, prompt, references, seed=0):
        self.calls += 1
        return self.inner.generate(prompt, references, seed)


def test_second_request_is_read_from_disk(tmp_path, flags):
    inner = Counting()
    gen = CachedGenerator(inner, tmp_path / "cache")
    first = gen.generate(PROMPT, flags[:1], seed=0)
    second = gen.generate(PROMPT, flags[:1], seed=0)
    assert inner.calls == 1 and (gen.hits, gen.misses) == (1, 1)
    assert np.array_equal(np.asarray(first), np.asarray(second))
    key = gen.key(PROMPT, flags[:1], 0)
    assert gen.path_for(key).is_file() and gen.path_for(key).parent.name == key[:2]
    assert np.array_equal(np.asarray(Image.open(gen.path_for(key)).convert("RGB")),
                          np.asarray(first))
    # a fresh wrapper over the same folder still hits: the cache lives on disk
    again = CachedGenerator(Counting(), tmp_path / "cache")
    again.generate(PROMPT, flags[:1], seed=0)
    assert (again.hits, again.inner.calls) == (1, 0)


def test_key_follows_config_prompt_reference_content_and_seed(tmp_path, flags):
    gen = CachedGenerator(Counting(), tmp_path)
    base = gen.key(PROMPT, flags[:1], 0)
    copy = tmp_path / "renamed.png"
    shutil.copyfile(flags[0], copy)
    assert gen.key(PROMPT, [copy], 0) == base  # same bytes, other name: same key
    edited = tmp_path / "edited.png"
    Image.open(flags[0]).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(edited)
    others = {gen.key(PROMPT, [edited], 0), gen.key(PROMPT, flags[:1], 1),
              gen.key(PROMPT + "!", flags[:1], 0), gen.key(PROMPT, flags[:2], 0),
              CachedGenerator(Counting(size=128), tmp_path).key(PROMPT, flags[:1], 0),
              CachedGenerator(Counting(), tmp_path, key_extra="model-v2").key(
                  PROMPT, flags[:1], 0)}
    assert base not in others and len(others) == 6


def test_unreadable_cache_file_is_drawn_again(tmp_path, flags):
    inner = Counting()
    gen = CachedGenerator(inner, tmp_path)
    gen.generate(PROMPT, flags[:1])
    path = gen.path_for(gen.key(PROMPT, flags[:1], 0))
    path.write_bytes(b"truncated")
    img = gen.generate(PROMPT, flags[:1])
    assert inner.calls == 2 and img.size == (96, 96)
    Image.open(path).verify()  # replaced by a good file


def test_concurrent_writers_leave_whole_files_only(tmp_path):
    gen = CachedGenerator(Counting(), tmp_path)
    threads = [threading.Thread(target=gen.generate, args=(f'"T{i % 3}"', [], 0))
               for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    files = sorted(tmp_path.rglob("*"))
    pngs = [p for p in files if p.suffix == ".png"]
    assert len(pngs) == 3 and not any(p.name.startswith(".tmp-") for p in files)
    for png in pngs:
        Image.open(png).verify()


def test_missing_reference_is_a_tool_error(tmp_path):
    gen = CachedGenerator(Counting(), tmp_path)
    with pytest.raises(ToolError, match="does not exist"):
        gen.generate(PROMPT, [tmp_path / "none.png"])


def test_description_and_registry_factory(tmp_path):
    assert describe_generator(Counting(size=64))["size"] == 64
    gen = cached_generator("compositor:size=80", str(tmp_path), key_extra="v1")
    assert gen.describe() == {"generator": "knowgen.generators.compositor.Compositor",
                              "size": 80, "cache_key_extra": "v1"}
    assert gen.generate('"HI"', []).size == (80, 80)
