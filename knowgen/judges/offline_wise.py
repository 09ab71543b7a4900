"""The offline WISE judge: a deterministic smoke-test proxy, not a substitute for a VLM judge.

It scores a WISE image from measurable evidence only, with no network and no
model beyond OCR. Its numbers exist to exercise the WISE pipeline end to end
(CI, demos, quick sanity checks of a run folder); they are **not comparable
with published WISE scores**, which come from GPT-4o (legacy) or
Qwen3.5-35B-A3B (verified) reading the picture. For scores to report, use the
``openai`` WISE judge (e.g. ``--judge openai:model=gpt-4.1``).

What it measures (all recorded in the judgement's ``evidence``):

* **terms**: content words of the prompt and of its explanation (stop words
  and WISE's instruction words such as "image", "should", "depict" removed).
  *Answer terms* are the explanation's words the prompt does not contain: the
  knowledge the model had to supply (``mooncakes`` for "Traditional food of the
  Mid-Autumn Festival"). Each term counts as present when OCR reads it in the
  image (:mod:`knowgen.judges.ocr`, compared with
  :func:`knowgen.judges.textnorm.contains_text`).
* **colours**: colour words of the prompt and explanation (red, green, golden,
  ...; a colour within four words after "not", "no", "without", "than" or
  "instead" is skipped). A colour is present when at least
  :data:`COLOUR_SHARE` of the pixels fall in its hue/saturation/value range.
* **image statistics**: the no-reference proxy of the offline KnowGen judge
  (:func:`knowgen.judges.offline_image.aesthetics_proxy`: contrast,
  colourfulness, sharpness and their mean) plus the share of the image held
  by its eight most common colours (coarsely quantised), which is high for flat
  graphics and low for photographs.

Scores (legacy scale 0, 1, 2):

* **consistency**: 2 when at least one answer term is read and every named
  colour is present (or none is named); 1 when there is some evidence (a
  prompt or answer term read, or a named colour present); 0 otherwise.
* **realism**: 2 when the image looks photographic (sharpness at least
  :data:`REALISM_SHARPNESS` and the eight most common colours cover at most
  :data:`REALISM_PALETTE_SHARE` of it); 1 for any other non-blank image.
* **aesthetic_quality**: 2 when the proxy is at least :data:`AESTHETIC_HIGH`,
  1 when at least :data:`AESTHETIC_LOW`, else 0.
* **verified** score: 1 exactly when consistency is 2, else 0.

A blank or near-uniform image scores 0 everywhere, without OCR.

Known limits: pictures without legible words can reach at most consistency 1
(a correct photograph of mooncakes shows no text), random noise looks
"photographic", and colour words are matched without context. Tune nothing on
this judge's numbers.

Example:
    >>> judge = OfflineWiseJudge(variant="legacy")
    >>> judge.score(task, image).value
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from PIL import Image

from knowgen.errors import DataError
from knowgen.eval.wise_scoring import WiseLegacyJudgement, WiseVerifiedJudgement, check_variant
from knowgen.judges.ocr import get_ocr_engine
from knowgen.judges.offline_image import UNIFORM_STD, aesthetics_proxy
from knowgen.judges.textnorm import contains_text, words
from knowgen.types import Task

logger = logging.getLogger(__name__)

#: Share of pixels from which a named colour counts as present.
COLOUR_SHARE = 0.03
#: Sharpness (proxy scale, 0-1) from which an image can count as photographic.
REALISM_SHARPNESS = 0.3
#: Largest share of the image the eight most common colours may hold in a photograph.
REALISM_PALETTE_SHARE = 0.6
#: Aesthetics proxy from which aesthetic quality is 2 (1 from AESTHETIC_LOW).
AESTHETIC_HIGH = 0.4
AESTHETIC_LOW = 0.15
#: Most terms looked for per task (answer terms first).
MAX_TERMS = 12
_MIN_TERM_LEN = 4
_NEGATIONS = frozenset({"not", "no", "without", "than", "instead", "never", "nor"})
_NEGATION_WINDOW = 4
_SIDE = 96

_STOP = frozenset((
    "about", "above", "across", "after", "again", "against", "along", "also", "although",
    "among", "another", "any", "anything", "appear", "appears", "around", "away", "back",
    "because", "been", "before", "behind", "being", "below", "beneath", "between", "both",
    "but", "came", "can", "cannot", "clear", "clearly", "come", "could", "depict",
    "depicted", "depicting", "depicts", "display", "displayed", "displaying", "displays",
    "does", "doing", "done", "down", "during", "each", "either", "else", "even", "ever",
    "every", "example", "explanation", "from", "further", "generate", "generated",
    "generates", "generating", "generation", "given", "have", "having", "here", "however",
    "image", "images", "include", "includes", "including", "indicate", "indicates",
    "indicating", "instead", "into", "itself", "just", "like", "likely", "made", "make",
    "makes", "making", "many", "might", "model", "more", "most", "much", "must", "near",
    "need", "nearly", "only", "onto", "other", "others", "otherwise", "over", "perhaps",
    "picture", "place", "placed", "possibly", "prompt", "rather", "refer", "referring",
    "refers", "relatively", "represent", "represents", "same", "scene", "seen", "several",
    "shall", "should", "show", "showing", "shown", "shows", "since", "some", "something",
    "such", "than", "that", "their", "them", "then", "there", "therefore", "these", "they",
    "thing", "this", "those", "though", "through", "thus", "together", "toward", "towards",
    "typical", "typically", "under", "until", "upon", "very", "visible", "visibly", "well",
    "were", "what", "when", "where", "whether", "which", "while", "whose", "will", "with",
    "within", "without", "would", "your", "demonstrate", "demonstrating", "demonstrates",
    "illustrate", "illustrating", "illustrates", "specific", "certain", "various",
    "possible", "ensure", "correct", "correctly", "accurate", "accurately",
))

#: Colour words and the predicate name of their pixel range.
_COLOUR_WORDS = {
    "red": "red", "crimson": "red", "scarlet": "red", "orange": "orange",
    "yellow": "yellow", "golden": "yellow", "gold": "yellow", "green": "green",
    "blue": "blue", "cyan": "cyan", "turquoise": "cyan", "teal": "cyan",
    "purple": "purple", "violet": "purple", "pink": "pink", "magenta": "pink",
    "brown": "brown", "black": "black", "white": "white", "gray": "gray", "grey": "gray",
    "silver": "gray",
}


def _colour_masks(image: Image.Image) -> dict[str, np.ndarray]:
    """Boolean pixel masks of each colour range on a small copy of ``image``."""
    small = image.convert("RGB")
    small.thumbnail((_SIDE, _SIDE), Image.Resampling.BOX)
    hsv = np.asarray(small.convert("HSV"), dtype=np.float64) / 255.0
    h, s, v = hsv[..., 0] * 360.0, hsv[..., 1], hsv[..., 2]
    chroma = (s >= 0.25) & (v >= 0.2)
    grey = (s < 0.15) & (v >= 0.2)
    return {
        "red": chroma & ((h < 15) | (h >= 345)),
        "orange": chroma & (h >= 15) & (h < 40) & (v >= 0.6),
        "yellow": chroma & (h >= 40) & (h < 70),
        "green": chroma & (h >= 70) & (h < 165),
        "cyan": chroma & (h >= 165) & (h < 200),
        "blue": chroma & (h >= 180) & (h < 255),
        "purple": chroma & (h >= 255) & (h < 290),
        "pink": chroma & (h >= 290) & (h < 345),
        "brown": chroma & (h >= 10) & (h < 45) & (v < 0.6),
        "black": v < 0.2,
        "white": grey & (v > 0.85),
        "gray": grey & (v <= 0.85),
    }


def named_colours(text: str) -> list[str]:
    """Colour ranges named in ``text``, in order, negated mentions skipped.

    Example:
        >>> named_colours("a faint purple tint rather than a strong red colour")
        ['purple']
    """
    tokens = words(text)
    found: list[str] = []
    for i, tok in enumerate(tokens):
        colour = _COLOUR_WORDS.get(tok)
        if colour is None or colour in found:
            continue
        if _NEGATIONS.intersection(tokens[max(0, i - _NEGATION_WINDOW):i]):
            continue
        found.append(colour)
    return found


def content_terms(text: str) -> list[str]:
    """Content words of ``text`` (no stop words, no colours, at least 4 letters), in order."""
    out: list[str] = []
    for tok in words(text):
        if (len(tok) >= _MIN_TERM_LEN and tok.isalpha() and tok not in _STOP
                and tok not in _COLOUR_WORDS and tok not in out):
            out.append(tok)
    return out


def task_terms(task: Task) -> tuple[list[str], list[str]]:
    """``(answer terms, prompt terms)`` of a WISE task; at most :data:`MAX_TERMS` in all."""
    prompt_terms = content_terms(task.prompt)
    explanation = content_terms(str(task.extra.get("explanation", "")))
    answer = [t for t in explanation if t not in prompt_terms] or explanation
    answer = answer[:MAX_TERMS]
    return answer, prompt_terms[: max(0, MAX_TERMS - len(answer))]


def palette_share(image: Image.Image, top: int = 8) -> float:
    """Share of ``image`` held by its ``top`` most common colours (4 bits per channel)."""
    small = image.convert("RGB")
    small.thumbnail((128, 128), Image.Resampling.BOX)
    q = np.asarray(small, dtype=np.int64) // 16
    codes = (q[..., 0] * 256 + q[..., 1] * 16 + q[..., 2]).ravel()
    counts = np.sort(np.bincount(codes))[::-1]
    return round(float(counts[:top].sum() / max(1, codes.size)), 4)


class OfflineWiseJudge:
    """WISE judge from OCR, colour and image statistics (see the module docstring).

    Args:
        variant: ``"legacy"`` (consistency, realism, aesthetic quality in 0-2) or
            ``"verified"`` (0 or 1).
        ocr: OCR engine for :func:`knowgen.judges.ocr.get_ocr_engine`
            (``"auto"``, ``"rapidocr"`` or ``"tesseract"``).
        colour_share: Share of pixels from which a named colour is present.

    Raises:
        UnknownNameError: for an unknown variant.
    """

    name = "offline"

    def __init__(self, variant: str = "verified", ocr: str = "auto",
                 colour_share: float = COLOUR_SHARE):
        self.variant = check_variant(variant)
        self.ocr_name = ocr
        self.colour_share = float(colour_share)

    def __repr__(self) -> str:
        return f"OfflineWiseJudge(variant={self.variant!r}, ocr={self.ocr_name!r})"

    def score(self, task: Task, image: Image.Image | str
              ) -> WiseLegacyJudgement | WiseVerifiedJudgement:
        """Judge one WISE image; the evidence holds both variants' scores.

        Raises:
            DataError: when the task has no explanation or the image cannot be read.
        """
        legacy, verified = self.judge_both(task, _as_image(image))
        return legacy if self.variant == "legacy" else verified

    def judge_both(self, task: Task, image: Image.Image
                   ) -> tuple[WiseLegacyJudgement, WiseVerifiedJudgement]:
        """The legacy and the verified verdict of one image, from one set of measurements."""
        if not str(task.extra.get("explanation", "")).strip():
            raise DataError(f"WISE task {task.id!r} has no explanation; load it with "
                            "knowgen.benchmarks.wise.WiseBenchmark.")
        rgb = image.convert("RGB")
        ev = self.measure(task, rgb)
        if ev["blank"]:
            c = r = a = 0
            reason = "The image is blank or nearly uniform."
        else:
            c, r, a = _consistency(ev), _realism(ev), _aesthetic(ev)
            reason = _rationale(ev)
        verified = 1 if c == 2 else 0
        ev["scores"] = {"consistency": c, "realism": r, "aesthetic_quality": a,
                        "verified": verified}
        rationale = f"Offline proxy (not a VLM judgement): {reason}"
        return (WiseLegacyJudgement(c, r, a, rationale=rationale, evidence=ev),
                WiseVerifiedJudgement(verified, rationale=rationale, evidence=ev))

    def measure(self, task: Task, image: Image.Image) -> dict[str, Any]:
        """Every measurement the scores are computed from (JSON-ready)."""
        proxy = aesthetics_proxy(image)
        ev: dict[str, Any] = {"judge": "offline-wise-proxy", "proxy": proxy,
                              "blank": proxy["uniform_std"] < UNIFORM_STD}
        if ev["blank"]:
            return ev
        ev["palette_share"] = palette_share(image)
        masks = _colour_masks(image)
        text = f"{task.prompt} {task.extra.get('explanation', '')}"
        ev["colours"] = [{"colour": c, "share": round(float(masks[c].mean()), 4),
                          "found": bool(masks[c].mean() >= self.colour_share)}
                         for c in named_colours(text)]
        answer, prompt_terms = task_terms(task)
        engine = get_ocr_engine(self.ocr_name)
        lines = engine.read(image)
        ev.update(ocr_engine=engine.name, ocr_lines=lines,
                  answer_terms=[{"term": t, "found": contains_text(lines, t)} for t in answer],
                  prompt_terms=[{"term": t, "found": contains_text(lines, t)}
                                for t in prompt_terms])
        return ev


def _as_image(image: Image.Image | str) -> Image.Image:
    if isinstance(image, Image.Image):
        return image
    try:
        with Image.open(image) as im:
            return im.convert("RGB")
    except (OSError, ValueError) as exc:
        raise DataError(f"Cannot read image {str(image)!r} for the WISE judge: {exc}") from exc


def _found(items: list[dict[str, Any]]) -> int:
    return sum(1 for item in items if item["found"])


def _consistency(ev: dict[str, Any]) -> int:
    answer_read = _found(ev["answer_terms"])
    colours_ok = _found(ev["colours"]) == len(ev["colours"])
    if answer_read and colours_ok:
        return 2
    any_evidence = answer_read + _found(ev["prompt_terms"]) + _found(ev["colours"])
    return 1 if any_evidence else 0


def _realism(ev: dict[str, Any]) -> int:
    photographic = (ev["proxy"]["sharpness"] >= REALISM_SHARPNESS
                    and ev["palette_share"] <= REALISM_PALETTE_SHARE)
    return 2 if photographic else 1


def _aesthetic(ev: dict[str, Any]) -> int:
    proxy = ev["proxy"]["proxy"]
    return 2 if proxy >= AESTHETIC_HIGH else 1 if proxy >= AESTHETIC_LOW else 0


def _rationale(ev: dict[str, Any]) -> str:
    def listed(items: list[dict[str, Any]], key: str) -> str:
        hits = [i[key] for i in items if i["found"]]
        return f"{len(hits)}/{len(items)}" + (f" ({', '.join(hits)})" if hits else "")

    parts = [f"answer terms read {listed(ev['answer_terms'], 'term')}",
             f"prompt terms read {listed(ev['prompt_terms'], 'term')}"]
    if ev["colours"]:
        parts.append(f"named colours present {listed(ev['colours'], 'colour')}")
    parts.append(f"sharpness {ev['proxy']['sharpness']:.2f}, "
                 f"top-8 colour share {ev['palette_share']:.2f}, "
                 f"aesthetics proxy {ev['proxy']['proxy']:.2f}")
    return "; ".join(parts) + "."

