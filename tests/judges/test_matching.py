"""Colour-aware multi-scale matching on real world pictures."""

import numpy as np
import pytest
from PIL import Image

from knowgen.judges.matching import best_match, find_best
from knowgen.judges.offline_image import MATCH_THRESHOLD
from knowgen.world.data import load_world


@pytest.fixture(scope="module")
def world():
    return load_world()


def pic(world, image_id):
    with Image.open(world.image_path(image_id)) as img:
        return img.convert("RGB")


def paste(template, frac, where, size=(512, 512), background=(244, 244, 240)):
    canvas = Image.new("RGB", size, background)
    w = round(frac * size[0])
    h = round(template.height * w / template.width)
    x = round(where[0] * (size[0] - w))
    y = round(where[1] * (size[1] - h))
    canvas.paste(template.resize((w, h), Image.Resampling.LANCZOS), (x, y))
    return canvas, (x, y, x + w, y + h)


@pytest.mark.parametrize("frac", [0.2, 0.33, 0.5, 0.7, 0.95])
@pytest.mark.parametrize("where", [(0, 0), (0.5, 0.5), (1, 1), (0.2, 0.9)])
def test_official_flag_found_anywhere(world, frac, where):
    flag = pic(world, "flag/bf")
    canvas, box = paste(flag, frac, where)
    match = find_best(canvas, flag)
    assert match.score >= MATCH_THRESHOLD, match
    assert abs(match.box[0] - box[0]) <= 8 and abs(match.box[2] - box[2]) <= 12


@pytest.mark.parametrize("entity", ["country/br", "country/de", "country/jp", "country/us"])
def test_hue_turned_flag_is_rejected(world, entity):
    official = pic(world, world.entities[entity].image_id)
    fake, _ = paste(pic(world, "lookalike/" + world.entities[entity].image_id), 0.6, (0.5, 0.3))
    real, _ = paste(official, 0.6, (0.5, 0.3))
    assert best_match(fake, official) < MATCH_THRESHOLD <= best_match(real, official)


def test_black_logo_is_rejected(world):
    brands = [b for b in world.entities_of("brand") if b.facts["colour_name"] in {"red", "orange"}]
    for brand in brands[:4]:
        official = pic(world, brand.image_id)
        fake, _ = paste(pic(world, "lookalike/" + brand.image_id), 0.5, (0.3, 0.3))
        real, _ = paste(official, 0.5, (0.3, 0.3))
        assert best_match(fake, official) < MATCH_THRESHOLD <= best_match(real, official), brand.id


def test_other_flag_does_not_match(world):
    assert best_match(paste(pic(world, "flag/it"), 0.7, (0.5, 0.5))[0],
                      pic(world, "flag/fr")) < MATCH_THRESHOLD


def test_degenerate_inputs():
    flag = Image.new("RGB", (40, 30), (200, 0, 0))
    flag.paste((255, 255, 255), (0, 0, 20, 30))
    assert best_match(Image.new("RGB", (512, 512), "white"), flag) == 0.0
    assert -1.0 <= best_match(Image.new("RGB", (32, 32), "red"), flag) <= 1.0
    tall = Image.new("RGB", (10, 200), "blue")  # never fits at any scale
    assert find_best(Image.new("RGB", (512, 128), "white"), tall).score == 0.0
    rgba = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    rgba.paste((255, 153, 0, 255), (16, 16, 48, 48))
    drawn = Image.new("RGB", rgba.size, "white")
    drawn.paste(rgba, mask=rgba)  # what a transparent logo looks like on a white page
    canvas, _ = paste(drawn, 0.4, (0.5, 0.5), background=(255, 255, 255))
    assert best_match(canvas, rgba) >= MATCH_THRESHOLD


def test_noise_is_not_a_match(world):
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 255, (512, 512, 3), dtype=np.uint8))
    assert best_match(noise, pic(world, "flag/bf")) < 0.5
