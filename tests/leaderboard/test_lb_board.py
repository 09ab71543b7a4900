"""add() and build(): entries as plain files, the static site, escaping, judges kept apart."""

import json
import re

import pytest
import yaml
from PIL import Image

from knowgen.errors import DataError
from knowgen.eval.results import sample_scores
from knowgen.eval.scoring import aggregate_knowgen
from knowgen.leaderboard import add, build, load_entries
from knowgen.leaderboard.cli import main
from knowgen.leaderboard.seed import write_submission

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def _samples(sub):
    return [json.loads(line) for line in (sub / "samples.jsonl").read_text().splitlines()]


def test_add_stores_recomputed_entry_and_small_images(make_submission, kg_bench, tmp_path):
    sub = make_submission()
    board = tmp_path / "board"
    entry = add(sub, board, benchmarks=kg_bench["benchmarks"])
    folder = board / "entries" / entry["entry_id"]
    assert json.loads((folder / "entry.json").read_text()) == entry
    agg = aggregate_knowgen(sample_scores(_samples(sub)))
    assert entry["scores"]["headline"] == agg.k_score
    assert entry["scores"]["groups"] == {g: s.avg_scores["overall"] for g, s in agg.groups.items()}
    assert entry["corrections"] == [] and entry["flagged"] is False
    assert [r["id"] for r in entry["samples"]] == [r["id"] for r in kg_bench["records"]]
    for row in entry["samples"]:
        for key in ("image", "gt"):
            with Image.open(folder / row[key]) as im:
                assert max(im.size) <= 320
    assert sorted(p.name for p in board.iterdir()) == ["entries"]


def test_same_submission_twice_is_refused_in_any_packing(make_submission, kg_bench, tmp_path):
    sub = make_submission()
    meta = yaml.safe_load((sub / "submission.yaml").read_text())
    board = tmp_path / "board"
    first = add(write_submission(sub, tmp_path / "s.tar.gz", meta), board,
                benchmarks=kg_bench["benchmarks"])
    with pytest.raises(DataError, match=first["entry_id"]):
        add(sub, board, benchmarks=kg_bench["benchmarks"])
    with pytest.raises(DataError, match="already on the board"):
        add(write_submission(sub, tmp_path / "s.zip", meta), board,
            benchmarks=kg_bench["benchmarks"])
    assert len(load_entries(board)) == 1


def test_site_escapes_every_submitted_string(make_submission, kg_bench, tmp_path):
    sub = make_submission(system=HOSTILE, agent=HOSTILE, description=HOSTILE + "\nmore",
                          contact=HOSTILE)
    board, site = tmp_path / "board", tmp_path / "site"
    entry = add(sub, board, benchmarks=kg_bench["benchmarks"])
    build(board, site)
    pages = [site / "index.html", site / "entries" / f"{entry['entry_id']}.html"]
    for page in pages:
        text = page.read_text()
        assert "<script>alert" not in text and "<img src=x" not in text
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in text
        assert re.findall(r"<script[^>]*>", text) == [
            f'<script src="{"../" if "entries" in str(page) else ""}sort.js" defer>']


def test_hand_edited_entry_cannot_inject_a_script_link(make_submission, kg_bench, tmp_path):
    board, site = tmp_path / "board", tmp_path / "site"
    entry = add(make_submission(), board, benchmarks=kg_bench["benchmarks"])
    path = board / "entries" / entry["entry_id"] / "entry.json"
    data = json.loads(path.read_text())
    data["submission"]["link"] = "javascript:alert(1)"
    data["samples"][0]["image"] = "../../../../etc/passwd"
    path.write_text(json.dumps(data))
    build(board, site)
    page = (site / "entries" / f"{entry['entry_id']}.html").read_text()
    assert 'href="javascript' not in page and "javascript:alert(1)" in page
    assert "etc/passwd" not in page
    assert not list(site.rglob("passwd"))


def test_judges_are_kept_apart(make_submission, kg_bench, tmp_path):
    board, site = tmp_path / "board", tmp_path / "site"
    add(make_submission("a", system="System A"), board, benchmarks=kg_bench["benchmarks"])
    add(make_submission("b", system="System B", judge={"name": "openai", "model": "gpt-4.1"}),
        board, benchmarks=kg_bench["benchmarks"])
    text = build(board, site).read_text()
    assert text.count('<table class="sortable board">') == 2
    assert "Judged by offline<" in text and "Judged by openai (gpt-4.1)" in text
    assert "offline (offline)" not in text  # the judge is named once, in the heading
    assert "not comparable" in text
    tables = text.split('<table class="sortable board">')[1:]
    assert sum("System A" in t for t in tables) == 1 and sum("System B" in t for t in tables) == 1


def test_broken_entry_file_is_named(make_submission, kg_bench, tmp_path):
    board = tmp_path / "board"
    entry = add(make_submission(), board, benchmarks=kg_bench["benchmarks"])
    (board / "entries" / entry["entry_id"] / "entry.json").write_text("{not json")
    with pytest.raises(DataError, match="entry.json"):
        build(board, tmp_path / "site")


def test_cli_validate_add_build(make_submission, kg_bench, tmp_path, capsys):
    spec = ["--benchmark", kg_bench["spec"]]
    good = make_submission("good")
    bad = make_submission("bad", edit=lambda s: s.pop())
    assert main(["validate", str(good), *spec]) == 0
    assert main(["validate", str(bad), *spec]) == 1
    assert "id 'kg-0005' of knowgen" in capsys.readouterr().out
    assert main(["validate", str(bad), *spec, "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["ok"] is False
    board, site = tmp_path / "board", tmp_path / "site"
    assert main(["add", str(bad), "--board", str(board), *spec]) == 2
    assert "The submission was refused" in capsys.readouterr().err
    assert main(["add", str(good), "--board", str(board), *spec]) == 0
    assert main(["build", "--board", str(board), "--out", str(site)]) == 0
    assert "Flag copier" in (site / "index.html").read_text()
