"""Run folders under kill -9 and corruption: every sample present exactly once after resume.

The matrix takes one real finished run of the offline world, damages a copy of
it in one way per case (or kills a real ``knowgen eval`` process with SIGKILL),
resumes it, and counts each task id in ``results.json`` and ``samples.jsonl``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from knowgen.config import EvalConfig
from knowgen.errors import RunError
from knowgen.eval.rundir import SampleLog, check_resumable, sample_problem
from knowgen.eval.runner import resume_config, run_eval
from knowgen.locking import FolderLock

LIMIT = 4


def _cfg(**kw) -> EvalConfig:
    cfg = EvalConfig(policy="direct", limit=LIMIT, seed=0)
    for key, value in kw.items():
        setattr(cfg, key, value)
    return cfg


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "base"
    run_eval(_cfg(), run_dir=run, progress=False, write_html=False)
    return run


def _counts(run: Path) -> tuple[Counter, Counter]:
    results = Counter(item["id"] for item in json.loads((run / "results.json").read_text()))
    lines = Counter(json.loads(line)["id"] for line in
                    (run / "samples.jsonl").read_text(encoding="utf-8").splitlines())
    return results, lines


def _lines(run: Path) -> list[bytes]:
    return (run / "samples.jsonl").read_bytes().splitlines(keepends=True)


def _write(run: Path, lines: list[bytes]) -> None:
    (run / "samples.jsonl").write_bytes(b"".join(lines))


CORRUPTIONS = {
    "torn last line": lambda ls: ls[:-1] + [ls[-1][: len(ls[-1]) // 2]],
    "bad line in the middle": lambda ls: ls[:1] + [b"{not json\n"] + ls[1:],
    "invalid UTF-8 byte": lambda ls: ls[:1] + [b'{"id": "\xff"}\n'] + ls[1:],
    "line holding only an id": lambda ls: [ls[0], json.dumps(
        {"id": json.loads(ls[1])["id"]}).encode() + b"\n"] + ls[2:],
    "a sample written twice": lambda ls: ls + [ls[0]],
    "a sample of another run": lambda ls: [json.dumps(
        {**json.loads(ls[0]), "run_id": "feedfacecafe"}).encode() + b"\n"] + ls[1:],
    "empty lines": lambda ls: [ls[0], b"\n", b"   \n"] + ls[1:],
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_corrupted_sample_log_resumes_with_every_sample_once(finished_run, tmp_path, case):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    before = _lines(run)
    damaged = CORRUPTIONS[case](list(before))
    _write(run, damaged)
    outcome = run_eval(_cfg(), run_dir=run, progress=False, write_html=False)
    results, lines = _counts(run)
    assert len(results) == LIMIT and set(results.values()) == {1}, results
    assert len(lines) == LIMIT and set(lines.values()) == {1}, lines
    quarantine = run / "samples.quarantine.jsonl"
    n_bad = len(quarantine.read_text().splitlines()) if quarantine.exists() else 0
    assert outcome.n_new == LIMIT - (len(damaged) - n_bad - (case == "empty lines") * 2)
    if case != "empty lines":
        assert n_bad >= 1, "a damaged line must be kept in quarantine, not dropped"
        kept = [json.loads(line) for line in quarantine.read_text().splitlines()]
        assert all(k["reason"] and k["line"] >= 1 for k in kept)


def test_deleted_run_json_refuses_resume_until_adopted(finished_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    (run / "run.json").unlink()
    with pytest.raises(RunError, match="--adopt"):
        run_eval(_cfg(policy="scripted", seed=3), run_dir=run, progress=False, write_html=False)
    outcome = run_eval(_cfg(), run_dir=run, progress=False, write_html=False, adopt=True)
    assert outcome.n_resumed == LIMIT and outcome.n_new == 0
    meta = json.loads((run / "run.json").read_text())
    assert meta["adopted"] is True and meta["policy"] == "direct"
    results, lines = _counts(run)
    assert set(results.values()) == {1} and len(lines) == LIMIT
    run_eval(_cfg(), run_dir=run, progress=False, write_html=False)  # resumes normally after


@pytest.mark.parametrize("content", [b"[]", b'{"benchmark": "wor\xffld"}', b"{", b'"text"'])
def test_unreadable_run_json_is_a_run_error(tmp_path, content):
    (tmp_path / "run.json").write_bytes(content)
    with pytest.raises(RunError, match="--adopt|new --run-dir"):
        check_resumable(tmp_path, {})


def test_resume_takes_the_settings_from_run_json(finished_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    cfg = resume_config(run)
    assert (cfg.policy, cfg.limit, cfg.seed) == ("direct", LIMIT, 0)
    outcome = run_eval(cfg, progress=False, write_html=False)
    assert outcome.run_dir == run and outcome.n_resumed == LIMIT


def test_a_run_grows_to_a_larger_limit_playing_only_the_tasks_it_lacks(finished_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    before = _lines(run)
    identity = json.loads((run / "run.json").read_text())
    cfg = resume_config(run, {"limit": 2 * LIMIT})  # knowgen eval --resume RUN --limit 8
    outcome = run_eval(cfg, progress=False, write_html=False)
    assert (outcome.n_resumed, outcome.n_new) == (LIMIT, LIMIT)
    assert _lines(run)[:LIMIT] == before  # the samples it had are kept as written
    results, lines = _counts(run)
    assert len(results) == len(lines) == 2 * LIMIT and set(results.values()) == {1}
    grown = json.loads((run / "run.json").read_text())
    assert grown["limit"] == 2 * LIMIT and grown["grown_from"] == [LIMIT]
    assert grown["run_id"] == identity["run_id"]
    assert json.loads((run / "summary.json").read_text())["n_samples"] == 2 * LIMIT
    again = run_eval(resume_config(run), progress=False, write_html=False)
    assert (again.n_resumed, again.n_new) == (2 * LIMIT, 0)


@pytest.mark.parametrize("limit", [LIMIT // 2, LIMIT + 2])
def test_a_run_does_not_shrink_or_move_to_other_tasks(finished_run, tmp_path, limit):
    # --limit 2 keeps two of the four tasks, --limit 6 a spread that misses some of them
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    before = (run / "run.json").read_bytes(), _lines(run)
    with pytest.raises(RunError, match=f"--limit {limit}: it ran --limit {LIMIT}.*new --run-dir"):
        run_eval(resume_config(run, {"limit": limit}), progress=False, write_html=False)
    assert ((run / "run.json").read_bytes(), _lines(run)) == before


@pytest.mark.parametrize("where", ["run.json", "summary.json"])
def test_a_folder_of_another_benchmark_version_is_not_resumed(finished_run, tmp_path, where):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    meta = json.loads((run / "run.json").read_text())
    current = meta["benchmark_version"]
    assert current and current != "1.t1"
    if where == "run.json":
        meta["benchmark_version"] = "1.t1"
    else:  # a folder written before run.json recorded the version: summary.json says it
        del meta["benchmark_version"]
        summary = json.loads((run / "summary.json").read_text())
        (run / "summary.json").write_text(json.dumps({**summary, "benchmark_version": "1.t1"}))
    (run / "run.json").write_text(json.dumps(meta))
    before = _lines(run)
    with pytest.raises(RunError, match=f"version 1.t1 .* version {re.escape(current)}"):
        run_eval(_cfg(), run_dir=run, progress=False, write_html=False)
    assert _lines(run) == before


def test_failed_start_leaves_no_folder(tmp_path):
    with pytest.raises(Exception, match="directt"):
        run_eval(_cfg(policy="directt"), run_dir=tmp_path / "r1", progress=False)
    with pytest.raises(RunError, match="limit"):
        run_eval(_cfg(limit=0), run_dir=tmp_path / "r2", progress=False)
    assert not (tmp_path / "r1").exists() and not (tmp_path / "r2").exists()


def test_one_writer_per_folder_and_stale_locks_are_taken_over(tmp_path):
    first = FolderLock(tmp_path, "run folder").acquire()
    with pytest.raises(RunError, match=f"pid {os.getpid()}"):
        FolderLock(tmp_path, "run folder").acquire()
    first.release()
    # a holder killed with SIGKILL leaves its lock file behind; the lock is free
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from knowgen.locking import FolderLock; "
        f"FolderLock({str(tmp_path)!r}).acquire(); print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(RunError, match=f"pid {holder.pid}"):
        FolderLock(tmp_path).acquire()
    holder.send_signal(signal.SIGKILL)
    holder.wait(10)
    assert (tmp_path / ".lock").exists()
    with FolderLock(tmp_path) as lock:
        assert lock.held


def test_a_write_killed_half_way_leaves_no_temporary_file_after_resume(finished_run, tmp_path):
    """A writer killed inside an atomic write leaves its temporary file; the next holder of
    the run folder's lock removes it (and only it: a judge folder inside the run, with a
    lock of its own, is that judge's to clear)."""
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    judged = run / "judged-x"
    judged.mkdir()
    (judged / ".lock").write_text("{}")
    judges_own = judged / ".scores.json.abcd1234.tmp"
    judges_own.write_text("{")
    keep = run / "images" / ".notes.tmp"  # not a name atomic_write makes
    keep.write_text("mine")
    script = "\n".join([
        "import time",
        "from knowgen.fileio import atomic_write",
        "from knowgen.locking import FolderLock",
        f"FolderLock({str(run)!r}).acquire()",
        "def write(fh):",
        "    fh.write(b'half a png'); fh.flush(); print('writing', flush=True); time.sleep(60)",
        f"atomic_write({str(run / 'images' / 'late.png')!r}, write)"])
    writer = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "writing"
    writer.send_signal(signal.SIGKILL)
    writer.wait(10)
    left = [p.name for p in (run / "images").iterdir() if p.name.startswith(".late.png.")]
    assert len(left) == 1 and left[0].endswith(".tmp"), left

    run_eval(resume_config(run), run_dir=run, progress=False, write_html=False)
    images = sorted(p.name for p in (run / "images").iterdir())
    outputs = sorted(Path(r["output_path"]).name
                     for r in json.loads((run / "results.json").read_text()))
    assert images == sorted([*outputs, keep.name])
    assert judges_own.read_text() == "{" and keep.read_text() == "mine"
    results, lines = _counts(run)
    assert len(results) == LIMIT and set(results.values()) == set(lines.values()) == {1}


def test_sample_problem_refuses_incomplete_records():
    assert sample_problem({"id": "a"})
    assert sample_problem({"id": "a", "success": True, "meta": {}})
    assert sample_problem({"id": "a", "success": False, "meta": {}, "run_id": "x"}, "y")
    assert not sample_problem({"id": "a", "success": False, "meta": {}})


def test_sample_log_keeps_lone_surrogates_readable(tmp_path):
    log = SampleLog(tmp_path / "s.jsonl")
    log.append({"id": "a", "text": "x\ud800"})
    assert log.read()[0]["text"] == "x\ud800"


@pytest.mark.slow
def test_kill_9_mid_run_then_resume_gives_every_sample_once(tmp_path):
    run = tmp_path / "run"
    limit = 12
    cmd = [sys.executable, "-m", "knowgen", "eval", "--policy", "scripted", "--limit",
           str(limit), "--run-dir", str(run), "--no-progress"]
    kills = 0
    for _ in range(3):  # kill it three times, each after at least one new sample
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        log = run / "samples.jsonl"
        start_lines = len(log.read_bytes().splitlines()) if log.exists() else 0
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if log.exists() and len(log.read_bytes().splitlines()) > start_lines:
                break
            time.sleep(0.05)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(30)
    assert kills >= 1
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    results, lines = _counts(run)
    assert len(results) == limit and set(results.values()) == {1}
    assert len(lines) == limit and set(lines.values()) == {1}


class _SlowToBuild:
    """A policy whose constructor notes how many of its kind are being built at once."""

    building = 0
    most = 0
    lock = threading.Lock()

    def __init__(self, seed: int = 0):
        from knowgen.reference_policies.direct import DirectPolicy

        with self.lock:
            type(self).building += 1
            type(self).most = max(type(self).most, type(self).building)
        time.sleep(0.3)  # as long as a lazy import of a heavy library takes
        with self.lock:
            type(self).building -= 1
        self.inner = DirectPolicy()

    def reset(self, obs, info):
        self.inner.reset(obs, info)

    def act(self, obs, info):
        return self.inner.act(obs, info)


def test_workers_build_their_policies_one_at_a_time(tmp_path, monkeypatch):
    """Two worker threads never run a backend's lazy imports side by side."""
    from knowgen.registry import POLICIES

    monkeypatch.setitem(POLICIES._entries, "slow-to-build", _SlowToBuild)
    cfg = _cfg(policy="slow-to-build", limit=4, workers=2)
    outcome = run_eval(cfg, run_dir=tmp_path / "run", progress=False, write_html=False)
    assert _SlowToBuild.most == 1
    assert outcome.summary["n_samples"] == 4
