"""The sample log survives a kill mid-write; resuming checks the settings."""

import json

import pytest

from knowgen.errors import RunError
from knowgen.eval.rundir import SampleLog, atomic_write_json, check_resumable


def test_torn_last_line_is_dropped_and_cut(tmp_path):
    log = SampleLog(tmp_path / "samples.jsonl")
    log.append({"id": "a", "x": 1})
    log.append({"id": "b", "x": 2})
    with (tmp_path / "samples.jsonl").open("a") as fh:
        fh.write('{"id": "c", "x"')  # killed mid-write
    assert [r["id"] for r in log.read()] == ["a", "b"]
    log.append({"id": "c", "x": 3})
    assert [r["id"] for r in log.read()] == ["a", "b", "c"]


def test_atomic_write_leaves_no_temp_files(tmp_path):
    atomic_write_json(tmp_path / "out.json", {"a": 1})
    assert json.loads((tmp_path / "out.json").read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_resume_refuses_other_settings(tmp_path):
    meta = {"benchmark": "world", "split": "test", "policy": "direct", "seed": 0,
            "limit": None, "config": {}}
    atomic_write_json(tmp_path / "run.json", meta)
    check_resumable(tmp_path, meta)
    with pytest.raises(RunError, match="policy"):
        check_resumable(tmp_path, {**meta, "policy": "oracle"})


def test_resume_needs_run_json(tmp_path):
    with pytest.raises(RunError, match="not a knowgen run folder"):
        check_resumable(tmp_path, {})
