"""``knowgen train``: parsing, the data command, errors as exit status 2."""

import argparse

import pytest

from knowgen.agents.expert_data import read_jsonl
from knowgen.agents.train.cli import add_train_parser, main
from knowgen.agents.train.config import load_train_config, parse_set_options
from knowgen.config import CLEAR
from knowgen.errors import ConfigError


def _parse(*argv):
    parser = argparse.ArgumentParser(prog="knowgen")
    add_train_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["train", *argv])


def test_sub_commands_parse_with_config_and_overrides():
    args = _parse("sft", "--config", "smoke", "--set", "sft.epochs=2", "--out", "/tmp/r")
    assert (args.train_command, args.config, args.set, args.out) == (
        "sft", "smoke", ["sft.epochs=2"], "/tmp/r")
    assert _parse("tiny", "--out", "d").config == "tiny"
    assert _parse("grpo").train_command == "grpo"
    with pytest.raises(SystemExit):
        _parse("data")  # --out is required


def test_set_values_are_typed_and_checked():
    assert parse_set_options(["sft.epochs=2", "grpo.alpha=0.3", "sft.init=null"]) == {
        "sft.epochs": 2, "grpo.alpha": 0.3, "sft.init": CLEAR}
    with pytest.raises(ConfigError, match="key=value"):
        parse_set_options(["sft.epochs"])
    cfg = load_train_config("tiny", parse_set_options(["grpo.alpha=0", "model.layers=6"]))
    assert cfg.grpo.alpha == 0.0 and cfg.model.layers == 6 and cfg.sft.learning_rate == 1.5e-3


def test_set_null_unsets_what_the_preset_sets():
    assert load_train_config("smollm2", {}).sft.max_records == 700
    cfg = load_train_config("smollm2", parse_set_options(["sft.max_records=null"]))
    assert cfg.sft.max_records is None
    assert load_train_config("smoke", {}).grpo.limit == 4
    assert load_train_config("smoke", parse_set_options(["grpo.limit="])).grpo.limit is None
    # a None override (a CLI flag left unset) still keeps the preset's value
    assert load_train_config("smollm2", {"sft.max_records": None}).sft.max_records == 700


@pytest.mark.slow
def test_data_command_writes_records(tmp_path):
    out = tmp_path / "d.jsonl"
    assert main(["data", "--config", "smoke", "--limit", "3", "--out", str(out)]) == 0
    records = read_jsonl(out)
    assert 1 <= len(records) <= 3 and records[0]["messages"][0]["role"] == "system"


@pytest.mark.slow
def test_errors_exit_with_status_2(tmp_path, capsys):
    assert main(["sft", "--config", "smoke", "--set", "sft.epoch=1"]) == 2
    assert "Did you mean 'epochs'" in capsys.readouterr().err
    assert main(["grpo", "--config", "smoke", "--out", str(tmp_path)]) == 2
    assert "knowgen train sft" in capsys.readouterr().err
