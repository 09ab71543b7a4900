"""Every bad command line ends in a one-line error that says what to do, never a traceback.

The lines are in ``bad_command_lines.txt`` beside this file. Each runs in-process
through :func:`knowgen.cli.main` (argument errors exit through ``SystemExit``),
in a fresh folder, with placeholders pointing at real files that are wrong in a
known way. A few lines also run as a real ``knowgen`` subprocess, to check what
a user sees on the terminal.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import traceback
from pathlib import Path

import pytest

from knowgen.cli import main

LINES_FILE = Path(__file__).with_name("bad_command_lines.txt")
NOWHERE = "/proc/knowgen-cannot-create-this"  # refused even to root


def _lines() -> list[str]:
    return [line.strip() for line in LINES_FILE.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.startswith("#")]


def _submission(root: Path, yaml_text: str) -> Path:
    root.mkdir()
    (root / "submission.yaml").write_text(yaml_text, encoding="utf-8")
    (root / "results.json").write_text("[]", encoding="utf-8")
    (root / "samples.jsonl").write_text("", encoding="utf-8")
    return root


def _placeholders(tmp: Path) -> dict[str, str]:
    note = tmp / "note.txt"
    note.write_text("just some text\n", encoding="utf-8")
    bad = tmp / "bad.yaml"
    bad.write_bytes(b"policy: \xff\xfe\xfa\n")
    empty = tmp / "empty"
    empty.mkdir()
    orphan = tmp / "orphan"
    orphan.mkdir()
    (orphan / "samples.jsonl").write_text('{"id": "x", "success": false, "meta": {}}\n')
    run_list = tmp / "run_list"
    run_list.mkdir()
    (run_list / "run.json").write_text("[]")
    run_bytes = tmp / "run_bytes"
    run_bytes.mkdir()
    (run_bytes / "run.json").write_bytes(b'{"benchmark": "world\xff"}')
    unfinished = tmp / "unfinished"
    unfinished.mkdir()
    (unfinished / "run.json").write_text(json.dumps(
        {"benchmark": "world", "split": "test", "policy": "direct", "seed": 0, "limit": 1,
         "config": {}, "run_id": "0123456789ab"}))
    bad_summary = tmp / "bad_summary"
    bad_summary.mkdir()
    (bad_summary / "summary.json").write_text("{not json")
    (tmp / "images").mkdir()
    results = tmp / "results.json"
    results.write_text(json.dumps([{"id": "a", "success": False, "prompt": "p",
                                    "meta": {"category": "geography"}, "output_path": None,
                                    "gt_image": "gt/a.png"}]))
    results_obj = tmp / "results_obj.json"
    results_obj.write_text('{"id": "a"}')
    deep_json = tmp / "deep.json"
    deep_json.write_text("[" * 100_000 + "]" * 100_000)
    unknown_yaml = tmp / "unknown.yaml"
    unknown_yaml.write_text("polcy: direct\n")
    deep = "a: " + "[" * 200 + "]" * 200 + "\n"
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))
    return {
        "tmp": str(tmp), "file": str(note), "nowhere": NOWHERE, "empty": str(empty),
        "badutf8": str(bad), "orphan": str(orphan), "run_list": str(run_list),
        "run_bytes": str(run_bytes), "unfinished": str(unfinished),
        "bad_summary": str(bad_summary), "results": str(results),
        "results_obj": str(results_obj), "deep_json": str(deep_json),
        "unknown_yaml": str(unknown_yaml),
        "deep_sub": str(_submission(tmp / "deep_sub", deep)),
        "bomb_sub": str(_submission(tmp / "bomb_sub", bomb)),
    }


def test_the_list_is_long_enough():
    assert len(_lines()) >= 80


@pytest.mark.parametrize("line", _lines())
def test_bad_command_line_gives_one_line_error(line, tmp_path, monkeypatch, capsys):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    places = _placeholders(tmp_path)
    args = [a.format(**places) for a in shlex.split(line)]
    try:
        code = main(args)
    except SystemExit as exc:  # argparse: usage plus one error line
        code = exc.code
    except BaseException:  # noqa: BLE001 - the point of the test
        pytest.fail(f"{line!r} raised:\n{traceback.format_exc()}")
    out, err = capsys.readouterr()
    assert code not in (0, None), f"{line!r} was accepted:\n{out}\n{err}"
    assert "Traceback" not in out + err
    if code == 1 and line.startswith("leaderboard validate"):
        # validate's answer is its report: every problem, one a line, on stdout
        assert "error(s)" in out and not err.strip(), out + err
    else:
        # one line that starts with "error:" (a refused submission lists its problems below it)
        # (the terminal may wrap that line; the wrapped rest does not start with "error:")
        errors = [ln for ln in err.splitlines() if ln.startswith("error:")
                  or (ln.startswith("knowgen") and ": error:" in ln)]
        assert len(errors) == 1, f"{line!r} should print one error line, got:\n{err}"
        assert "internal error" not in err, err
        assert len(err.strip()) > len("error: ") + 20, f"{line!r}: the error says too little: {err}"
    assert not list(work.iterdir()), f"{line!r} left {sorted(os.listdir(work))} behind"


@pytest.mark.parametrize("line", ["eval --seed -1", "judge {empty}", "compare /no/such/path",
                                  "serve retriever --port 99999"])
def test_bad_command_line_in_a_terminal(line, tmp_path):
    places = _placeholders(tmp_path)
    args = [a.format(**places) for a in shlex.split(line)]
    proc = subprocess.run([sys.executable, "-m", "knowgen", *args], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert next(ln for ln in proc.stderr.splitlines() if ln.strip()).startswith("error:")
