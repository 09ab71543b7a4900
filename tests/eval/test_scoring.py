"""KnowGen aggregation follows the official rules to the last rounding step."""

import logging

import pytest

from knowgen.eval.scoring import SampleScore, aggregate_knowgen, summarize_samples
from knowgen.types import ImageJudgement


def s(sid, cat, f, v, t, a, na=False):
    return SampleScore(sid, cat, f, v, t, na, a)


def test_sample_overall_uses_half_for_text_na():
    j = ImageJudgement(1.0, 1.0, 0.0, True, 1.0)
    assert j.overall == pytest.approx(0.1 + 0.4 + 0.4 * 0.5 + 0.1)
    j2 = ImageJudgement(1.0, 1.0, 0.0, False, 1.0)
    assert j2.overall == pytest.approx(0.6)


def test_group_text_mean_excludes_na_samples():
    group = summarize_samples([
        s("a", "geography", 1, 1, 1, 1),
        s("b", "geography", 0, 0, 0, 0, na=True),  # T ignored in the T mean
        s("c", "geography", 0.5, 0.5, 0, 0.5),
    ])
    a = group.avg_scores
    assert a["faithfulness"] == 0.5
    assert a["visual_correctness"] == 0.5
    assert a["text_accuracy"] == 0.5  # mean of 1 and 0, not of three
    assert a["aesthetics"] == 0.5
    assert group.count == 3 and group.text_na_count == 1


def test_group_with_only_na_text_uses_half():
    group = summarize_samples([s("a", "posters", 1, 1, 0, 1, na=True)])
    assert group.avg_scores["text_accuracy"] == 0.5


def test_group_overall_recomputed_from_rounded_means():
    # means 1/3 -> 0.3333 each; overall from the rounded means, not from samples
    items = [s("a", "art", 1, 1, 1, 1), s("b", "art", 0, 0, 0, 0), s("c", "art", 0, 0, 0, 0)]
    a = summarize_samples(items).avg_scores
    assert a["faithfulness"] == 0.3333
    assert a["overall"] == round(0.1 * 0.3333 + 0.4 * 0.3333 + 0.4 * 0.3333 + 0.1 * 0.3333, 4)


def test_empty_group_counts_as_zero_in_overall():
    agg = aggregate_knowgen([s("a", "geography", 1, 1, 1, 1)])
    pop = agg.groups["pop_culture_and_news"]
    assert pop.count == 0 and all(v == 0.0 for v in pop.avg_scores.values())
    assert agg.overall.avg_scores["overall"] == 0.5
    assert agg.k_score == 50.0


def test_overall_is_mean_of_groups_not_of_samples():
    samples = [s(str(i), "geography", 1, 1, 1, 1) for i in range(9)]
    samples.append(s("p", "posters", 0, 0, 0, 0))
    agg = aggregate_knowgen(samples)
    assert agg.overall.avg_scores["overall"] == 0.5  # not 0.9


def test_unknown_categories_are_skipped_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING):
        agg = aggregate_knowgen([s("a", "cooking", 1, 1, 1, 1), s("b", "News", 1, 1, 1, 1)])
    assert agg.skipped_categories == {"cooking": 1}
    assert "cooking" in caplog.text
    assert agg.groups["pop_culture_and_news"].count == 1  # matched case-insensitively


def test_scores_are_clipped_and_rounded():
    sc = SampleScore.from_mapping("x", "art", {
        "faithfulness": 1.7, "visual_correctness": -1, "text_accuracy": 0.456,
        "aesthetics": 0.5, "text_accuracy_na": False})
    assert (sc.faithfulness, sc.visual_correctness, sc.text_accuracy) == (1.0, 0.0, 0.46)


def test_official_items_are_the_three_summaries():
    items = aggregate_knowgen([s("a", "geography", 1, 1, 1, 1)]).official_items()
    assert [i["summary_type"] for i in items] == [
        "science_and_knowledge", "pop_culture_and_news", "overall_avg"]
    assert all(set(i) == {"summary_type", "avg_scores", "count"} for i in items)
    assert all(set(i["avg_scores"]) == {"faithfulness", "visual_correctness", "text_accuracy",
                                        "aesthetics", "overall"} for i in items)
