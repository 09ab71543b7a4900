"""Judging a results file made by a real world run with the offline image judge."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from knowgen.cli import main
from knowgen.errors import DataError
from knowgen.eval.judge_results import judge_results, load_results
from knowgen.eval.scoring import SampleScore, aggregate_knowgen

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("judge")
    run, cache = root / "run", root / "cache"
    rc = main(["eval", "--policy", "oracle", "--limit", "4", "--run-dir", str(run),
               "--benchmark", f"world:cache_dir={cache}", "--no-progress"])
    assert rc == 0
    return run, cache


def _judge(run: Path, cache: Path, out: Path, results: str = "results.json") -> dict:
    return judge_results(run / results, "offline", out_dir=out, world_cache_dir=str(cache),
                         progress=False)


def _write_variant(run: Path, name: str, change) -> list[dict]:
    """Write a modified copy of the run's results beside it (relative paths still resolve)."""
    items = json.loads((run / "results.json").read_text())
    change(items)
    (run / name).write_text(json.dumps(items))
    return items


def _run_samples(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]


def test_k_score_matches_the_run_and_outputs_are_official(world_run, tmp_path):
    run, cache = world_run
    summary = _judge(run, cache, tmp_path / "out")
    run_summary = json.loads((run / "summary.json").read_text())
    assert summary["k_score"] == run_summary["k_score"]
    assert summary["counts"]["scored"] == 4
    assert summary["counts"]["not_evaluated"] == summary["counts"]["errors"] == 0
    assert summary["judge"] == "offline"
    assert summary["official_summary"] == run_summary["official_summary"]
    assert not (tmp_path / "out" / "scores.json").exists()
    scores = json.loads((tmp_path / "out" / "results_eval.json").read_text())
    assert len(scores) == 4 + 3
    assert scores[-3:] == summary["official_summary"]
    assert [s["summary_type"] for s in scores[-3:]] == [
        "science_and_knowledge", "pop_culture_and_news", "overall_avg"]
    by_id = {s["id"]: s["image_judgement"] for s in _run_samples(run)}
    results = json.loads((run / "results.json").read_text())
    for item, original in zip(scores[:4], results):
        assert item["eval_success"] is True and item["error"] is None
        assert {k: item[k] for k in original} == original  # every input field kept
        assert item["scores"]["overall"] == by_id[item["id"]]["overall"]
    # the trailing summary items are ignored when the output is read back as results
    assert [i["id"] for i in load_results(tmp_path / "out" / "results_eval.json")] == [
        s["id"] for s in scores[:4]]


def test_rerun_judges_nothing_new(world_run, tmp_path):
    run, cache = world_run
    first = _judge(run, cache, tmp_path / "out")
    log = (tmp_path / "out" / "judged.jsonl").read_bytes()
    second = _judge(run, cache, tmp_path / "out")
    assert (tmp_path / "out" / "judged.jsonl").read_bytes() == log
    first.pop("written_at"), second.pop("written_at")
    assert first == second


def test_torn_last_line_is_recovered(world_run, tmp_path):
    run, cache = world_run
    first = _judge(run, cache, tmp_path / "out")
    path = tmp_path / "out" / "judged.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])
    second = _judge(run, cache, tmp_path / "out")
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(records) == 4 and len({r["id"] for r in records}) == 4
    assert second["k_score"] == first["k_score"]


def test_failed_item_is_not_evaluated_not_zero(world_run, tmp_path):
    run, cache = world_run
    items = _write_variant(run, "results-failed.json", lambda xs: xs[0].update(success=False))
    summary = _judge(run, cache, tmp_path / "out", "results-failed.json")
    assert summary["not_evaluated"] == [items[0]["id"]]
    assert summary["counts"]["not_evaluated"] == 1 and summary["counts"]["scored"] == 3
    expected = aggregate_knowgen(
        SampleScore.from_mapping(s["id"], s["meta"]["category"], s["image_judgement"])
        for s in _run_samples(run) if s["id"] != items[0]["id"])
    assert summary["k_score"] == expected.k_score
    scores = json.loads((tmp_path / "out" / "results_eval.json").read_text())
    assert scores[0]["eval_success"] is False and scores[0]["scores"] is None
    assert scores[0]["error"] == "not_evaluated"


def test_unknown_category_is_skipped_and_counted(world_run, tmp_path):
    run, cache = world_run
    items = _write_variant(run, "results-cat.json",
                           lambda xs: xs[1]["meta"].update(category="Cooking"))
    summary = _judge(run, cache, tmp_path / "out", "results-cat.json")
    assert summary["skipped_categories"] == {"cooking": 1}
    assert summary["counts"]["skipped_unknown_category"] == 1
    assert summary["counts"]["scored"] == 4
    expected = aggregate_knowgen(
        SampleScore.from_mapping(s["id"], s["meta"]["category"], s["image_judgement"])
        for s in _run_samples(run) if s["id"] != items[1]["id"])
    assert summary["k_score"] == expected.k_score


def test_per_sample_errors_are_recorded_and_the_run_goes_on(world_run, tmp_path):
    run, cache = world_run
    (run / "broken.png").write_bytes(b"this is not a png")

    def change(xs):
        xs[0]["id"] = "no-such-world-task"
        xs[1]["output_path"] = "broken.png"

    _write_variant(run, "results-errors.json", change)
    summary = _judge(run, cache, tmp_path / "out", "results-errors.json")
    assert summary["counts"]["errors"] == 2 and summary["counts"]["scored"] == 2
    assert "only scores world tasks" in summary["errors"]["no-such-world-task"]["message"]
    assert summary["errors"]["no-such-world-task"]["type"] == "DataError"
    broken = [e for i, e in summary["errors"].items() if i != "no-such-world-task"]
    assert broken[0]["type"] == "UnidentifiedImageError"


def test_malformed_results_list_every_problem(tmp_path):
    bad = tmp_path / "results.json"
    bad.write_text(json.dumps([
        {"id": "a", "success": True, "prompt": "p", "meta": {"category": "geography"},
         "output_path": "a.png"},
        {"id": "b", "success": "yes", "prompt": "p", "meta": {}, "output_path": None,
         "gt_image": "b.png"},
        {"group": "overall_avg", "avg_scores": {}, "count": 0},
    ]))
    with pytest.raises(DataError) as err:
        judge_results(bad, "offline", progress=False, strict=True)
    msg = str(err.value)
    assert "item 0: field 'gt_image'" in msg
    assert "item 1: field 'success'" in msg and "item 1: field 'meta.category'" in msg
    assert "3 problem(s)" in msg
    bad.write_text(json.dumps({"id": "a"}))
    with pytest.raises(DataError, match="JSON array"):
        judge_results(bad, "offline", progress=False)
    # without --strict only what makes an item unusable is refused: no id, a repeated id
    bad.write_text(json.dumps([{"success": True}, {"id": "a"}, {"id": "a"}, "text"]))
    with pytest.raises(DataError) as err:
        judge_results(bad, "offline", progress=False)
    msg = str(err.value)
    assert "item 0: field 'id'" in msg and "item 2: field 'id' repeats" in msg
    assert "item 3: expected an object" in msg and "3 problem(s)" in msg
