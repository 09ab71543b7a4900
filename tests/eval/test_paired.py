"""Paired comparison of two real runs of the offline world over the same tasks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from knowgen.cli import main
from knowgen.config import EvalConfig
from knowgen.errors import RunError
from knowgen.eval.paired import k_interval, paired_comparison, run_scores
from knowgen.eval.runner import run_eval

LIMIT = 6


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("paired")
    out = {}
    for policy in ("direct", "oracle"):
        out[policy] = root / policy
        run_eval(EvalConfig(policy=policy, limit=LIMIT, seed=0), run_dir=out[policy],
                 progress=False, write_html=False)
    return out


def _k(run: Path) -> float:
    return json.loads((run / "summary.json").read_text())["k_score"]


def test_a_run_against_itself_differs_by_nothing(runs):
    r = paired_comparison(runs["oracle"], runs["oracle"], resamples=200)
    assert (r.n_tasks, r.delta, r.low, r.high, r.better, r.worse) == (LIMIT, 0, 0, 0, 0, 0)
    assert not r.separated


def test_the_scores_paired_are_the_official_ones_and_a_clear_gap_is_separated(runs):
    r = paired_comparison(runs["direct"], runs["oracle"], resamples=500)
    assert (r.k_base, r.k_other) == (_k(runs["direct"]), _k(runs["oracle"]))
    assert r.delta == pytest.approx(_k(runs["oracle"]) - _k(runs["direct"]), abs=0.01)
    assert r.better == LIMIT and r.worse == 0
    assert 0 < r.low <= r.delta <= r.high and r.separated


def test_a_runs_own_interval_holds_its_score_and_is_reproducible(runs):
    low, high = k_interval(runs["direct"], resamples=300)
    assert low <= _k(runs["direct"]) <= high and low < high
    assert k_interval(runs["direct"], resamples=300) == (low, high)
    assert k_interval(runs["oracle"], resamples=300) == (_k(runs["oracle"]),) * 2


def test_one_task_lost_is_not_separated(runs, tmp_path):
    # the oracle's run with one task's judgement made the direct run's for that task
    worse = tmp_path / "worse"
    shutil.copytree(runs["oracle"], worse)
    direct = {json.loads(x)["id"]: json.loads(x)
              for x in (runs["direct"] / "samples.jsonl").read_text().splitlines()}
    lines = (worse / "samples.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    first["image_judgement"] = direct[first["id"]]["image_judgement"]
    (worse / "samples.jsonl").write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    r = paired_comparison(runs["oracle"], worse, resamples=500, seed=3)
    assert (r.better, r.worse) == (0, 1) and r.delta < 0
    assert r.low < 0 and r.high == 0 and not r.separated  # resamples without it move nothing
    assert paired_comparison(runs["oracle"], worse, resamples=500, seed=3) == r


def test_only_the_samples_of_the_runs_own_id_count(runs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(runs["oracle"], run)
    lines = (run / "samples.jsonl").read_text().splitlines()
    stray = {**json.loads(lines[0]), "run_id": "feedfacecafe", "success": False}
    (run / "samples.jsonl").write_text("\n".join([*lines, json.dumps(stray)]) + "\n")
    assert run_scores(run) == run_scores(runs["oracle"])


def test_unreadable_folders_and_too_few_resamples_are_refused(runs, tmp_path):
    with pytest.raises(RunError, match="at least 100"):
        paired_comparison(runs["direct"], runs["oracle"], resamples=10)
    with pytest.raises(RunError, match="at least 100"):
        k_interval(runs["direct"], resamples=99)
    with pytest.raises(RunError, match="Cannot pair the tasks of .*knowgen eval --resume"):
        paired_comparison(runs["direct"], tmp_path)
    torn = tmp_path / "torn"
    shutil.copytree(runs["oracle"], torn)
    with (torn / "samples.jsonl").open("a") as fh:
        fh.write('{"id": "half')
    with pytest.raises(RunError, match="line 7 is not valid JSON.*quarantine"):
        paired_comparison(runs["direct"], torn)


def test_every_reader_of_a_run_keeps_the_samples_its_resume_keeps(runs, tmp_path):
    """A pasted copy of a sample is named, and the pairing, the summary and a resume all
    keep the first copy; reading changes nothing in the folder."""
    from knowgen.eval.rundir import SampleLog, read_samples, sample_problem

    run = tmp_path / "run"
    shutil.copytree(runs["oracle"], run)
    log = run / "samples.jsonl"
    lines = log.read_text().splitlines()
    copy = {**json.loads(lines[0]), "reward": -1.0}
    log.write_text("\n".join([*lines, json.dumps(copy)]) + "\n")
    before = log.read_bytes()
    meta, samples, problems = read_samples(run)
    assert problems == [f"line 7 repeats sample {copy['id']!r} (the first copy is kept)"]
    assert samples[copy["id"]] == json.loads(lines[0]) and len(samples) == LIMIT
    with pytest.raises(RunError, match="line 7 repeats sample.*--resume"):
        run_scores(run)
    assert log.read_bytes() == before and not (run / "samples.quarantine.jsonl").exists()
    resumed = SampleLog(log, check=lambda r: sample_problem(r, meta["run_id"])).read()
    assert {r["id"]: r for r in resumed} == samples  # what a resume keeps
    assert run_scores(run) == run_scores(runs["oracle"])


def test_compare_prints_the_paired_interval_unless_told_not_to(runs, capsys):
    assert main(["compare", str(runs["direct"]), str(runs["oracle"]),
                 "--resamples", "200"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    r = paired_comparison(runs["direct"], runs["oracle"], resamples=200)
    low, high = k_interval(runs["direct"], resamples=200)
    assert "the same tasks, resampled" in out and "(first)" in out  # long paths fold
    assert f"[{low:.2f}, {high:.2f}]" in out
    assert f"[{r.low:+.2f}, {r.high:+.2f}]" in out and f"{r.delta:+.2f}" in out
    assert main(["compare", str(runs["direct"]), str(runs["oracle"]), "--resamples", "0"]) == 0
    assert "resampled" not in capsys.readouterr().out
    assert main(["compare", str(runs["direct"]), str(runs["oracle"]), "--resamples", "5"]) == 2
    assert "at least 100" in " ".join(capsys.readouterr().err.split())


def test_family_means_group_a_runs_tasks_by_template(runs):
    from knowgen.eval.paired import family_means
    from knowgen.types import task_family

    assert task_family("two_flags-fr-es") == "two_flags" and task_family("42") == "42"
    scores = run_scores(runs["oracle"])
    means = family_means(scores)
    assert sum(n for n, _ in means.values()) == len(scores) == LIMIT
    for family, (n, mean) in means.items():
        members = [s.overall for i, s in scores.items() if i.split("-", 1)[0] == family]
        assert n == len(members) and mean == pytest.approx(sum(members) / n)


def test_compare_by_family_prints_each_runs_mean_and_difference(runs, capsys):
    from knowgen.eval.paired import family_means

    assert main(["compare", str(runs["direct"]), str(runs["oracle"]), "--resamples", "0",
                 "--by-family"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "by task family" in out
    direct, oracle = (family_means(run_scores(runs[p])) for p in ("direct", "oracle"))
    for family, (n, mean) in direct.items():
        delta = oracle[family][1] - mean
        assert f"{family} │ {n} │ {mean:.2f} │ {oracle[family][1]:.2f} ({delta:+.2f})" in out
    assert main(["compare", str(runs["direct"]), str(runs["oracle"]), "--resamples", "0"]) == 0
    assert "by task family" not in capsys.readouterr().out
