"""Real runs on the offline world: seeding a board, and spot checks with the offline judge."""

import json
import shutil

import pytest

from knowgen.leaderboard import add, build, seed_board, submission_meta, write_submission

pytestmark = pytest.mark.slow


def test_seeded_board_matches_the_runs(world_runs, tmp_path):
    runs = world_runs["runs"]
    board, site = tmp_path / "board", tmp_path / "site"
    entries = seed_board(runs.values(), board, site)
    assert len(entries) == 3
    for policy, entry in zip(runs, entries):
        summary = json.loads((runs[policy] / "summary.json").read_text())
        assert entry["scores"]["headline"] == summary["k_score"]
        assert entry["scores"]["detail"]["groups"] == summary["scores"]["groups"]
        assert entry["submission"]["agent"] == policy
        assert entry["submission"]["benchmark"]["limit"] == 6
        assert entry["corrections"] == []
    index = (site / "index.html").read_text()
    order = [index.index(f'data-entry="{e["entry_id"]}"') for e in
             sorted(entries, key=lambda e: -e["scores"]["headline"])]
    assert order == sorted(order)  # ranked by K-Score
    assert entries[1]["scores"]["headline"] > entries[0]["scores"]["headline"]  # oracle > direct


def _tamper(run, dest):
    """A copy of ``run`` whose every judgement claims full marks."""
    shutil.copytree(run, dest)
    lines = []
    for line in (dest / "samples.jsonl").read_text().splitlines():
        rec = json.loads(line)
        rec["image_judgement"].update(faithfulness=1.0, visual_correctness=1.0,
                                      text_accuracy=1.0, aesthetics=1.0, overall=1.0)
        lines.append(json.dumps(rec))
    (dest / "samples.jsonl").write_text("\n".join(lines) + "\n")
    return dest


def test_rejudging_flags_inflated_scores_only(world_runs, tmp_path):
    board = tmp_path / "board"
    bench = world_runs["benchmarks"]
    honest = write_submission(world_runs["runs"]["oracle"], tmp_path / "honest.zip")
    fake_run = _tamper(world_runs["runs"]["direct"], tmp_path / "fake_run")
    fake = write_submission(fake_run, tmp_path / "fake.tar.gz",
                            submission_meta(fake_run, system="too good to be true"))
    ok = add(honest, board, rejudge_fraction=0.5, judge="offline", benchmarks=bench)
    bad = add(fake, board, rejudge_fraction=0.5, judge="offline", benchmarks=bench, seed=3)
    assert ok["rejudge"]["n"] == 3 and ok["rejudge"]["mean_abs_diff"] <= 0.05
    assert ok["flagged"] is False
    assert bad["rejudge"]["n"] == 3 and bad["rejudge"]["mean_abs_diff"] > 0.15
    assert bad["flagged"] is True and "exceeds" in bad["flags"][0]
    assert bad["scores"]["headline"] == 100.0  # the judgements are on scale: no proof of fraud
    assert any(c.startswith("summary.json: k_score") for c in bad["corrections"])
    text = build(board, tmp_path / "site").read_text()
    assert text.count('class="flagged"') == 1


def test_board_seeded_with_the_bundled_agent(world_runs, tmp_path):
    """The packaged gen-searcher-tiny agent's run seeds the board beside a reference policy."""
    pytest.importorskip("transformers")
    from knowgen.agents.policy import tiny_checkpoint_dir
    from knowgen.cli import main

    if not (tiny_checkpoint_dir() / "config.json").is_file():
        pytest.skip("no gen-searcher-tiny checkpoint is installed")
    run = tmp_path / "gen-searcher-tiny"
    assert main(["eval", "--policy", "gen-searcher-tiny", "--limit", "3", "--benchmark",
                 world_runs["spec"], "--run-dir", str(run), "--no-progress"]) == 0
    entries = seed_board([world_runs["runs"]["direct"], run], tmp_path / "board",
                         tmp_path / "site")
    summary = json.loads((run / "summary.json").read_text())
    assert [e["submission"]["agent"] for e in entries] == ["direct", "gen-searcher-tiny"]
    assert entries[1]["scores"]["headline"] == summary["k_score"] and not entries[1]["corrections"]
    assert "gen-searcher-tiny" in (tmp_path / "site" / "index.html").read_text()
