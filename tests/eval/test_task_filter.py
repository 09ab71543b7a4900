"""`knowgen eval --tasks`: a run of only the tasks whose ids match, on the offline world."""

import json
from fnmatch import fnmatchcase
from pathlib import Path

import pytest

from knowgen.cli import main
from knowgen.errors import RunError
from knowgen.eval.runner import match_tasks, select_tasks
from knowgen.registry import BENCHMARKS

pytestmark = pytest.mark.slow

PATTERNS = "flag_by_neighbours-*,capital_of_city-*"


def _ids(run: Path) -> list[str]:
    return [json.loads(line)["id"] for line in (run / "samples.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> str:
    return f"world:cache_dir={tmp_path_factory.mktemp('world') / 'cache'}"


def test_a_run_plays_only_the_matching_tasks_and_grows_within_them(bench, tmp_path, capsys):
    split = BENCHMARKS.create(bench).tasks("test-ood")
    matching = [t.id for t in split if any(fnmatchcase(t.id, p) for p in PATTERNS.split(","))]
    assert 2 < len(matching) < len(split)
    run = tmp_path / "run"
    args = ["eval", "--policy", "direct", "--benchmark", bench, "--split", "test-ood",
            "--no-progress"]
    assert main([*args, "--tasks", PATTERNS, "--limit", "4", "--run-dir", str(run)]) == 0
    played = _ids(run)
    assert len(played) == 4 and set(played) <= set(matching)
    assert {i.split("-")[0] for i in played} == {"flag_by_neighbours", "capital_of_city"}
    assert json.loads((run / "run.json").read_text())["tasks"] == PATTERNS
    # --resume reads the patterns from run.json; a larger --limit grows within them
    assert main(["eval", "--resume", str(run), "--limit", "8", "--no-progress"]) == 0
    assert set(_ids(run)) <= set(matching) and len(set(_ids(run))) == 8
    # other patterns are other settings: refused, the folder untouched
    before = (run / "samples.jsonl").read_bytes()
    assert main([*args, "--tasks", "flag_by_neighbours-*", "--limit", "8",
                 "--run-dir", str(run)]) == 2
    assert "different settings (tasks)" in capsys.readouterr().err
    assert (run / "samples.jsonl").read_bytes() == before


def test_a_pattern_that_matches_nothing_is_refused_with_the_closest_family(bench, tmp_path,
                                                                           capsys):
    run = tmp_path / "run"
    args = ["eval", "--policy", "direct", "--benchmark", bench, "--split", "test-ood",
            "--run-dir", str(run), "--no-progress"]
    assert main([*args, "--tasks", "flag_by_neighbour-*"]) == 2
    err = capsys.readouterr().err
    assert "matches no task" in err and "Did you mean 'flag_by_neighbours-*'" in err
    assert main([*args, "--tasks", " , "]) == 2
    assert "holds no pattern" in capsys.readouterr().err
    assert not run.exists()  # refused before the run folder was made


def test_patterns_filter_before_the_limit_spreads_over_them(bench):
    split = BENCHMARKS.create(bench).tasks("test-ood")
    one = split[3].id
    assert [t.id for t in select_tasks(split, 5, one)] == [one]  # an id without wildcards
    neighbours = match_tasks(split, "flag_by_neighbours-*")
    assert [t.id for t in select_tasks(split, 2, "flag_by_neighbours-*")] == [
        neighbours[0].id, neighbours[len(neighbours) // 2].id]
    with pytest.raises(RunError, match=r"'FLAG_BY_NEIGHBOURS-\*' matches no task"):  # case
        match_tasks(split, "FLAG_BY_NEIGHBOURS-*")
