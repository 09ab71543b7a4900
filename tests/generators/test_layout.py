"""Tests of the poster layout: determinism, geometry and OCR read-back."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from knowgen.generators.layout import (
    BACKGROUND,
    BANNER,
    MAX_IMAGES,
    MAX_TEXTS,
    compose,
    fit_font,
    text_width,
    wrap_lines,
)
from knowgen.world.data import load_world


@pytest.fixture(scope="module")
def world():
    return load_world()


def _flag(world, iso2: str) -> Image.Image:
    return Image.open(world.image_path(world.entities[f"country/{iso2}"].image_id))


def _mask(img: Image.Image, colour) -> np.ndarray:
    return np.all(np.asarray(img) == np.array(colour, dtype=np.uint8), axis=-1)


def test_compose_is_deterministic(world):
    images = [_flag(world, "fr"), _flag(world, "es")]
    first = compose(images, ["FRANCE VS SPAIN"])
    second = compose([_flag(world, "fr"), _flag(world, "es")], ["FRANCE VS SPAIN"])
    assert first.mode == "RGB" and first.size == (512, 512)
    assert first.tobytes() == second.tobytes()
    assert compose(images, ["SPAIN VS FRANCE"]).tobytes() != first.tobytes()
    assert compose(images[::-1], ["FRANCE VS SPAIN"]).tobytes() != first.tobytes()


def test_compose_honours_size_and_leaves_inputs_untouched(world):
    flag = _flag(world, "bf")
    before = flag.tobytes()
    out = compose([flag], ["BURKINA FASO"], size=(640, 360))
    assert out.size == (640, 360)
    assert flag.tobytes() == before


def test_picture_keeps_its_aspect_ratio_and_sits_above_the_banner():
    red = Image.new("RGB", (300, 100), (200, 0, 0))
    out = compose([red], ["CAPTION"])
    ys, xs = np.nonzero(_mask(out, (200, 0, 0)))
    width, height = xs.max() - xs.min() + 1, ys.max() - ys.min() + 1
    assert abs(width / height - 3.0) < 0.05
    banner_rows = np.nonzero(_mask(out, BANNER).any(axis=1))[0]
    assert banner_rows.min() > ys.max()


def test_transparent_pixels_show_the_white_mat():
    logo = Image.new("RGBA", (100, 100), (0, 0, 0, 0))
    logo.paste((10, 120, 200, 255), (25, 25, 75, 75))
    out = compose([logo], [])
    assert _mask(out, (10, 120, 200)).sum() > 0
    assert _mask(out, (255, 255, 255)).sum() > _mask(out, (10, 120, 200)).sum()


def test_extra_images_and_texts_are_dropped():
    colours = [(250, 0, 0), (0, 250, 0), (0, 0, 250), (250, 250, 0), (0, 250, 250), (250, 0, 250)]
    images = [Image.new("RGB", (60, 40), c) for c in colours]
    out = compose(images, ["ONE", "TWO", "THREE", "FOUR"])
    shown = [bool(_mask(out, c).any()) for c in colours]
    assert shown == [True] * MAX_IMAGES + [False] * (len(colours) - MAX_IMAGES)
    rows = _mask(out, BANNER).any(axis=1)
    runs = np.count_nonzero(np.diff(rows.astype(int)) == 1) + int(rows[0])
    assert runs == MAX_TEXTS
    assert out.tobytes() == compose(images[:MAX_IMAGES], ["ONE", "TWO", "THREE"]).tobytes()


def test_text_only_banner_is_centred():
    out = compose([], ["GITHUB"])
    rows = np.nonzero(_mask(out, BANNER).any(axis=1))[0]
    assert abs((rows.min() + rows.max()) / 2 - out.height / 2) <= 1
    assert _mask(out, BACKGROUND)[: rows.min()].all()


def test_blank_texts_are_skipped_and_whitespace_collapsed():
    assert compose([], ["  ", "A  B\n"]).tobytes() == compose([], ["A B"]).tobytes()


def test_empty_poster_is_plain_background():
    assert _mask(compose([], []), BACKGROUND).all()


def test_long_text_is_shrunk_or_wrapped_to_fit():
    max_width = 440
    font = fit_font("SAINT VINCENT AND THE GRENADINES", max_width, 40)
    assert text_width("SAINT VINCENT AND THE GRENADINES", font) <= max_width
    assert font.size < 40
    lines, wrapped = wrap_lines("BOSNIA AND HERZEGOVINA VS MONTENEGRO", max_width, 67)
    assert len(lines) == 2 and " ".join(lines) == "BOSNIA AND HERZEGOVINA VS MONTENEGRO"
    assert all(text_width(line, wrapped) <= max_width for line in lines)
    short_lines, short_font = wrap_lines("GITHUB", max_width, 67)
    assert short_lines == ["GITHUB"] and short_font.size > wrapped.size


def test_too_small_canvas_is_refused():
    with pytest.raises(ValueError, match="too small"):
        compose([], ["X"], size=(32, 32))


def _read(ocr, image: Image.Image) -> str:
    """Text of the OCR boxes in reading order (rows top to bottom, left to right)."""
    result, _ = ocr(np.asarray(image)[:, :, ::-1].copy())
    boxes = sorted(((sum(p[1] for p in b) / 4, min(p[0] for p in b), t) for b, t, _ in result or []),
                   key=lambda x: (round(x[0] / 12), x[1]))
    return " ".join(t for _, _, t in boxes)


@pytest.mark.slow
def test_ocr_reads_captions_back_exactly(world):
    rapidocr = pytest.importorskip("rapidocr_onnxruntime")
    ocr = rapidocr.RapidOCR()
    logo = Image.open(world.image_path(world.entities_of("brand")[0].image_id))
    cases = [
        ([_flag(world, "bf")], "BURKINA FASO"),
        ([_flag(world, "st")], "SAO TOME AND PRINCIPE"),
        ([logo], "GITHUB"),
        ([_flag(world, "fr"), _flag(world, "es")], "FRANCE VS SPAIN"),
        ([_flag(world, "vc")], "SAINT VINCENT AND THE GRENADINES"),
    ]
    for images, text in cases:
        reading = _read(ocr, compose(images, [text]))
        assert reading.endswith(text), (text, reading)
