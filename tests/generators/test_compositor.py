"""Tests of the compositor generator: quotes, references, placeholder, errors."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from knowgen.errors import ConfigError, ToolError
from knowgen.generators.base import ImageGenerator
from knowgen.generators.compositor import Compositor, load_image, placeholder, quoted_texts
from knowgen.generators.layout import compose
from knowgen.registry import GENERATORS
from knowgen.world.data import load_world


@pytest.fixture(scope="module")
def world():
    return load_world()


def test_quoted_texts_straight_and_curly_in_order():
    prompt = 'Put “BURKINA FASO” on top, then "MALI", then “NIGER” and "CHAD".'
    assert quoted_texts(prompt) == ["BURKINA FASO", "MALI", "NIGER"]
    assert quoted_texts(prompt, limit=5) == ["BURKINA FASO", "MALI", "NIGER", "CHAD"]


def test_quoted_texts_deduplicates_and_skips_blanks():
    prompt = 'A banner "GITHUB", again “GITHUB”, an empty "" and a spaced "  FRANCE   VS SPAIN ".'
    assert quoted_texts(prompt) == ["GITHUB", "FRANCE VS SPAIN"]
    assert quoted_texts("No quotes at all, just 'single' ones.") == []


def test_registry_builds_the_compositor():
    gen = GENERATORS.create("compositor:size=256")
    assert isinstance(gen, Compositor) and isinstance(gen, ImageGenerator)
    assert gen.generate('titled "HELLO"', []).size == (256, 256)
    with pytest.raises(ConfigError):
        Compositor(size=10)
    with pytest.raises(ConfigError):
        GENERATORS.create("compositor:size=big")


def test_references_are_laid_out_in_order(world):
    files = [world.image_path("flag/fr"), world.image_path("flag/es")]
    gen = Compositor()
    out = gen.generate('The first and second reference images, titled "FRANCE VS SPAIN".', files)
    expected = compose([load_image(f) for f in files], ["FRANCE VS SPAIN"])
    assert out.tobytes() == expected.tobytes()
    assert gen.generate('titled "FRANCE VS SPAIN"', files[::-1]).tobytes() != out.tobytes()
    assert gen.generate('titled "FRANCE VS SPAIN"', files, seed=7).tobytes() == out.tobytes()


def test_at_most_five_references_are_used(world):
    files = [world.image_path(e.image_id) for e in world.entities_of("country")[:6]]
    gen = Compositor()
    assert gen.generate("six flags", files).tobytes() == gen.generate("six flags", files[:5]).tobytes()


def test_placeholder_without_references_is_deterministic_and_varied():
    gen = Compositor()
    prompt = 'The flag of the country whose capital is Ouagadougou, captioned "BURKINA FASO".'
    first = gen.generate(prompt, [])
    assert first.tobytes() == gen.generate(prompt, []).tobytes()
    assert first.tobytes() == compose([placeholder(prompt)], ["BURKINA FASO"]).tobytes()
    assert first.tobytes() != gen.generate(prompt.replace("Ouagadougou", "Bamako"), []).tobytes()
    assert first.tobytes() != gen.generate(prompt, [], seed=1).tobytes()
    picture = np.asarray(placeholder(prompt)).reshape(-1, 3)
    assert len(np.unique(picture, axis=0)) > 50  # soft shapes and gradients, not a flat fill


def test_missing_reference_raises_tool_error(tmp_path):
    missing = tmp_path / "nope.png"
    with pytest.raises(ToolError, match="does not exist"):
        Compositor().generate("x", [missing])


def test_unreadable_reference_raises_tool_error(tmp_path, world):
    bad = tmp_path / "broken.png"
    bad.write_text("this is not an image")
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(world.image_path("flag/fr").read_bytes()[:200])
    for path in (bad, truncated):
        with pytest.raises(ToolError, match="cannot be read") as info:
            Compositor().generate("x", [world.image_path("flag/fr"), path])
        assert str(path) in str(info.value)


def test_load_image_matches_the_file(world):
    path = world.image_path("flag/bf")
    with Image.open(path) as direct:
        expected = np.asarray(direct.convert("RGBA"))
    assert np.array_equal(np.asarray(load_image(path).convert("RGBA")), expected)


def test_quoted_text_followed_by_capital_letters_is_upper_cased():
    prompt = ('A poster with the text "Albania" in capital letters, then "Peru" below, '
              'and “Côte d\'Ivoire” written in capitals.')
    assert quoted_texts(prompt) == ["ALBANIA", "Peru", "CÔTE D'IVOIRE"]
    assert quoted_texts('"x" in upper-case, "y", in all caps') == ["X", "Y"]
    assert quoted_texts('"a" is in the capital letters section') == ["a"]
