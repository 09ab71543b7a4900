"""Reading text back from images: a small OCR interface and two engines.

* :class:`RapidOcrEngine` wraps ``rapidocr_onnxruntime`` (its models ship inside
  the wheel, so it works offline); it is the always-available default.
* :class:`TesseractEngine` runs the ``tesseract`` program when it is on PATH
  (faster on CPU).

:func:`get_ocr_engine` picks one by name (``"auto"``: tesseract when present,
else rapidocr) and returns a shared instance. Every engine caches its readings
in an LRU keyed by a hash of the image pixels, so judging the same image twice
costs one OCR run.
"""

from __future__ import annotations

import functools
import hashlib
import io
import logging
import shutil
import subprocess
import threading
from collections import OrderedDict
from typing import Protocol, runtime_checkable

import numpy as np
from PIL import Image

from knowgen.errors import KnowgenError, UnknownNameError

logger = logging.getLogger(__name__)

#: Images whose readings each engine keeps.
CACHE_SIZE = 256
OCR_ENGINES = ("auto", "rapidocr", "tesseract")


class OcrError(KnowgenError):
    """An OCR engine failed on an image."""


@runtime_checkable
class OcrEngine(Protocol):
    """Reads the text lines of an image."""

    name: str

    def read(self, image: Image.Image) -> list[str]:
        """Text lines found in ``image``, top to bottom, left to right."""
        ...


def image_key(image: Image.Image) -> str:
    """A hash of the pixels, mode and size of ``image`` (the OCR cache key)."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{image.mode}|{image.size}".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


class _CachedEngine:
    """Adds a thread-safe LRU cache of readings to an engine's ``_read``."""

    name = "base"

    def __init__(self, cache_size: int = CACHE_SIZE):
        self._cache: OrderedDict[str, list[str]] = OrderedDict()
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()

    def read(self, image: Image.Image) -> list[str]:
        """Text lines found in ``image``, top to bottom, left to right (cached)."""
        rgb = image.convert("RGB")
        key = image_key(rgb)
        with self._cache_lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return list(self._cache[key])
        lines = self._read(rgb)
        with self._cache_lock:
            self._cache[key] = lines
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return list(lines)

    def _read(self, image: Image.Image) -> list[str]:  # pragma: no cover - abstract
        raise NotImplementedError


DET_LIMIT_SIDE = 640
"""Longest side the text detector works at (larger images are scaled down)."""


class RapidOcrEngine(_CachedEngine):
    """OCR with RapidOCR on onnxruntime (CPU); the model is loaded once, at first use.

    Args:
        min_score: Recognised boxes with a lower confidence are dropped.
        cache_size: Images whose readings are kept.
    """

    name = "rapidocr"

    def __init__(self, min_score: float = 0.5, cache_size: int = CACHE_SIZE):
        super().__init__(cache_size)
        self.min_score = min_score
        self._engine = None
        self._lock = threading.Lock()

    def _load(self):
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ImportError as exc:
            raise OcrError("The rapidocr engine needs the 'rapidocr-onnxruntime' package: "
                           "pip install rapidocr-onnxruntime") from exc
        logging.getLogger("RapidOCR").setLevel(logging.WARNING)
        # The stock detector upscales every image so its short side is 736 px;
        # capping the long side instead keeps 512 px renders at their size and
        # halves the time. Upright text needs no orientation classifier.
        return RapidOCR(det_limit_side_len=DET_LIMIT_SIDE, det_limit_type="max", use_cls=False)

    def _read(self, image: Image.Image) -> list[str]:
        bgr = np.ascontiguousarray(np.asarray(image)[:, :, ::-1])
        with self._lock:  # the engine keeps per-call state: one call at a time
            if self._engine is None:
                self._engine = self._load()
            try:
                result, _ = self._engine(bgr)
            except Exception as exc:  # onnxruntime raises many error types
                raise OcrError(f"RapidOCR failed on a {image.size} image: {exc}") from exc
        boxes = []
        for box, text, score in result or []:
            if float(score) >= self.min_score and str(text).strip():
                ys = [p[1] for p in box]
                xs = [p[0] for p in box]
                boxes.append((min(ys), max(ys), min(xs), str(text).strip()))
        return _reading_order(boxes)


def _reading_order(boxes: list[tuple[float, float, float, str]]) -> list[str]:
    """Texts of ``(top, bottom, left, text)`` boxes, row by row, left to right in a row.

    Boxes whose vertical centres fall within half a box height share a row.
    """
    rows: list[list[tuple[float, float, float, str]]] = []
    for box in sorted(boxes):
        centre = (box[0] + box[1]) / 2
        if rows:
            last = rows[-1][0]
            if abs(centre - (last[0] + last[1]) / 2) <= max(last[1] - last[0], 1) / 2:
                rows[-1].append(box)
                continue
        rows.append([box])
    return [" ".join(b[3] for b in sorted(row, key=lambda b: b[2])) for row in rows]


class TesseractEngine(_CachedEngine):
    """OCR with the ``tesseract`` program (page segmentation mode 3, automatic).

    Args:
        binary: Program name or path.
        lang: Tesseract language(s), e.g. ``"eng"``.
        timeout_s: Longest run per image.
        cache_size: Images whose readings are kept.

    Raises:
        OcrError: when the program is not found.
    """

    name = "tesseract"

    def __init__(self, binary: str = "tesseract", lang: str = "eng", timeout_s: float = 30.0,
                 cache_size: int = CACHE_SIZE):
        super().__init__(cache_size)
        path = shutil.which(binary)
        if path is None:
            raise OcrError(f"The tesseract engine needs the {binary!r} program on PATH: install "
                           "the system package 'tesseract-ocr', or use ocr='rapidocr'.")
        self.binary, self.lang, self.timeout_s = path, lang, timeout_s

    def _read(self, image: Image.Image) -> list[str]:
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        cmd = [self.binary, "stdin", "stdout", "-l", self.lang, "--psm", "3"]
        try:
            proc = subprocess.run(cmd, input=buf.getvalue(), capture_output=True,
                                  timeout=self.timeout_s, check=False)
        except subprocess.TimeoutExpired as exc:
            raise OcrError(f"tesseract took longer than {self.timeout_s} s on one image.") from exc
        if proc.returncode != 0:
            err = proc.stderr.decode("utf-8", "replace").strip()[-300:]
            raise OcrError(f"tesseract failed (exit {proc.returncode}): {err}")
        text = proc.stdout.decode("utf-8", "replace")
        return [line.strip() for line in text.splitlines() if line.strip()]


def tesseract_available(binary: str = "tesseract") -> bool:
    """True when the tesseract program is on PATH."""
    return shutil.which(binary) is not None


@functools.cache
def _engine(name: str) -> OcrEngine:
    if name == "tesseract":
        return TesseractEngine()
    return RapidOcrEngine()


def get_ocr_engine(name: str = "auto") -> OcrEngine:
    """The shared OCR engine called ``name``.

    Args:
        name: ``"auto"`` (tesseract when on PATH, else rapidocr), ``"rapidocr"``
            or ``"tesseract"``.

    Raises:
        UnknownNameError: for another name.
        OcrError: when the chosen engine is not installed.
    """
    name = str(name).strip().lower()
    if name not in OCR_ENGINES:
        raise UnknownNameError("OCR engine", name, OCR_ENGINES)
    if name == "auto":
        name = "tesseract" if tesseract_available() else "rapidocr"
    return _engine(name)
