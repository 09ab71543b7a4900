"""Scores of a submission, recomputed from its per-sample judgements.

Submitted totals (``summary.json``, each sample's ``overall``) are never
trusted: they are compared with the recomputed values, every disagreement is
reported as a warning, and the recomputed values are what the board shows.
KnowGen-rubric benchmarks (``world``, ``knowgen``) use
:func:`knowgen.eval.scoring.aggregate_knowgen`; ``wise`` uses
:func:`knowgen.eval.wise_scoring.score_wise_records`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from knowgen.errors import DataError
from knowgen.eval.scoring import DIMENSIONS, SampleScore, aggregate_knowgen
from knowgen.eval.wise_scoring import score_wise_records
from knowgen.leaderboard.report import Report
from knowgen.leaderboard.schema import SampleRecord
from knowgen.types import ImageJudgement

logger = logging.getLogger(__name__)

#: Difference from which a submitted number counts as disagreeing.
EPSILON = 1e-4


def rubric_of(benchmark: str) -> str:
    """``"wise"`` for the WISE benchmark, ``"knowgen"`` for every other."""
    return "wise" if benchmark == "wise" else "knowgen"


def sample_overall(scores: Mapping[str, Any]) -> float:
    """A sample's KnowGen overall, recomputed from its four dimension scores."""
    s = SampleScore.from_mapping("", "", scores)
    return ImageJudgement(s.faithfulness, s.visual_correctness, s.text_accuracy,
                          s.text_accuracy_na, s.aesthetics).overall


def knowgen_scores(samples: list[SampleRecord], categories: Mapping[str, str]) -> dict[str, Any]:
    """Board scores; ``categories`` maps each id the benchmark asks for to its category.

    Every asked-for sample that was not evaluated (``success`` false, no
    judgement, or no line at all) counts as 0 on all four dimensions, so leaving
    hard samples out can only lower a score. ``coverage`` (evaluated / asked for)
    is stored beside the scores; ``evaluated_only`` keeps the K-Score over the
    evaluated samples alone, and ``detail`` its aggregation (what a run's own
    ``summary.json`` reports, and what submitted totals are compared with).
    """
    evaluated = [SampleScore.from_mapping(s.id, categories.get(s.id, s.meta.category),
                                          s.image_judgement.model_dump())
                 for s in samples if s.success and s.image_judgement is not None]
    asked = dict(categories) or {s.id: s.meta.category for s in samples}
    scored = {item.id for item in evaluated}
    zeros = [SampleScore(sid, cat, 0.0, 0.0, 0.0, False, 0.0)
             for sid, cat in asked.items() if sid not in scored]
    ranked = aggregate_knowgen([*evaluated, *zeros])
    own = aggregate_knowgen(evaluated)
    return {
        "rubric": "knowgen",
        "headline": ranked.k_score,
        "headline_label": "K-Score",
        "groups": {g: s.avg_scores["overall"] for g, s in ranked.groups.items()},
        "categories": {c: s.avg_scores["overall"] for c, s in sorted(ranked.categories.items())},
        "dimensions": {d: ranked.overall.avg_scores[d] for d in DIMENSIONS},
        "n_evaluated": len(evaluated),
        "n_expected": len(asked),
        "coverage": coverage(len(evaluated), len(asked)),
        "not_evaluated_as": 0.0,
        "evaluated_only": {"headline": own.k_score},
        "detail": own.to_dict(),
        "ranking_detail": ranked.to_dict(),
    }


def coverage(n_evaluated: int, n_expected: int) -> float:
    """Share of the asked-for samples that were evaluated (4 decimals; 0 when none asked)."""
    return round(n_evaluated / n_expected, 4) if n_expected else 0.0


def wise_scores(samples: list[SampleRecord], variant: str, requested: list[int]) -> dict[str, Any]:
    """Board scores of a WISE submission (overall ``None`` when ids are missing).

    Raises:
        DataError: for a WISE judgement off its variant's scale.
    """
    records = [{"prompt_id": int(s.id), **s.wise_judgement.model_dump(exclude_none=True)}
               for s in samples if s.success and s.wise_judgement is not None]
    summary = score_wise_records(records, variant, requested)
    data = summary.to_dict()
    n_expected = len(requested) or len(samples)
    return {
        "rubric": "wise",
        "headline": data["overall"],
        "headline_label": f"WISE {variant}",
        "groups": {},
        "categories": {c: v for c, v in data["categories"].items() if v is not None},
        "dimensions": {},
        "n_evaluated": len(records),
        "n_expected": n_expected,
        "coverage": coverage(len(records), n_expected),
        "detail": data,
    }


def check_wise_sample(sample: SampleRecord, variant: str, where: str, report: Report) -> None:
    """Report a WISE judgement that lacks its scores or leaves its scale."""
    j = sample.wise_judgement
    if j is None:
        return
    if variant == "legacy":
        for name in ("consistency", "realism", "aesthetic_quality"):
            value = getattr(j, name)
            if value not in (0, 1, 2):
                report.error(f"{where}: wise_judgement.{name}",
                             f"{value!r} is off the legacy scale (0, 1, 2)")
    elif j.score not in (0, 1):
        report.error(f"{where}: wise_judgement.score", f"{j.score!r} is off the verified "
                     "scale (0, 1)")


def compare_samples(samples: list[tuple[str, SampleRecord]], report: Report) -> int:
    """Warn about each sample whose submitted ``overall`` disagrees; returns how many did."""
    n = 0
    for where, s in samples:
        j = s.image_judgement
        if j is None or j.overall is None:
            continue
        recomputed = sample_overall(j.model_dump())
        if abs(float(j.overall) - recomputed) > EPSILON:
            n += 1
            report.warn(f"{where}: image_judgement.overall",
                        f"submitted {j.overall:g}, recomputed {recomputed:g} from the four "
                        "scores; the recomputed value is used")
    return n


def compare_summary(summary: Any, scores: Mapping[str, Any], report: Report) -> int:
    """Warn about each total in ``summary.json`` that disagrees with ``scores``."""
    if scores["rubric"] != "knowgen" or not isinstance(summary, Mapping):
        return 0
    detail = scores["detail"]
    claims: list[tuple[str, Any, float]] = [("k_score", summary.get("k_score"), detail["k_score"])]
    tolerance = {"k_score": 0.006}
    submitted = summary.get("scores") if isinstance(summary.get("scores"), Mapping) else {}
    for key in ("overall", *DIMENSIONS):
        claims.append((f"scores.overall_avg.avg_scores.{key}",
                       _dig(submitted, "overall_avg", "avg_scores", key),
                       detail["overall_avg"]["avg_scores"][key]))
    for group, data in detail["groups"].items():
        claims.append((f"scores.groups.{group}.avg_scores.overall",
                       _dig(submitted, "groups", group, "avg_scores", "overall"),
                       data["avg_scores"]["overall"]))
    n = 0
    for field, claimed, actual in claims:
        if claimed is None:
            continue
        try:
            differs = abs(float(claimed) - float(actual)) > tolerance.get(field, 1.1 * EPSILON)
        except (TypeError, ValueError):
            differs = True
        if differs:
            n += 1
            report.warn(f"summary.json: {field}", f"submitted {claimed!r}, recomputed "
                        f"{actual:g} from the per-sample judgements; the submitted total "
                        "is ignored")
    return n


def _dig(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, Mapping):
            return None
        data = data.get(key)
    return data


def recompute(samples: list[SampleRecord], rubric: str, categories: Mapping[str, str],
              variant: str = "verified", requested: list[int] | None = None) -> dict[str, Any]:
    """Board scores for ``rubric`` (``"knowgen"`` or ``"wise"``).

    Raises:
        DataError: for an unknown rubric.
    """
    if rubric == "knowgen":
        return knowgen_scores(samples, categories)
    if rubric == "wise":
        return wise_scores(samples, variant, requested or [])
    raise DataError(f"Unknown rubric {rubric!r}; use 'knowgen' or 'wise'.")
