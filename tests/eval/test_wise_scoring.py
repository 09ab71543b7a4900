"""WISE scoring: WiScore, category means, weighted overalls, refusal on missing ids."""

import logging

import pytest

from knowgen.errors import DataError, UnknownNameError
from knowgen.eval.wise_scoring import (
    WISE_RANGES,
    WISE_WEIGHTS,
    WiseLegacyJudgement,
    WiseVerifiedJudgement,
    category_ids,
    category_of,
    format_id_ranges,
    score_wise,
    score_wise_records,
    weighted_overall,
    wiscore,
)

# Published verified leaderboard rows (judge Qwen3.5-35B-A3B), see REFERENCE.md.
PUBLISHED = {
    "NanoBanana-Pro": (0.8760, {"culture": 0.8975, "time": 0.8167, "space": 0.9333,
                                "biology": 0.8167, "physics": 0.8667, "chemistry": 0.8750}),
    "QwenImage": (0.5100, {"culture": 0.6275, "time": 0.5250, "space": 0.5583,
                           "biology": 0.3417, "physics": 0.4833, "chemistry": 0.2500}),
}


@pytest.mark.parametrize("c, r, a, expected", [
    (2, 2, 2, 1.0),
    (0, 0, 0, 0.0),
    (1, 0, 2, (0.7 * 1 + 0.2 * 0 + 0.1 * 2) / 2),   # 0.45
    (0, 2, 0, 0.2),
    (2, 1, 0, 0.8),
])
def test_wiscore_hand_computed(c, r, a, expected):
    assert wiscore(c, r, a) == pytest.approx(expected)
    assert WiseLegacyJudgement(c, r, a).value == pytest.approx(expected)


@pytest.mark.parametrize("bad", [3, -1, 1.5, True, "2"])
def test_wiscore_rejects_off_scale(bad):
    with pytest.raises(DataError, match="0, 1 or 2"):
        wiscore(bad, 1, 1)


def test_verified_judgement_is_binary():
    assert WiseVerifiedJudgement(1).value == 1.0
    for bad in (2, 0.5, True):
        with pytest.raises(DataError):
            WiseVerifiedJudgement(bad)


def test_ranges_cover_1_to_1000_without_overlap_and_weights_sum_to_one():
    for variant, ranges in WISE_RANGES.items():
        ids = [i for name, _, _ in ranges for i in category_ids(variant, name)]
        assert ids == list(range(1, 1001))
        assert sum(WISE_WEIGHTS[variant].values()) == pytest.approx(1.0)
        assert list(WISE_WEIGHTS[variant]) == [name for name, _, _ in ranges]


def test_category_of_follows_each_variant():
    assert category_of("legacy", 567) == "time" and category_of("legacy", 568) == "space"
    assert category_of("verified", 520) == "time" and category_of("verified", 521) == "space"
    assert category_of("legacy", 1) == "cultural" and category_of("verified", 1) == "culture"
    assert category_of("verified", 641) == "biology" and category_of("legacy", 641) == "space"
    with pytest.raises(DataError, match="outside 1..1000"):
        category_of("legacy", 1001)
    with pytest.raises(UnknownNameError, match="Did you mean 'legacy'"):
        category_of("legasy", 3)


def _legacy_records():
    """Full legacy set: each category with its own pattern of (C, R, A)."""
    pattern = {"cultural": [(2, 2, 2)], "time": [(1, 1, 1)], "space": [(0, 0, 0)],
               "biology": [(2, 2, 2), (0, 0, 0)], "physics": [(2, 0, 0)], "chemistry": [(0, 2, 2)]}
    recs = []
    for name, first, last in WISE_RANGES["legacy"]:
        cycle = pattern[name]
        for k, pid in enumerate(range(first, last + 1)):
            c, r, a = cycle[k % len(cycle)]
            recs.append({"prompt_id": pid, "consistency": c, "realism": r, "aesthetic_quality": a})
    return recs


def test_legacy_categories_and_overall_hand_computed():
    summary = score_wise_records(_legacy_records(), "legacy")
    cats = summary.categories
    assert cats["cultural"] == pytest.approx(1.0)
    assert cats["time"] == pytest.approx(0.5)
    assert cats["space"] == pytest.approx(0.0)
    assert cats["biology"] == pytest.approx(0.5)     # 50 of 1.0, 50 of 0.0
    assert cats["physics"] == pytest.approx(0.7)     # (0.7 * 2) / 2
    assert cats["chemistry"] == pytest.approx(0.3)  # (0.2 * 2 + 0.1 * 2) / 2
    expected = 0.4 * 1 + 0.167 * 0.5 + 0.133 * 0 + 0.1 * 0.5 + 0.1 * 0.7 + 0.1 * 0.3
    assert summary.overall == pytest.approx(expected)  # 0.6335
    assert summary.to_dict()["overall"] == 0.6335
    assert summary.counts == {"cultural": 400, "time": 167, "space": 133,
                              "biology": 100, "physics": 100, "chemistry": 100}
    assert summary.reason is None and summary.missing_ids == []


def test_verified_binary_means_and_overall_hand_computed():
    scores = {}
    for name, first, last in WISE_RANGES["verified"]:
        for pid in range(first, last + 1):
            # culture: every 4th wrong (0.75); time: all right; the rest: every other one right
            if name == "culture":
                scores[pid] = 0 if pid % 4 == 0 else 1
            elif name == "time":
                scores[pid] = 1
            else:
                scores[pid] = pid % 2
    summary = score_wise(scores, "verified")
    assert summary.categories["culture"] == pytest.approx(0.75)
    assert summary.categories["time"] == pytest.approx(1.0)
    assert summary.categories["space"] == pytest.approx(0.5)
    assert summary.overall == pytest.approx(0.4 * 0.75 + 0.12 * (1.0 + 0.5 * 4))  # 0.66


def test_missing_ids_refuse_the_overall_but_keep_categories(caplog):
    recs = [r for r in _legacy_records() if r["prompt_id"] not in (5, 6, 7, 950)]
    with caplog.at_level(logging.WARNING):
        summary = score_wise_records(recs, "legacy")
    assert summary.overall is None
    assert summary.missing_ids == [5, 6, 7, 950]
    assert "4 requested prompt id(s) have no score (5-7, 950)" in summary.reason
    assert summary.categories["cultural"] == pytest.approx(1.0)
    assert summary.counts["cultural"] == 397 and summary.counts["chemistry"] == 99
    assert "overall refused" in caplog.text
    assert summary.to_dict()["n_missing"] == 4


def test_partial_request_scores_its_categories_but_no_overall():
    scores = {pid: 1 for pid in range(1, 401)}
    summary = score_wise(scores, "verified", requested=category_ids("verified", "culture"))
    assert summary.categories["culture"] == 1.0
    assert summary.categories["time"] is None and summary.counts["time"] == 0
    assert summary.overall is None and "only 400 of the 1000" in summary.reason


def test_records_reject_fractional_duplicate_and_missing_scores():
    with pytest.raises(DataError, match="lacks a valid score"):
        score_wise_records([{"prompt_id": 1, "consistency": 1.5, "realism": 1,
                             "aesthetic_quality": 1}], "legacy")
    with pytest.raises(DataError, match="lacks a valid score"):
        score_wise_records([{"prompt_id": 1}], "verified")
    with pytest.raises(DataError, match="scored twice"):
        score_wise_records([{"prompt_id": 1, "score": 1}, {"prompt_id": 1, "score": 0}],
                           "verified")
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        score_wise({1: 1.5}, "verified")


@pytest.mark.parametrize("model", sorted(PUBLISHED))
def test_published_verified_overalls_from_category_values(model):
    """Weighted sum of the published (4-decimal) category values, rounded to 4 decimals."""
    overall, cats = PUBLISHED[model]
    assert round(weighted_overall(cats, "verified"), 4) == overall


@pytest.mark.parametrize("model", sorted(PUBLISHED))
def test_published_verified_overalls_from_per_image_scores(model):
    """Rebuild binary per-image scores whose category means round to the published values."""
    overall, cats = PUBLISHED[model]
    scores = {}
    for name, first, last in WISE_RANGES["verified"]:
        n = last - first + 1
        right = round(cats[name] * n)
        assert round(right / n, 4) == cats[name]  # the published value is a fraction of n
        for k, pid in enumerate(range(first, last + 1)):
            scores[pid] = 1 if k < right else 0
    summary = score_wise(scores, "verified")
    assert summary.to_dict(digits=4)["overall"] == overall
    assert {c: round(v, 4) for c, v in summary.categories.items()} == cats


def test_weighted_overall_needs_every_category():
    with pytest.raises(DataError, match="chemistry"):
        weighted_overall({"culture": 1, "time": 1, "space": 1, "biology": 1, "physics": 1},
                         "verified")


def test_format_id_ranges():
    assert format_id_ranges([7, 1, 2, 3, 9, 10]) == "1-3, 7, 9-10"
    assert format_id_ranges([]) == ""
