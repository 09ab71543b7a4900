"""User task files over the world: validated records, re-resolved clues, rendered ground truths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from knowgen.benchmarks.world import WorldBenchmark
from knowgen.cli import main
from knowgen.errors import DataError, UnknownNameError
from knowgen.world.data import load_world
from knowgen.world.render import render_gt
from knowgen.world.taskfile import load_task_file

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "world_tasks.jsonl"
HOPS = EXAMPLE.with_name("world_tasks_hops.jsonl")


def _record(**over):
    rec = {"id": "r1", "prompt": "The flag of the country whose capital is Lima, named below.",
           "meta": {"category": "geography", "difficulty": "medium"},
           "facts": {"entities": ["country/pe"], "required_text": ["PERU"], "text_case": "upper"},
           "template": "flag_by_capital", "clue": {"fact": "capital", "value": "Lima"}}
    rec.update(over)
    return rec


def _write(tmp_path, records, name="tasks.jsonl"):
    path = tmp_path / name
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    return path


def test_the_shipped_example_loads_and_renders(tmp_path):
    world = load_world()
    tasks = load_task_file(EXAMPLE, world)["test"]
    assert len(tasks) >= 5 and len({t.id for t in tasks}) == len(tasks)
    bench = WorldBenchmark(tasks=str(EXAMPLE), cache_dir=str(tmp_path))
    assert bench.splits() == ["test"] and ".f" in bench.version
    served = bench.tasks("test")
    for task in served:
        assert Path(task.gt_image).is_file()
    assert render_gt(served[0], world).size == (512, 512)
    with pytest.raises(UnknownNameError, match="Available: test"):
        bench.tasks("train")


@pytest.mark.parametrize("example", [EXAMPLE, HOPS], ids=["named", "hops"])
def test_oracle_scores_full_marks_on_a_task_file(tmp_path, example):
    run = tmp_path / "run"
    rc = main(["eval", "--policy", "oracle", "--benchmark",
               f"world:tasks={example},cache_dir={tmp_path / 'cache'}", "--run-dir", str(run),
               "--no-progress"])
    assert rc == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["k_score"] == 100.0


def test_no_progress_hides_the_ground_truth_bar_too(tmp_path, capsys, monkeypatch):
    import knowgen.benchmarks.world as world_module

    monkeypatch.setattr(world_module, "_PROGRESS_FROM", 1)  # the 6 tasks draw a bar
    bench = f"world:tasks={EXAMPLE},cache_dir="
    for flag, shown in (["--no-progress"], False), ([], True):
        capsys.readouterr()
        cache = tmp_path / f"cache{len(flag)}"
        rc = main(["eval", "--policy", "direct", "--limit", "1", "--benchmark", f"{bench}{cache}",
                   "--run-dir", str(tmp_path / f"run{len(flag)}"), *flag])
        assert rc == 0 and len(list(cache.rglob("*.png"))) == 6
        assert ("world ground truth" in capsys.readouterr().err) is shown


def test_json_array_files_and_splits(tmp_path):
    path = tmp_path / "tasks.json"
    path.write_text(json.dumps([_record(), _record(id="r2", split="dev")]), encoding="utf-8")
    by_split = load_task_file(path, load_world())
    assert sorted(by_split) == ["dev", "test"]
    assert by_split["test"][0].facts.text_case == "upper"
    assert by_split["test"][0].facts.template == "flag_by_capital"


@pytest.mark.parametrize("bad, message", [
    ({"facts": {"entities": ["country/pr"], "required_text": ["PERU"]}},
     "clue resolves to country/pe, not to exactly country/pr"),
    ({"facts": {"entities": ["country/peru"], "required_text": ["PERU"]}},
     "unknown entity 'country/peru'. Did you mean 'country/pe' (Peru)"),
    ({"clue": {"fact": "currency_code", "value": "CHF"}, "template": "flag_by_currency"},
     "resolves to country/ch, country/li"),
    ({"template": "flag_by_capitol"}, "Did you mean 'flag_by_capital'"),
    ({"facts": {"entities": ["country/pe"], "required_text": ["ペルー"]}}, "OCR cannot read"),
    ({"facts": {"entities": ["country/pe"], "required_text": ["Peru"], "text_case": "upper"}},
     "needs its texts in capitals"),
    ({"meta": {"category": "geografy"}}, "Did you mean 'geography'"),
    ({"prompt": " "}, "'prompt' must be a non-empty string"),
    ({"facts": None}, "'facts' (entities, required_text) is missing"),
])
def test_bad_records_are_refused_with_a_clear_message(tmp_path, bad, message):
    path = _write(tmp_path, [_record(), _record(id="r2", **bad)])
    with pytest.raises(DataError) as exc:
        load_task_file(path, load_world())
    assert "record 2 (r2)" in str(exc.value) and message in str(exc.value), str(exc.value)


def test_every_problem_is_listed_at_once(tmp_path):
    path = _write(tmp_path, [_record(), _record(), _record(id="r3", facts={"entities": []})])
    with pytest.raises(DataError, match=r"has 2 problem\(s\)") as exc:
        load_task_file(path, load_world())
    assert "used twice" in str(exc.value) and "record 3" in str(exc.value)


def test_unreadable_files(tmp_path):
    world = load_world()
    with pytest.raises(DataError, match="does not exist"):
        load_task_file(tmp_path / "none.jsonl", world)
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps(_record()) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(DataError, match="broken.jsonl:2 is not valid JSON"):
        load_task_file(broken, world)
    binary = tmp_path / "bin.jsonl"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(DataError, match="not UTF-8"):
        load_task_file(binary, world)
    empty = _write(tmp_path, [], "empty.jsonl")
    with pytest.raises(DataError, match="no records"):
        load_task_file(empty, world)
