"""The offline image judge: the four KnowGen dimensions from measurable evidence.

Deterministic and free; it needs world tasks (their hidden facts name the
entities and texts that must appear). Scores are on the KnowGen scale
{0, 0.5, 1}:

* **visual_correctness**: each required entity is looked for by matching its
  official picture (flag or logo) anywhere in the image
  (:func:`knowgen.judges.matching.find_best`, colour-aware, so look-alikes do
  not pass). All found: 1; some: 0.5; none: 0.
* **text_accuracy**: each required text must be read back by OCR
  (:func:`knowgen.judges.textnorm.read_text`) on its own: a run of whole lines
  that says exactly that text. Every text read so: 1; none read at all: 0;
  anything between (some texts missing, a text only found buried inside longer
  words, or in small letters where the request asked for capitals): 0.5. With
  no required text the dimension is N/A (``text_accuracy_na``) and set to 0.5;
  OCR is then skipped.
* **faithfulness**: the share of all required elements (entities and texts,
  a buried or wrongly cased text counting as present) present. All: 1; at least half: 0.5; less: 0.
* **aesthetics**: a no-reference proxy (:func:`aesthetics_proxy`: the mean of
  contrast, colourfulness and sharpness, each mapped to [0, 1]) compared with
  the ground truth's. At least :data:`AESTHETICS_RATIO` of the GT's: 1;
  lower: 0.5; a degenerate (near-uniform) image: 0.

A blank or near-uniform image scores 0 on every dimension (text too when text
is required) without any matching or OCR.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from knowgen.errors import DataError
from knowgen.judges.matching import find_best
from knowgen.judges.ocr import get_ocr_engine
from knowgen.judges.textnorm import ABSENT, EXACT, read_text
from knowgen.types import ImageJudgement, Task
from knowgen.world.data import load_world

logger = logging.getLogger(__name__)

#: Default match score from which an entity's official picture counts as present.
MATCH_THRESHOLD = 0.8
#: Share of the GT's aesthetics proxy from which aesthetics scores 1.
AESTHETICS_RATIO = 0.85
#: Largest per-channel standard deviation (0-1 scale) of a near-uniform image.
UNIFORM_STD = 0.02
#: Side of the copy the aesthetics proxy is measured on.
_PROXY_SIDE = 256


def aesthetics_proxy(image: Image.Image) -> dict[str, float]:
    """No-reference quality measurements of ``image``, each in [0, 1].

    * ``contrast``: standard deviation of luminance, divided by 0.4;
    * ``colourfulness``: Hasler and Suesstrunk's measure on 0-255 RGB, divided by 150;
    * ``sharpness``: mean gradient magnitude of luminance (0-1 scale, on a copy
      whose longer side is 256 px), divided by 0.05;
    * ``proxy``: the mean of the three;
    * ``uniform_std``: the largest per-channel standard deviation (0-1 scale).

    Each ratio is capped at 1.
    """
    rgb = image.convert("RGB")
    rgb.thumbnail((_PROXY_SIDE, _PROXY_SIDE), Image.Resampling.BOX)
    arr = np.asarray(rgb, dtype=np.float64) / 255.0
    lum = arr @ np.array([0.2126, 0.7152, 0.0722])
    rg = (arr[..., 0] - arr[..., 1]) * 255.0
    yb = (0.5 * (arr[..., 0] + arr[..., 1]) - arr[..., 2]) * 255.0
    colourful = np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean())
    gy, gx = np.gradient(lum)
    values = {
        "contrast": min(1.0, float(lum.std()) / 0.4),
        "colourfulness": min(1.0, float(colourful) / 150.0),
        "sharpness": min(1.0, float(np.hypot(gx, gy).mean()) / 0.05),
    }
    values["proxy"] = sum(values.values()) / 3.0
    values["uniform_std"] = float(arr.reshape(-1, 3).std(axis=0).max())
    return {k: round(v, 4) for k, v in values.items()}


def _level(found: int, total: int) -> float:
    """1 when all ``total`` were found, 0.5 when some, 0 when none."""
    return 1.0 if found == total else (0.5 if found else 0.0)


@functools.lru_cache(maxsize=256)
def _load_rgb(path: str, mtime: float) -> Image.Image:
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except (OSError, UnidentifiedImageError) as exc:
        raise DataError(f"Cannot read image {path}: {exc}") from exc


def _read_image(path: Path) -> Image.Image:
    if not path.is_file():
        raise DataError(f"Image {path} does not exist.")
    return _load_rgb(str(path), path.stat().st_mtime)


@functools.lru_cache(maxsize=64)
def _gt_proxy(path: str, mtime: float) -> dict[str, float]:
    return aesthetics_proxy(_load_rgb(path, mtime))


def read_required_texts(image: Image.Image, texts: list[str], upper: bool, ocr: str,
                        evidence: dict[str, Any]) -> list[str]:
    """How OCR reads each of ``texts`` in ``image``; the readings go into ``evidence``.

    Args:
        image: The generated image.
        texts: The required texts (no OCR runs when there are none).
        upper: Whether the request asked for capital letters.
        ocr: OCR engine name for :func:`knowgen.judges.ocr.get_ocr_engine`.
        evidence: Gains ``ocr_engine``, ``ocr_lines`` and ``texts``.

    Returns:
        One reading per text (:data:`~knowgen.judges.textnorm.EXACT`, ``ABSENT`` or a partial one).
    """
    if not texts:
        return []
    engine = get_ocr_engine(ocr)
    lines = engine.read(image)
    found = [read_text(lines, t, upper) for t in texts]
    checks = [{"text": t, "found": r != ABSENT, "reading": r} for t, r in zip(texts, found)]
    evidence.update(ocr_engine=engine.name, ocr_lines=lines, texts=checks)
    return found


def text_level(texts: list[str], readings: list[str]) -> float:
    """Text accuracy: 1 when every text is read exactly, 0 when none at all, else 0.5.

    With no required text the dimension is N/A and 0.5.
    """
    if not texts:
        return 0.5
    exact = sum(r == EXACT for r in readings)
    found = sum(r != ABSENT for r in readings)
    return 1.0 if exact == len(texts) else (0.5 if found else 0.0)


def describe_texts(texts: list[str], readings: list[str]) -> str:
    """A short reason for the text score, e.g. ``"texts 1/2 read exactly, 1 only in part"``."""
    if not texts:
        return "no text required"
    exact = sum(r == EXACT for r in readings)
    partial = sum(r != ABSENT for r in readings) - exact
    return f"texts {exact}/{len(texts)} read exactly" + (f", {partial} only in part" if partial else "")


def blank_judgement(proxy: dict[str, float], needs_text: bool) -> ImageJudgement:
    """The verdict on a blank or near-uniform image: 0 everywhere (text N/A stays 0.5)."""
    return ImageJudgement(
        faithfulness=0.0, visual_correctness=0.0,
        text_accuracy=0.0 if needs_text else 0.5, text_accuracy_na=not needs_text,
        aesthetics=0.0, rationale="The image is blank or nearly uniform.",
        evidence={"blank": True, "aesthetics": {"image": proxy}},
    )


def aesthetics_level(task: Task, proxy: dict[str, float],
                     ratio_needed: float = AESTHETICS_RATIO) -> tuple[float, dict[str, Any]]:
    """Aesthetics against the task's GT: 1 when the proxy reaches ``ratio_needed`` of the GT's.

    Raises:
        DataError: when the task has no readable ground-truth image.
    """
    if not task.gt_image:
        raise DataError(
            f"Task {task.id!r} has no gt_image: aesthetics is rated against the ground "
            "truth image."
        )
    path = Path(task.gt_image)
    if not path.is_file():
        raise DataError(f"Ground-truth image {path} of task {task.id!r} does not exist.")
    gt = _gt_proxy(str(path), path.stat().st_mtime)
    ratio = proxy["proxy"] / gt["proxy"] if gt["proxy"] > 0 else 1.0
    score = 1.0 if ratio >= ratio_needed else 0.5
    return score, {"image": proxy, "gt": gt, "gt_proxy": gt["proxy"], "ratio": round(ratio, 4)}


class OfflineImageJudge:
    """Scores an image on the KnowGen rubric from matching, OCR and image statistics.

    Args:
        ocr: OCR engine name for :func:`knowgen.judges.ocr.get_ocr_engine`
            (``"auto"``, ``"rapidocr"`` or ``"tesseract"``).
        match_threshold: Match score from which an entity counts as depicted.
        data_dir: World folder holding the official pictures (default: the shipped world).
        aesthetics_ratio: Share of the GT's aesthetics proxy from which aesthetics is 1.
    """

    def __init__(self, ocr: str = "auto", match_threshold: float = MATCH_THRESHOLD,
                 data_dir: str | None = None, aesthetics_ratio: float = AESTHETICS_RATIO):
        self.ocr_name = ocr
        self.match_threshold = float(match_threshold)
        self.data_dir = data_dir
        self.aesthetics_ratio = float(aesthetics_ratio)

    def score(self, task: Task, image: Image.Image) -> ImageJudgement:
        """Judge ``image`` for ``task`` on the four KnowGen dimensions.

        Raises:
            DataError: when the task has no hidden facts (not a world task), or a
                picture it names cannot be read.
        """
        facts = task.facts
        if facts is None:
            raise DataError(
                f"Task {task.id!r} has no facts: the offline image judge needs world tasks "
                "(benchmark 'world'). Use an API judge (e.g. --judge openai) for other benchmarks."
            )
        rgb = image.convert("RGB")
        proxy = aesthetics_proxy(rgb)
        texts = [t for t in facts.required_text if t.strip()]
        if proxy["uniform_std"] < UNIFORM_STD:
            return blank_judgement(proxy, bool(texts))
        evidence: dict[str, Any] = {"blank": False, "match_threshold": self.match_threshold}
        reasons = []

        entities = self._entities(task, rgb)
        found_entities = sum(e["found"] for e in entities)
        evidence["entities"] = entities
        if entities:
            listed = ", ".join(f"{e['name']} {e['score']:.2f}" for e in entities)
            reasons.append(f"entities {found_entities}/{len(entities)} matched ({listed})")
            visual = _level(found_entities, len(entities))
        else:
            visual = 1.0
            reasons.append("no entity required")

        readings = read_required_texts(rgb, texts, facts.text_case == "upper", self.ocr_name,
                                       evidence)
        found_texts = sum(r != ABSENT for r in readings)
        text_score = text_level(texts, readings)
        reasons.append(describe_texts(texts, readings))

        total = len(entities) + len(texts)
        present = found_entities + found_texts
        faith = 1.0 if present == total else (0.5 if 2 * present >= total else 0.0)
        reasons.append(f"elements {present}/{total} present")

        aesthetics, aes_evidence = aesthetics_level(task, proxy, self.aesthetics_ratio)
        evidence["aesthetics"] = aes_evidence
        reasons.append(f"aesthetics proxy {proxy['proxy']:.2f} vs GT {aes_evidence['gt_proxy']:.2f}")
        return ImageJudgement(
            faithfulness=faith, visual_correctness=visual, text_accuracy=text_score,
            text_accuracy_na=not texts, aesthetics=aesthetics,
            rationale="; ".join(reasons) + ".", evidence=evidence,
        )

    def _entities(self, task: Task, image: Image.Image) -> list[dict[str, Any]]:
        world = load_world(self.data_dir)
        out = []
        for ent in task.facts.entities if task.facts else ():
            if ent.image_id not in world.images:
                raise DataError(
                    f"Task {task.id!r} names image {ent.image_id!r}, which the world in "
                    f"{world.data_dir} does not hold. Was the task made from another world?"
                )
            template = _read_image(world.image_path(ent.image_id))
            match = find_best(image, template)
            out.append({
                "entity_id": ent.entity_id, "name": ent.name, "image_id": ent.image_id,
                "score": match.score, "correlation": match.correlation,
                "colour_share": match.colour_share, "continuation": match.continuation,
                "box": list(match.box),
                "found": match.score >= self.match_threshold,
            })
        return out

