"""The training commands end to end at smoke size, as a user types them, then an eval."""

import json
import re

import pytest

from knowgen.agents.expert_data import write_jsonl
from knowgen.agents.grammar import ReplyGrammar
from knowgen.cli import main


@pytest.mark.slow
def test_train_sft_then_grpo_then_eval_from_the_command_line(tmp_path, expert_records, capsys,
                                                              world_benchmark):
    data = write_jsonl(expert_records, tmp_path / "data.jsonl")
    out = tmp_path / "run"
    capsys.readouterr()
    assert main(["train", "sft", "--config", "smoke", "--out", str(out), "--no-progress",
                 "--set", f"sft.data={data}"]) == 0
    sft_final = out / "sft" / "final"
    assert (sft_final / "knowgen_agent.json").is_file()
    printed = capsys.readouterr()
    # --no-progress: no bar at all (copy pre-training, warm-up, SFT, dataset preparation,
    # shard writing), and no library deprecation warning a user cannot act on
    assert "%|" not in printed.err + printed.out and "it/s" not in printed.err
    assert "FutureWarning" not in printed.err and "{'loss'" not in printed.out + printed.err
    assert main(["train", "grpo", "--config", "smoke", "--out", str(out)]) == 0
    printed = capsys.readouterr()
    # with bars: one per stage, metrics in the log rather than re-printed with the bar
    assert "GRPO:" in printed.err and "Writing model shards" not in printed.err
    assert "attempting to log a value" not in printed.err
    assert "FutureWarning" not in printed.err and "{'loss'" not in printed.out + printed.err
    grpo_final = out / "grpo" / "final"
    meta = json.loads((grpo_final / "knowgen_agent.json").read_text())
    # the smoke preset trains in the compact view: two tools, stored with the checkpoint
    assert {t["function"]["name"] for t in meta["tools"]} == {"image_search", "search"}
    assert meta["view"] == "compact" and meta["generation"]["format_retries"] == 1
    assert meta["generation"]["grammar"] is True
    capsys.readouterr()

    cache = world_benchmark.gt_dir.parent.parent
    run = tmp_path / "eval"
    rc = main(["eval", "--policy", f"transformers:path={grpo_final},device=cpu",
               "--benchmark", f"world:cache_dir={cache}", "--limit", "2",
               "--run-dir", str(run), "--no-progress"])
    assert rc == 0, capsys.readouterr().out
    samples = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 2 and all(s["turns"] >= 1 for s in samples)
    # constrained decoding: every turn is a well-formed start of a tool call or an answer
    for sample in samples:
        shown = {i for step in sample["trajectory"]
                 for i in re.findall(r"IMG_\d{3}", step["observation"])}
        for step in sample["trajectory"]:
            assert ReplyGrammar(meta["tools"], shown).feed(step["action"]), step["action"]
