"""validate(): schema, ids, scales and totals, each problem listed with where it is."""

import json

import pytest

from knowgen.eval.results import sample_scores
from knowgen.eval.scoring import aggregate_knowgen
from knowgen.leaderboard import validate
from knowgen.leaderboard.schema import SCHEMA_PATH, schema_text


def _wheres(report, severity="error"):
    return [p.where for p in report.problems if p.severity == severity]


def _messages(report, severity="error"):
    return "\n".join(str(p) for p in report.problems if p.severity == severity)


def test_clean_submission_passes_and_scores_are_recomputed(make_submission, kg_bench):
    sub = make_submission()
    report = validate(sub, benchmarks=kg_bench["benchmarks"])
    assert report.ok, report.text()
    assert report.problems == []
    samples = [json.loads(line) for line in (sub / "samples.jsonl").read_text().splitlines()]
    assert report.info["headline"] == aggregate_knowgen(sample_scores(samples)).k_score
    assert report.info["n_expected"] == len(kg_bench["records"]) == report.info["n_samples"]


def test_published_schema_is_current():
    assert SCHEMA_PATH.read_text(encoding="utf-8") == schema_text(), \
        "run: python -m knowgen.leaderboard schema --out leaderboard/submission.schema.json"


def test_every_metadata_problem_is_listed(make_submission, kg_bench):
    sub = make_submission(format_version=2, link="javascript:alert(1)", contact="",
                          surprise="field", judge={"name": "offline"},
                          system="two\nlines")
    report = validate(sub, benchmarks=kg_bench["benchmarks"])
    wheres = _wheres(report)
    for field in ("format_version", "link", "contact", "surprise", "judge.model", "system"):
        assert f"submission.yaml: {field}" in wheres, report.text()
    assert "http:// or https://" in _messages(report)


def test_missing_extra_and_duplicate_ids_are_all_listed(make_submission, kg_bench):
    def edit(samples):
        samples.pop(4)
        samples.pop(1)
        samples.append(dict(samples[0]))
        samples.append({**samples[2], "id": "kg-9999"})

    report = validate(make_submission(edit=edit), benchmarks=kg_bench["benchmarks"])
    text = _messages(report)
    assert "id 'kg-0001' of knowgen" in text and "id 'kg-0004' of knowgen" in text
    assert "'kg-9999' is not a task of" in text
    assert "id 'kg-0000' appears 2 times" in text
    assert not report.ok


def test_off_scale_and_non_numeric_scores_are_refused(make_submission, kg_bench):
    def edit(samples):
        samples[0]["image_judgement"]["faithfulness"] = 0.7
        samples[1]["image_judgement"]["visual_correctness"] = "1"
        samples[2]["image_judgement"]["aesthetics"] = True
        samples[3]["image_judgement"]["text_accuracy"] = 2
        samples[4]["text_judgement"]["score"] = 0.3
        del samples[5]["image_judgement"]["faithfulness"]

    report = validate(make_submission(edit=edit), benchmarks=kg_bench["benchmarks"])
    wheres = _wheres(report)
    expected = [(1, "image_judgement.faithfulness"), (2, "image_judgement.visual_correctness"),
                (3, "image_judgement.aesthetics"), (4, "image_judgement.text_accuracy"),
                (5, "text_judgement.score"), (6, "image_judgement.faithfulness")]
    for line, field in expected:
        assert f"samples.jsonl line {line}: {field}" in wheres, report.text()
    assert "off the rubric's scale (0, 0.5, 1)" in _messages(report)
    assert "headline" not in report.info  # nothing is scored from a refused submission


def test_tampered_totals_are_reported_and_ignored(make_submission, kg_bench):
    sub = make_submission(edit=lambda s: s[3]["image_judgement"].update(overall=1.0))
    summary = json.loads((sub / "summary.json").read_text())
    honest = summary["k_score"]
    summary["k_score"] = 99.5
    summary["scores"]["overall_avg"]["avg_scores"]["overall"] = 0.995
    (sub / "summary.json").write_text(json.dumps(summary))
    report = validate(sub, benchmarks=kg_bench["benchmarks"])
    assert report.ok, report.text()
    warned = _wheres(report, "warning")
    assert "summary.json: k_score" in warned
    assert "summary.json: scores.overall_avg.avg_scores.overall" in warned
    assert "samples.jsonl line 4 (id 'kg-0003'): image_judgement.overall" in warned
    assert report.info["headline"] == honest != 99.5


def test_categories_and_prompts_must_match_the_benchmark(make_submission, kg_bench):
    def edit(samples):
        samples[0]["meta"]["category"] = "film"  # moves a sample to the other group
        samples[1]["prompt"] = "something else"

    report = validate(make_submission(edit=edit), benchmarks=kg_bench["benchmarks"])
    text = _messages(report)
    assert "meta.category 'film' is not the benchmark's 'geography'" in text
    assert "prompt differs from the benchmark's" in text


def test_wrong_version_split_and_unknown_args_are_refused(make_submission, kg_bench):
    bench = {"name": "knowgen", "version": "sha256:000000000000", "split": "test"}
    report = validate(make_submission("v", benchmark=bench), benchmarks=kg_bench["benchmarks"])
    assert "submission.yaml: benchmark.version" in _wheres(report)
    bench = {"name": "knowgen", "version": kg_bench["version"], "split": "train"}
    report = validate(make_submission("s", benchmark=bench), benchmarks=kg_bench["benchmarks"])
    assert "submission.yaml: benchmark.split" in _wheres(report)
    bench = {"name": "knowgen", "version": kg_bench["version"], "split": "test",
             "args": {"path": "/etc"}}
    report = validate(make_submission("a", benchmark=bench), benchmarks=kg_bench["benchmarks"])
    assert "submission.yaml: benchmark.args" in _wheres(report)


def test_results_and_samples_must_agree(make_submission, kg_bench):
    sub = make_submission()
    results = json.loads((sub / "results.json").read_text())
    results[2]["success"] = False
    results[3]["output_path"] = "images/kg-0000.png"
    (sub / "results.json").write_text(json.dumps(results))
    text = _messages(validate(sub, benchmarks=kg_bench["benchmarks"]))
    assert "results.json[2] (id 'kg-0002'): success False differs" in text
    assert "results.json[3] (id 'kg-0003'): output_path" in text


@pytest.mark.parametrize("content, message", [
    (b"not an image at all", "does not decode"),
    (None, "does not decode"),  # a PNG cut in half
])
def test_broken_images_are_refused(make_submission, kg_bench, content, message):
    sub = make_submission()
    target = sub / "images" / "kg-0002.png"
    data = target.read_bytes()
    target.write_bytes(content if content is not None else data[: len(data) // 2])
    report = validate(sub, benchmarks=kg_bench["benchmarks"])
    assert message in _messages(report)
    assert "samples.jsonl line 3 (id 'kg-0002'): output_path" in _wheres(report)


def test_missing_files_are_listed(make_submission, kg_bench):
    sub = make_submission()
    (sub / "images" / "kg-0001.png").unlink()
    (sub / "results.json").unlink()
    report = validate(sub, benchmarks=kg_bench["benchmarks"])
    text = _messages(report)
    assert "results.json: is missing from the submission" in text
    assert "file 'images/kg-0001.png' does not exist" in text


def test_unloadable_benchmark_says_what_to_configure(make_submission):
    report = validate(make_submission())  # no path configured for 'knowgen'
    assert "Maintainers: configure it" in _messages(report)
