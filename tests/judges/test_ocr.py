"""OCR engines on real rendered captions."""

import shutil

import pytest
from PIL import Image

from knowgen.errors import UnknownNameError
from knowgen.generators.layout import compose
from knowgen.judges import ocr as ocr_mod
from knowgen.judges.ocr import (
    OcrEngine,
    OcrError,
    RapidOcrEngine,
    TesseractEngine,
    get_ocr_engine,
    image_key,
)
from knowgen.judges.textnorm import contains_text


@pytest.fixture(scope="module")
def poster():
    return compose([], ["OUAGADOUGOU", "FRANC CFA 2024"], (512, 512))


@pytest.mark.slow
def test_rapidocr_reads_captions_in_order(poster):
    engine = RapidOcrEngine()
    lines = engine.read(poster)
    assert isinstance(engine, OcrEngine)
    assert contains_text(lines, "OUAGADOUGOU") and contains_text(lines, "FRANC CFA 2024")
    assert next(i for i, line in enumerate(lines) if "OUAGA" in line.upper()) < len(lines) - 1


def test_readings_are_cached_by_pixels(poster, monkeypatch):
    engine = RapidOcrEngine()
    calls = []
    monkeypatch.setattr(engine, "_read", lambda img: calls.append(img.size) or ["X"])
    assert engine.read(poster) == ["X"]
    assert engine.read(poster.copy()) == ["X"]
    assert calls == [(512, 512)]
    other = poster.copy()
    other.putpixel((0, 0), (1, 2, 3))
    engine.read(other)
    assert len(calls) == 2
    assert image_key(poster) == image_key(poster.convert("RGB")) != image_key(other)


def test_blank_image_reads_nothing():
    assert RapidOcrEngine().read(Image.new("RGB", (64, 64), "white")) == []


def test_get_ocr_engine_names():
    with pytest.raises(UnknownNameError, match="rapidocr"):
        get_ocr_engine("easyocr")
    auto = get_ocr_engine("auto")
    expected = "tesseract" if shutil.which("tesseract") else "rapidocr"
    assert auto.name == expected
    assert get_ocr_engine("RapidOCR") is get_ocr_engine("rapidocr")


def test_tesseract_missing_binary_is_a_clear_error():
    with pytest.raises(OcrError, match="tesseract-ocr"):
        TesseractEngine(binary="no-such-tesseract-binary")


@pytest.mark.skipif(not ocr_mod.tesseract_available(), reason="tesseract is not on PATH")
def test_tesseract_reads_captions(poster):
    lines = TesseractEngine().read(poster)
    assert contains_text(lines, "OUAGADOUGOU")


def _fake_tesseract(tmp_path, body):
    """A stand-in ``tesseract`` program (shell script) for the subprocess plumbing."""
    exe = tmp_path / "fake-tesseract"
    exe.write_text("#!/bin/sh\n" + body, encoding="utf-8")
    exe.chmod(0o755)
    return str(exe)


@pytest.mark.skipif(shutil.which("sh") is None, reason="needs a POSIX shell")
def test_tesseract_engine_passes_png_on_stdin_and_splits_lines(tmp_path):
    # Reads stdin; answers only when it is a PNG and the arguments are as documented.
    exe = _fake_tesseract(tmp_path, (
        'head -c 4 | od -An -c | grep -q "P   N   G" || exit 3\n'
        '[ "$1 $2 $3 $4 $5 $6" = "stdin stdout -l eng --psm 3" ] || exit 4\n'
        'printf "HELLO\\n\\n  WORLD  \\n"\n'
    ))
    engine = TesseractEngine(binary=exe)
    assert engine.read(Image.new("RGB", (32, 16), "white")) == ["HELLO", "WORLD"]


def test_tesseract_engine_failure_is_an_ocr_error(tmp_path):
    exe = _fake_tesseract(tmp_path, 'cat > /dev/null; echo "bad image" >&2; exit 1\n')
    with pytest.raises(OcrError, match="bad image"):
        TesseractEngine(binary=exe).read(Image.new("RGB", (8, 8)))
