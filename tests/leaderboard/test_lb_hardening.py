"""Hostile submissions: hiding samples, deep or aliased YAML and JSON, reformatted duplicates."""

from __future__ import annotations

import json

import pytest

from knowgen.errors import DataError
from knowgen.leaderboard import add, build, validate
from knowgen.leaderboard.board import DuplicateEntry
from knowgen.leaderboard.report import SubmissionError
from knowgen.leaderboard.safeload import LoadError, load_json, load_yaml


def _hide_low(samples):
    """Mark every sample whose overall is below 0.5 as not evaluated (and drop its scores)."""
    for s in samples:
        if s["image_judgement"]["overall"] < 0.5:
            s["success"] = False
            s["image_judgement"] = None


def test_hiding_low_scores_cannot_raise_the_board_score(make_submission, kg_bench, tmp_path):
    honest = add(make_submission("honest", system="Honest"), tmp_path / "board",
                 benchmarks=kg_bench["benchmarks"])
    gamed_sub = make_submission("gamed", edit=_hide_low, system="Gamed")
    report = validate(gamed_sub, benchmarks=kg_bench["benchmarks"])
    assert report.ok and any("not evaluated" in w.message and "counts each as 0" in w.message
                             for w in report.warnings)
    gamed = add(gamed_sub, tmp_path / "board", benchmarks=kg_bench["benchmarks"])
    s = gamed["scores"]
    assert s["headline"] <= honest["scores"]["headline"]
    assert s["evaluated_only"]["headline"] > honest["scores"]["headline"]  # what it tried
    assert s["n_evaluated"] < s["n_expected"] == 6 and s["coverage"] < 1.0
    assert honest["scores"]["coverage"] == 1.0
    page = build(tmp_path / "board", tmp_path / "site").read_text()
    assert "Coverage" in page and f"({s['n_evaluated']}/6)" in page
    ranked = page.index("Honest") < page.index("Gamed")
    assert ranked, "the submission that hid samples must not rank first"


def _with_yaml(make_submission, name, text):
    sub = make_submission(name)
    (sub / "submission.yaml").write_text(text, encoding="utf-8")
    return sub


def test_deep_yaml_and_json_are_refused_not_recursion_errors(make_submission, kg_bench, tmp_path):
    deep_yaml = _with_yaml(make_submission, "deep_yaml", "a: " + "[" * 5000 + "]" * 5000)
    report = validate(deep_yaml, benchmarks=kg_bench["benchmarks"])
    assert not report.ok and "nested more than" in report.text()
    deep_json = make_submission("deep_json")
    (deep_json / "results.json").write_text("[" * 100_000 + "]" * 100_000)
    with (deep_json / "samples.jsonl").open("a") as fh:
        fh.write('{"id": "x", "deep": ' + "[" * 3000 + "]" * 3000 + "}\n")
    report = validate(deep_json, benchmarks=kg_bench["benchmarks"])
    assert not report.ok and "nested more than" in report.text()
    with pytest.raises(SubmissionError):
        add(deep_json, tmp_path / "board", benchmarks=kg_bench["benchmarks"])


def test_yaml_alias_bomb_is_refused_before_it_expands(make_submission, kg_bench):
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))
    sub = _with_yaml(make_submission, "bomb", bomb)
    report = validate(sub, benchmarks=kg_bench["benchmarks"])
    assert not report.ok and "anchors (&a) are not allowed" in report.text()
    with pytest.raises(LoadError, match="aliases"):
        load_yaml("a: [1]\nb: *a\n")


def test_safe_loaders_read_ordinary_documents():
    assert load_yaml("judge: {name: offline, model: offline}\nlist: [1, [2, [3]]]\n") == {
        "judge": {"name": "offline", "model": "offline"}, "list": [1, [2, [3]]]}
    assert load_json(b'{"a": [1, {"b": null}]}') == {"a": [1, {"b": None}]}
    with pytest.raises(LoadError, match="UTF-8"):
        load_json(b'{"a": "\xff"}')


def test_reformatted_submission_is_the_same_entry(make_submission, kg_bench, tmp_path):
    sub = make_submission("same")
    first = add(sub, tmp_path / "board", benchmarks=kg_bench["benchmarks"])
    (sub / "submission.yaml").write_text((sub / "submission.yaml").read_text() + "\n\n")
    items = json.loads((sub / "results.json").read_text())
    (sub / "results.json").write_text(json.dumps(items[::-1]))
    lines = (sub / "samples.jsonl").read_text().splitlines()
    (sub / "samples.jsonl").write_text("\n".join(reversed(lines)) + "\n")
    with pytest.raises(DuplicateEntry, match=first["entry_id"]):
        add(sub, tmp_path / "board", benchmarks=kg_bench["benchmarks"])
    renamed = _with_yaml(make_submission, "renamed",
                         (sub / "submission.yaml").read_text().replace("Flag copier", "Other"))
    with pytest.raises(DuplicateEntry):
        add(renamed, tmp_path / "board", benchmarks=kg_bench["benchmarks"])


def test_build_refuses_a_missing_board(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        build(tmp_path / "no-board", tmp_path / "site")
    assert not (tmp_path / "site").exists()


@pytest.mark.slow
def test_seed_can_be_rerun_and_goes_past_a_bad_run(world_runs, tmp_path):
    from knowgen.leaderboard.seed import SeedOutcome, seed_board

    runs = list(world_runs["runs"].values())
    broken = tmp_path / "unfinished"
    broken.mkdir()
    (broken / "run.json").write_text('{"benchmark": "world", "policy": "direct"}')
    outcome = SeedOutcome()
    with pytest.raises(DataError, match="1 of .* could not be added.*unfinished"):
        seed_board([runs[0], broken, *runs[1:]], tmp_path / "board", outcome=outcome)
    assert len(outcome.added) == len(runs)
    again = SeedOutcome()
    assert seed_board(runs, tmp_path / "board", tmp_path / "site", outcome=again) == []
    assert len(again.skipped) == len(runs)
