"""KnowGen aggregation, exactly as the official evaluator defines it.

* A sample's overall is ``0.1 F + 0.4 V + 0.4 T + 0.1 A`` (T = 0.5 when the
  prompt needs no text).
* A group's F, V and A are means over its evaluated samples; its T is the mean
  over samples whose text is not N/A (0.5 when all are N/A). Each mean is
  rounded to 4 decimals and the group overall is recomputed from the rounded
  means with the same weights, then rounded to 4 decimals.
* A group with no evaluated sample scores 0 on every dimension and still counts.
* The overall is the plain mean of the two groups per dimension (4 decimals);
  papers report it x100 as the K-Score.
* Samples that were not evaluated (``success`` false or no image) are left out;
  samples whose category is in neither group are skipped with a warning.
  Categories are matched trimmed and lower-cased (``" Posters "`` is ``posters``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from knowgen.types import KNOWGEN_GROUPS, KNOWGEN_WEIGHTS

logger = logging.getLogger(__name__)

DIMENSIONS = ("faithfulness", "visual_correctness", "text_accuracy", "aesthetics")
_CATEGORY_TO_GROUP = {c: g for g, cats in KNOWGEN_GROUPS.items() for c in cats}


@dataclass(frozen=True)
class SampleScore:
    """The judged scores of one evaluated sample."""

    id: str
    category: str
    faithfulness: float
    visual_correctness: float
    text_accuracy: float
    text_accuracy_na: bool
    aesthetics: float

    @classmethod
    def from_mapping(cls, sid: str, category: str, scores: Mapping[str, Any]) -> SampleScore:
        """Build from a judge output mapping (values clipped to [0, 1], 2 decimals)."""

        def clip(name: str) -> float:
            return round(min(1.0, max(0.0, float(scores[name]))), 2)

        return cls(
            id=sid,
            category=category,
            faithfulness=clip("faithfulness"),
            visual_correctness=clip("visual_correctness"),
            text_accuracy=clip("text_accuracy"),
            text_accuracy_na=bool(scores.get("text_accuracy_na", False)),
            aesthetics=clip("aesthetics"),
        )


def normalize_category(category: Any) -> str:
    """A category as the groups are matched: trimmed and lower-cased (``""`` when absent)."""
    return category.strip().lower() if isinstance(category, str) else ""


def group_of(category: Any) -> str | None:
    """The KnowGen group a category counts in (``None``: in none, so not scored)."""
    return _CATEGORY_TO_GROUP.get(normalize_category(category))


def weighted_overall(means: Mapping[str, float]) -> float:
    """Overall from per-dimension values with the KnowGen weights, rounded to 4 decimals."""
    return round(sum(KNOWGEN_WEIGHTS[d] * means[d] for d in DIMENSIONS), 4)


@dataclass
class GroupSummary:
    """Aggregated scores of a set of samples."""

    avg_scores: dict[str, float]
    count: int
    text_na_count: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"avg_scores": dict(self.avg_scores), "count": self.count,
                "text_na_count": self.text_na_count}


def summarize_samples(samples: Iterable[SampleScore]) -> GroupSummary:
    """Aggregate samples the way a KnowGen group is aggregated."""
    items = list(samples)
    if not items:
        zero = {d: 0.0 for d in DIMENSIONS}
        zero["overall"] = 0.0
        return GroupSummary(zero, 0, 0)
    means: dict[str, float] = {}
    for dim in ("faithfulness", "visual_correctness", "aesthetics"):
        means[dim] = round(sum(getattr(s, dim) for s in items) / len(items), 4)
    with_text = [s.text_accuracy for s in items if not s.text_accuracy_na]
    means["text_accuracy"] = round(sum(with_text) / len(with_text), 4) if with_text else 0.5
    means["overall"] = weighted_overall(means)
    return GroupSummary(means, len(items), len(items) - len(with_text))


@dataclass
class KnowGenSummary:
    """Groups, their mean, and per-category breakdowns."""

    groups: dict[str, GroupSummary]
    overall: GroupSummary
    categories: dict[str, GroupSummary] = field(default_factory=dict)
    skipped_categories: dict[str, int] = field(default_factory=dict)

    @property
    def k_score(self) -> float:
        """The overall score x100, as papers report it."""
        return round(self.overall.avg_scores["overall"] * 100, 2)

    def official_items(self) -> list[dict[str, Any]]:
        """The three summary items the official evaluator appends to its output array.

        Each is ``{"summary_type", "avg_scores": {the four dimensions, "overall"},
        "count"}``, in the order science_and_knowledge, pop_culture_and_news,
        overall_avg.
        """
        keys = (*DIMENSIONS, "overall")
        named = [*((g, self.groups[g]) for g in KNOWGEN_GROUPS), ("overall_avg", self.overall)]
        return [{"summary_type": name, "avg_scores": {k: s.avg_scores[k] for k in keys},
                 "count": s.count} for name, s in named]

    def to_dict(self) -> dict[str, Any]:
        return {
            "groups": {g: s.to_dict() for g, s in self.groups.items()},
            "overall_avg": self.overall.to_dict(),
            "categories": {c: s.to_dict() for c, s in sorted(self.categories.items())},
            "skipped_categories": dict(self.skipped_categories),
            "k_score": self.k_score,
        }


def aggregate_knowgen(samples: Iterable[SampleScore]) -> KnowGenSummary:
    """Aggregate evaluated samples into the official KnowGen summary."""
    by_group: dict[str, list[SampleScore]] = {g: [] for g in KNOWGEN_GROUPS}
    by_cat: dict[str, list[SampleScore]] = {}
    skipped: dict[str, int] = {}
    for s in samples:
        cat = normalize_category(s.category)
        group = group_of(cat)
        if group is None:
            skipped[cat or "(none)"] = skipped.get(cat or "(none)", 0) + 1
            continue
        by_group[group].append(s)
        by_cat.setdefault(cat, []).append(s)
    if skipped:
        logger.warning(
            "Skipped %d samples whose categories are in no KnowGen group: %s",
            sum(skipped.values()), ", ".join(f"{c} ({n})" for c, n in sorted(skipped.items())),
        )
    groups = {g: summarize_samples(items) for g, items in by_group.items()}
    overall_means = {
        d: round(sum(groups[g].avg_scores[d] for g in groups) / len(groups), 4)
        for d in (*DIMENSIONS, "overall")
    }
    overall = GroupSummary(overall_means, sum(s.count for s in groups.values()),
                           sum(s.text_na_count for s in groups.values()))
    cats = {c: summarize_samples(items) for c, items in by_cat.items()}
    return KnowGenSummary(groups, overall, cats, skipped)
