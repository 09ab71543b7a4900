"""WISE scoring for both variants of the benchmark.

* **legacy**: a judge gives each image a Consistency, Realism and Aesthetic
  Quality score in {0, 1, 2}; the image's WiScore is
  ``(0.7 C + 0.2 R + 0.1 A) / 2``. A category scores the mean WiScore of its
  images and the overall is
  ``0.4 cultural + 0.167 time + 0.133 space + 0.1 (biology + physics + chemistry)``.
* **verified**: a judge gives each image 0 or 1; a category scores the mean and
  the overall is ``0.4 culture + 0.12 (time + space + biology + physics + chemistry)``.

Categories are fixed ranges of prompt ids (see :data:`WISE_RANGES`). When an id
of the requested range has no score, the overall is refused (``None`` with a
reason), exactly as the upstream calculators refuse to print one; the category
scores of what is present are still reported.

Example:
    >>> s = score_wise({i: 1 for i in range(1, 1001)}, "verified")
    >>> s.overall
    1.0
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from knowgen.errors import DataError, UnknownNameError

logger = logging.getLogger(__name__)

#: Categories of each variant as ``(name, first id, last id)``, in upstream order.
WISE_RANGES: dict[str, tuple[tuple[str, int, int], ...]] = {
    "legacy": (
        ("cultural", 1, 400), ("time", 401, 567), ("space", 568, 700),
        ("biology", 701, 800), ("physics", 801, 900), ("chemistry", 901, 1000),
    ),
    "verified": (
        ("culture", 1, 400), ("time", 401, 520), ("space", 521, 640),
        ("biology", 641, 760), ("physics", 761, 880), ("chemistry", 881, 1000),
    ),
}

#: Weight of each category in the overall score.
WISE_WEIGHTS: dict[str, dict[str, float]] = {
    "legacy": {"cultural": 0.4, "time": 0.167, "space": 0.133,
               "biology": 0.1, "physics": 0.1, "chemistry": 0.1},
    "verified": {"culture": 0.4, "time": 0.12, "space": 0.12,
                 "biology": 0.12, "physics": 0.12, "chemistry": 0.12},
}

#: Every prompt id of a full WISE release.
WISE_IDS = range(1, 1001)
#: Digits shown by default in summaries (the verified leaderboard's precision).
DISPLAY_DIGITS = 4
_LEGACY_SCALE = (0, 1, 2)


def check_variant(variant: str) -> str:
    """Return ``variant`` if it is ``"legacy"`` or ``"verified"``.

    Raises:
        UnknownNameError: for any other value.
    """
    if variant not in WISE_RANGES:
        raise UnknownNameError("WISE variant", variant, WISE_RANGES)
    return variant


def category_of(variant: str, prompt_id: int) -> str:
    """The category of ``prompt_id`` in ``variant``.

    Raises:
        DataError: when the id lies outside 1..1000.
    """
    for name, first, last in WISE_RANGES[check_variant(variant)]:
        if first <= prompt_id <= last:
            return name
    raise DataError(f"WISE prompt id {prompt_id} is outside 1..1000; check the prompt files.")


def category_ids(variant: str, category: str) -> range:
    """The prompt ids of ``category`` in ``variant``."""
    for name, first, last in WISE_RANGES[check_variant(variant)]:
        if name == category:
            return range(first, last + 1)
    raise UnknownNameError("WISE category", category, WISE_WEIGHTS[variant])


def wiscore(consistency: int, realism: int, aesthetic_quality: int) -> float:
    """The legacy WiScore of one image, ``(0.7 C + 0.2 R + 0.1 A) / 2``, in [0, 1].

    Raises:
        DataError: when a score is not 0, 1 or 2.
    """
    for name, value in (("consistency", consistency), ("realism", realism),
                        ("aesthetic_quality", aesthetic_quality)):
        if isinstance(value, bool) or value not in _LEGACY_SCALE:
            raise DataError(f"WISE {name} must be 0, 1 or 2, got {value!r}.")
    return (0.7 * consistency + 0.2 * realism + 0.1 * aesthetic_quality) / 2


@dataclass(frozen=True)
class WiseLegacyJudgement:
    """A legacy WISE verdict: three scores in {0, 1, 2}."""

    consistency: int
    realism: int
    aesthetic_quality: int
    rationale: str = ""
    evidence: dict[str, Any] = field(default_factory=dict, compare=False)
    """Machine-readable measurements behind the scores (offline judge), or ``{}``."""

    def __post_init__(self) -> None:
        wiscore(self.consistency, self.realism, self.aesthetic_quality)

    @property
    def value(self) -> float:
        """The image's WiScore."""
        return wiscore(self.consistency, self.realism, self.aesthetic_quality)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict: the three scores, ``rationale``, ``wiscore`` and ``evidence`` if any."""
        data: dict[str, Any] = {"consistency": self.consistency, "realism": self.realism,
                                "aesthetic_quality": self.aesthetic_quality,
                                "rationale": self.rationale, "wiscore": self.value}
        if self.evidence:
            data["evidence"] = self.evidence
        return data


@dataclass(frozen=True)
class WiseVerifiedJudgement:
    """A verified WISE verdict: 0 or 1."""

    score: int
    rationale: str = ""
    evidence: dict[str, Any] = field(default_factory=dict, compare=False)
    """Machine-readable measurements behind the score (offline judge), or ``{}``."""

    def __post_init__(self) -> None:
        if isinstance(self.score, bool) or self.score not in (0, 1):
            raise DataError(f"A verified WISE score must be 0 or 1, got {self.score!r}.")

    @property
    def value(self) -> float:
        """The image's score as a float."""
        return float(self.score)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict: ``score``, ``rationale`` and ``evidence`` if any."""
        data: dict[str, Any] = {"score": self.score, "rationale": self.rationale}
        if self.evidence:
            data["evidence"] = self.evidence
        return data


@dataclass
class WiseSummary:
    """Category and overall WISE scores (full precision; round with :meth:`to_dict`).

    Attributes:
        variant: ``"legacy"`` or ``"verified"``.
        categories: Mean score per category over its scored ids (``None`` if none).
        counts: Number of scored ids per category.
        overall: The weighted overall, or ``None`` when refused.
        missing_ids: Requested ids that have no score, sorted.
        reason: Why the overall was refused (``None`` when it was computed).
    """

    variant: str
    categories: dict[str, float | None]
    counts: dict[str, int]
    overall: float | None
    missing_ids: list[int] = field(default_factory=list)
    reason: str | None = None

    def to_dict(self, digits: int = DISPLAY_DIGITS) -> dict[str, Any]:
        """Plain dict with scores rounded to ``digits`` decimals."""

        def r(v: float | None) -> float | None:
            return None if v is None else round(v, digits)

        return {
            "variant": self.variant,
            "categories": {c: r(v) for c, v in self.categories.items()},
            "counts": dict(self.counts),
            "overall": r(self.overall),
            "n_missing": len(self.missing_ids),
            "missing_ids": list(self.missing_ids),
            "reason": self.reason,
        }


def weighted_overall(category_scores: Mapping[str, float], variant: str) -> float:
    """The WISE overall of ``variant`` from its six category scores (full precision).

    Raises:
        DataError: when a category is missing.
    """
    weights = WISE_WEIGHTS[check_variant(variant)]
    absent = [c for c in weights if category_scores.get(c) is None]
    if absent:
        raise DataError(f"Cannot compute the WISE {variant} overall without: {', '.join(absent)}.")
    return sum(w * float(category_scores[c]) for c, w in weights.items())


def format_id_ranges(ids: Iterable[int]) -> str:
    """``[1, 2, 3, 7]`` -> ``"1-3, 7"``."""
    out: list[str] = []
    items = sorted(set(ids))
    start = prev = None
    for i in items + [None]:  # type: ignore[list-item]
        if start is not None and (i is None or i != prev + 1):
            out.append(str(start) if start == prev else f"{start}-{prev}")
            start = None
        if i is not None and start is None:
            start = i
        prev = i
    return ", ".join(out)


def score_wise(scores: Mapping[int, float], variant: str,
               requested: Iterable[int] | None = None) -> WiseSummary:
    """Aggregate per-image scores of one variant.

    Args:
        scores: Prompt id -> the image's score (WiScore for legacy, 0/1 for verified).
        variant: ``"legacy"`` or ``"verified"``.
        requested: Ids that should be scored (default: all of 1..1000). Missing
            ones refuse the overall; an overall also needs all 1000 ids requested.

    Raises:
        DataError: for an id outside 1..1000 or a score outside [0, 1].
    """
    check_variant(variant)
    wanted = set(WISE_IDS if requested is None else (int(i) for i in requested))
    per_cat: dict[str, list[float]] = {name: [] for name, _, _ in WISE_RANGES[variant]}
    for pid, value in scores.items():
        pid = int(pid)
        if not 0.0 <= float(value) <= 1.0:
            raise DataError(f"WISE score of prompt {pid} is {value!r}; scores lie in [0, 1].")
        cat = category_of(variant, pid)
        if pid in wanted:
            per_cat[cat].append(float(value))
    missing = sorted(i for i in wanted if i not in scores)
    cats = {c: (sum(v) / len(v) if v else None) for c, v in per_cat.items()}
    counts = {c: len(v) for c, v in per_cat.items()}
    reason = None
    overall = None
    if missing:
        reason = (f"{len(missing)} requested prompt id(s) have no score "
                  f"({format_id_ranges(missing[:200])}{', ...' if len(missing) > 200 else ''}); "
                  "the overall needs every id, so it is not reported.")
    elif not wanted.issuperset(WISE_IDS):
        reason = (f"only {len(wanted)} of the 1000 prompt ids were requested; "
                  "the overall needs all six categories complete.")
    else:
        overall = weighted_overall(cats, variant)  # type: ignore[arg-type]
    if reason:
        logger.warning("WISE %s overall refused: %s", variant, reason)
    return WiseSummary(variant, cats, counts, overall, missing, reason)


def _as_int(value: Any) -> int:
    """An integral score as int; 1.5, True or "x" raise ValueError."""
    if isinstance(value, bool) or float(value) != int(float(value)):
        raise ValueError(f"{value!r} is not a whole number")
    return int(float(value))


def score_wise_records(records: Iterable[Mapping[str, Any]], variant: str,
                       requested: Iterable[int] | None = None) -> WiseSummary:
    """Aggregate judge records ``{"prompt_id", ...scores}`` of one variant.

    Legacy records carry ``consistency``, ``realism`` and ``aesthetic_quality``;
    verified records carry ``score``.

    Raises:
        DataError: for a record without its scores, an off-scale score, or a duplicate id.
    """
    check_variant(variant)
    scores: dict[int, float] = {}
    for rec in records:
        try:
            pid = int(rec["prompt_id"])
            if variant == "legacy":
                value = WiseLegacyJudgement(_as_int(rec["consistency"]), _as_int(rec["realism"]),
                                            _as_int(rec["aesthetic_quality"])).value
            else:
                value = WiseVerifiedJudgement(_as_int(rec["score"])).value
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"WISE {variant} record {dict(rec)!r} lacks a valid score "
                            f"({exc}); re-run the judge on it.") from exc
        if pid in scores:
            raise DataError(f"WISE prompt id {pid} is scored twice; keep one record per image.")
        scores[pid] = value
    return score_wise(scores, variant, requested)
