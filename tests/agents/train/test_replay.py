"""Replay data: an evaluation run's own well-paid episodes become SFT records (`knowgen train
data --from-run`), trained beside the selected records through `sft.replay`."""

import json
from pathlib import Path

import pytest

from knowgen.agents.expert_data import read_jsonl
from knowgen.agents.run_records import run_records
from knowgen.agents.train.config import load_train_config
from knowgen.cli import main
from knowgen.envs.messages import strip_tool_response
from knowgen.errors import ConfigError, RunError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> str:
    return f"world:cache_dir={tmp_path_factory.mktemp('world') / 'cache'}"


@pytest.fixture(scope="module")
def train_run(bench, tmp_path_factory) -> Path:
    """A real `knowgen eval` run of the scripted policy on six tasks of the train split."""
    run = tmp_path_factory.mktemp("runs") / "own"
    assert main(["eval", "--policy", "scripted", "--benchmark", bench, "--split", "train",
                 "--limit", "6", "--run-dir", str(run), "--no-progress"]) == 0
    return run


def _samples(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]


def test_the_well_paid_episodes_of_a_train_run_become_records(train_run, tmp_path, capsys):
    samples = _samples(train_run)
    paid = [s for s in samples if s["reward"] >= 0.75 and not s["fallback_generation"]]
    assert 0 < len(paid) <= len(samples) == 6
    out = tmp_path / "replay.jsonl"
    assert main(["train", "data", "--from-run", str(train_run), "--out", str(out),
                 "--no-progress"]) == 0
    assert "replay data done" in capsys.readouterr().out
    records = read_jsonl(out)
    assert [r["task_id"] for r in records] == [s["id"] for s in paid]
    for record, sample in zip(records, paid, strict=True):
        messages = record["messages"]
        assert [m["role"] for m in messages[:2]] == ["system", "user"]
        assert messages[1]["content"] == sample["prompt"]
        assert record["reward"] == sample["reward"] and record["expert"] == "run:scripted"
        turns = sample["trajectory"]
        assert sum(m["role"] == "assistant" for m in messages) == len(turns)
        tool_results = [m["content"] for m in messages if m["role"] == "tool"]
        assert tool_results == [strip_tool_response(t["observation"]) for t in turns[:-1]]
    # a higher bar keeps fewer; the counts say why the others were left out
    best = max(s["reward"] for s in paid)
    kept, stats = run_records(train_run, min_reward=best)
    assert len(kept) == sum(s["reward"] >= best for s in paid) >= 1
    assert stats["read"] == 6 and stats["kept"] + stats["low_reward"] + stats["fallback"] == 6


def test_replayed_records_train_beside_the_selected_ones(train_run, tmp_path,
                                                         expert_records):
    from knowgen.agents.expert_data import write_jsonl
    from knowgen.agents.train.sft_data import sft_records, training_records

    replay, _ = run_records(train_run)
    data = write_jsonl(expert_records, tmp_path / "data.jsonl")
    cfg = load_train_config("smollm2", {"output_dir": str(tmp_path / "out"), "sft.data": str(data),
                                        "sft.max_records": 3})
    selected = sft_records(cfg)
    cfg.sft.replay = str(write_jsonl(replay, tmp_path / "replay.jsonl"))
    both = training_records(cfg)
    assert len(selected) == 3 and len(both) == 3 + len(replay)
    assert [r["task_id"] for r in both[3:]] == [r["task_id"] for r in replay]
    # the compact view reaches the replayed records too: no addresses in their tool results
    assert any("url:" in m["content"] for r in replay for m in r["messages"]
               if m["role"] == "tool")
    assert not any("url:" in m["content"] for r in both[3:] for m in r["messages"]
                   if m["role"] == "tool")


def test_a_held_out_run_or_a_damaged_one_is_refused_or_reported(bench, train_run, tmp_path,
                                                                 caplog, capsys):
    held_out = tmp_path / "ood"
    assert main(["eval", "--policy", "direct", "--benchmark", bench, "--split", "test-ood",
                 "--limit", "2", "--run-dir", str(held_out), "--no-progress"]) == 0
    with pytest.raises(ConfigError, match="'test-ood' split, which is held out"):
        run_records(held_out)
    assert main(["train", "data", "--from-run", str(held_out), "--out",
                 str(tmp_path / "x.jsonl"), "--no-progress"]) == 2
    assert "--split train" in capsys.readouterr().err
    assert main(["train", "data", "--from-run", str(train_run), "--expert", "guided",
                 "--out", str(tmp_path / "x.jsonl"), "--no-progress"]) == 2
    assert "--expert has nothing to set" in capsys.readouterr().err
    with pytest.raises(RunError, match="no run.json"):
        run_records(tmp_path)
    # a copy whose samples are damaged: the broken line and the one without a trajectory
    # are named, the rest replayed
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "run.json").write_text((train_run / "run.json").read_text())
    samples = _samples(train_run)
    samples[1]["trajectory"] = "lost"
    lines = [json.dumps(s) for s in samples]
    (copy / "samples.jsonl").write_text("\n".join([lines[0], "{not json", *lines[1:]]) + "\n")
    whole, _ = run_records(train_run, min_reward=0.0)
    kept, stats = run_records(copy, min_reward=0.0)
    assert stats["unusable"] == 1 and stats["unusable_samples"][0].startswith(samples[1]["id"])
    assert len(kept) == len(whole) - (not samples[1]["fallback_generation"])
    assert "Left out 1 line(s)" in caplog.text and "cannot be replayed" in caplog.text
