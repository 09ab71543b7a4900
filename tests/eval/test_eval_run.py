"""`knowgen eval` end to end on the offline world: files, formats, resuming after a kill."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from knowgen.cli import main
from knowgen.eval.report import load_summary

pytestmark = pytest.mark.slow


def _bench(tmp_path: Path) -> str:
    return f"world:cache_dir={tmp_path / 'cache'}"


def test_eval_writes_an_official_run_folder(tmp_path, capsys):
    run = tmp_path / "run"
    rc = main(["eval", "--policy", "oracle", "--limit", "4", "--benchmark", _bench(tmp_path),
               "--run-dir", str(run), "--no-progress"])
    assert rc == 0
    assert "K-Score" in capsys.readouterr().out
    results = json.loads((run / "results.json").read_text())
    assert len(results) == 4
    for item in results:
        assert set(item) == {"id", "success", "prompt", "meta", "output_path", "gt_image"}
        assert item["success"] is True
        assert set(item["meta"]) == {"category", "difficulty"}
        Image.open(run / item["output_path"]).verify()
        Image.open(run / item["gt_image"]).verify()
    summary = load_summary(run)
    assert summary["n_evaluated"] == 4 and summary["schema_version"] == 1
    assert summary["k_score"] > 80  # the oracle reproduces the ground truth
    lines = (run / "samples.jsonl").read_text().splitlines()
    sample = json.loads(lines[0])
    assert sample["trajectory"] and sample["image_judgement"]["overall"] >= 0.9
    assert {"image", "text", "alpha"} <= set(sample["reward_terms"])


def test_rerun_with_other_settings_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["eval", "--limit", "1", "--benchmark", _bench(tmp_path), "--run-dir", str(run),
            "--no-progress"]
    assert main([*args, "--policy", "direct"]) == 0
    assert main([*args, "--policy", "oracle"]) == 2
    assert "different settings" in capsys.readouterr().err


def test_killed_run_resumes_without_losing_or_repeating(tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "knowgen", "eval", "--policy", "scripted", "--limit", "12",
           "--benchmark", _bench(tmp_path), "--run-dir", str(run), "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = run / "samples.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline:
        if log.exists() and len(log.read_text().splitlines()) >= 3:
            break
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = [json.loads(x)["id"] for x in log.read_text().splitlines() if x.endswith("}")]
    assert 3 <= len(before) < 12
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    after = [json.loads(x)["id"] for x in log.read_text().splitlines()]
    assert len(after) == len(set(after)) == 12
    assert after[: len(before)] == before
    assert len(json.loads((run / "results.json").read_text())) == 12
