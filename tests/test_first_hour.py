"""What a new user meets in the first hour: messages, help, configs, packaging."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pytest

from knowgen.cli import build_parser, main
from knowgen.config import EvalConfig, load_config

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------ 1. install hints

def test_install_hint_keeps_its_extra(monkeypatch, capsys):
    # without fastapi the generator server says which extra to install; the message goes
    # through the CLI's console, which must not eat "[serve]" as markup
    monkeypatch.setitem(sys.modules, "fastapi", None)
    rc = main(["serve", "generator", "--generator", "compositor", "--port", "0"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "pip install 'knowgen[serve]'" in " ".join(err.split())


def test_error_text_in_square_brackets_prints_as_it_is(capsys, tmp_path):
    missing = tmp_path / "run[serve]"
    rc = main(["report", str(missing)])
    assert rc == 2
    assert "run[serve]" in " ".join(capsys.readouterr().err.split())


# ------------------------------------------------------------ 4. train without the extra

def test_train_without_the_extra_fails_at_once_in_one_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "trl", None)
    out = tmp_path / "tiny"
    start = time.perf_counter()
    rc = main(["train", "tiny", "--config", "smoke", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1, err
    assert "'trl'" in err and "pip install 'knowgen[train]'" in err
    assert not out.exists()  # no expert data was rendered before the check
    assert time.perf_counter() - start < 30  # nothing expensive ran (a generous bound)


# ------------------------------------------------------------ 6. eval YAML

def test_flat_and_nested_environment_settings_mean_the_same(tmp_path):
    flat, nested = tmp_path / "flat.yaml", tmp_path / "nested.yaml"
    flat.write_text("benchmark: world\nsplit: val\npolicy: oracle\n")
    nested.write_text("env:\n  benchmark: world\n  split: val\npolicy: oracle\n")
    a, b = load_config(EvalConfig, flat), load_config(EvalConfig, nested)
    assert a == b and a.env.split == "val" and a.policy == "oracle"
    both = tmp_path / "both.yaml"
    both.write_text("split: val\nenv:\n  split: test\n")
    with pytest.raises(Exception, match="both at the top level and under 'env'"):
        load_config(EvalConfig, both)
    typo = tmp_path / "typo.yaml"
    typo.write_text("benchmrk: world\n")
    with pytest.raises(Exception, match="Did you mean 'benchmark'"):
        load_config(EvalConfig, typo)


@pytest.mark.slow
def test_the_example_eval_yaml_runs(tmp_path):
    example = ROOT / "examples" / "eval_world.yaml"
    cfg = load_config(EvalConfig, example)
    assert cfg.env.benchmark == "world" and cfg.limit == 6
    rc = main(["eval", "--config", str(example), "--run-dir", str(tmp_path / "run"),
               "--no-progress"])
    assert rc == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["n_samples"] == 6 and summary["policy"] == "scripted"


# ------------------------------------------------------------ 7. packaging

def test_packaging_lists_every_folder_that_ships():
    """setuptools warns ("package would be ignored") for each shipped folder not listed."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert isinstance(meta["project"]["license"], str)  # SPDX string, not the deprecated table
    st = meta["tool"]["setuptools"]
    listed = set(st["packages"])
    for package, folder in st["package-dir"].items():
        base = ROOT / folder
        for sub in [base, *(p for p in base.rglob("*") if p.is_dir())]:
            rel = sub.relative_to(base).parts
            if "__pycache__" in rel or any(part.startswith(".") for part in rel):
                continue
            name = ".".join((package, *rel))
            if not all(part.isidentifier() for part in rel):
                continue  # e.g. a checkpoint folder: data below a listed package
            has_files = any(p.is_file() for p in sub.iterdir())
            if has_files and not any(name == p or name.startswith(p + ".") and
                                     p.count(".") >= name.count(".") for p in listed):
                pytest.fail(f"{sub} ships files but {name} is not in [tool.setuptools] packages")


# ------------------------------------------------------------ 8. help

def _parsers():
    todo = [("knowgen", build_parser())]
    while todo:
        path, parser = todo.pop()
        yield path, parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                helps = {a.dest: a.help for a in action._choices_actions}
                for name, sub in action.choices.items():
                    assert helps.get(name), f"'{path} {name}' has no help text"
                    todo.append((f"{path} {name}", sub))


def test_help_is_plain_text_with_help_and_defaults_everywhere():
    seen = 0
    for path, parser in _parsers():
        text = parser.format_help()
        assert "``" not in text and ":class:" not in text and ":mod:" not in text, path
        assert "`" not in text, f"reST backticks in '{path} --help'"
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            assert action.help, f"{path} {action.option_strings or action.dest} has no help"
            has_default = action.default not in (None, False, argparse.SUPPRESS, [])
            if action.option_strings and has_default:
                flag = action.option_strings[-1]
                rendered = parser.formatter_class(prog="x")._get_help_string(action)
                assert "default" in rendered.lower(), f"{path} {flag} does not show its default"
        seen += 1
    assert seen > 15


def test_eval_help_shows_the_config_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "(default: scripted)" in out and "(default: compositor)" in out


@pytest.mark.parametrize("argv, usage, hint", [
    (["judge", "r.json", "--stirct"], "usage: knowgen judge", "Did you mean --strict?"),
    (["train", "sft", "--outt", "x"], "usage: knowgen train sft", "Did you mean --out?"),
    (["compare", "a", "--titel", "t"], "usage: knowgen compare", "Did you mean --title?"),
])
def test_a_mistyped_flag_shows_the_sub_command_usage(argv, usage, hint, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.startswith(usage) and hint in err


def _fake_run(folder: Path, policy: str, ids: list[str], split: str = "test") -> Path:
    folder.mkdir(parents=True)
    group = {"avg_scores": dict.fromkeys(("faithfulness", "visual_correctness", "text_accuracy",
                                          "aesthetics", "overall"), 0.5), "count": len(ids)}
    summary = {"benchmark": "world", "split": split, "policy": policy, "seed": 0,
               "n_samples": len(ids), "n_evaluated": len(ids), "k_score": 50.0,
               "scores": {"groups": {"science_and_knowledge": group,
                                     "pop_culture_and_news": group},
                          "overall_avg": group},
               "mean_text_score": 0.5, "mean_reward": 0.5, "mean_turns": 2.0}
    (folder / "summary.json").write_text(json.dumps(summary))
    (folder / "results.json").write_text(json.dumps([{"id": i} for i in ids]))
    return folder


def test_compare_labels_runs_and_warns_on_different_task_sets(tmp_path, capsys):
    a = _fake_run(tmp_path / "a", "direct", ["t1", "t2"])
    b = _fake_run(tmp_path / "b", "oracle", ["t1", "t2"])
    assert main(["compare", str(a), str(b), "--resamples", "0"]) == 0
    out, err = capsys.readouterr()
    assert "direct · world/test · 0" in out and "2/2" in out
    assert "warning" not in err
    assert main(["compare", str(a), str(b)]) == 0  # folders with a summary but no samples
    out, err = capsys.readouterr()
    assert "2/2" in out and "no paired comparison: Cannot pair the tasks" in " ".join(err.split())
    c = _fake_run(tmp_path / "c", "scripted", ["t1", "t2", "t3"])
    assert main(["compare", str(a), str(c)]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "different task sets (a: 2, c: 3 tasks)" in err
    d = _fake_run(tmp_path / "d", "scripted", ["t1", "t2"], split="val")
    main(["compare", str(a), str(d)])
    assert "different benchmarks or splits" in " ".join(capsys.readouterr().err.split())


def test_text_means_one_thing_per_table(tmp_path):
    from knowgen.eval.report import category_table, comparison_table

    run = _fake_run(tmp_path / "a", "direct", ["t1"])
    summary = json.loads((run / "summary.json").read_text())
    summary["scores"]["categories"] = {"art": summary["scores"]["overall_avg"]}
    for table in (comparison_table([summary]), category_table(summary)):
        headers = [str(c.header) for c in table.columns]
        assert "text" not in headers  # "T"/"text acc." (text in the image) vs "answer"
        assert "text in the image" in str(table.caption)
