"""KnowGen-Bench (official layout) and WISE (legacy + verified) loaders."""

import json
import logging
import shutil
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from knowgen.benchmarks.base import Benchmark
from knowgen.benchmarks.knowgen import KnowGenBenchmark
from knowgen.benchmarks.wise import WISE_FILES, WiseBenchmark, write_wise_layout
from knowgen.errors import DataError, UnknownNameError
from knowgen.eval.wise_scoring import WISE_RANGES, category_ids

WISE_DATA = Path("/work/shared/data/wise")
needs_wise = pytest.mark.skipif(not WISE_DATA.is_dir(), reason="WISE prompt copy not present")


def _png(path: Path, colour: str, size=(64, 48)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


@pytest.fixture
def knowgen_dir(tmp_path):
    """A small KnowGen-Bench in the released layout: records + gt_images/."""
    root = tmp_path / "knowgen_bench"
    elsewhere = tmp_path / "abs" / "k3.png"
    _png(root / "gt_images" / "k1.png", "red")
    _png(root / "gt_images" / "k2.png", "blue")
    _png(elsewhere, "green")
    records = [
        {"id": "k1", "prompt": "The flag of France", "gt_image": "gt_images/k1.png",
         "meta": {"category": "geography", "difficulty": "easy"}, "source": "wiki"},
        {"id": 2, "prompt": "A poster of a film", "gt_image": "gt_images/k2.png",
         "meta": {"category": "Posters", "difficulty": "hard"}},
        {"id": "k3", "prompt": "A celebrity at a news event", "gt_image": str(elsewhere),
         "meta": {"category": "news", "difficulty": "medium"}},
    ]
    (root / "knowgen_bench.json").write_text(json.dumps(records), encoding="utf-8")
    return root


def test_knowgen_loads_released_layout(knowgen_dir):
    bench = KnowGenBenchmark(str(knowgen_dir))
    assert isinstance(bench, Benchmark) and bench.name == "knowgen"
    assert bench.splits() == ["test"]
    assert bench.version.startswith("sha256:") and len(bench.version) == 19
    tasks = bench.tasks("test")
    assert [t.id for t in tasks] == ["k1", "2", "k3"]
    assert tasks[0].category == "geography" and tasks[1].difficulty == "hard"
    assert all(t.facts is None for t in tasks)
    assert Path(tasks[0].gt_image) == (knowgen_dir / "gt_images" / "k1.png").resolve()
    assert Path(tasks[2].gt_image).is_absolute()
    with Image.open(tasks[1].gt_image) as im:
        assert im.getpixel((0, 0)) == (0, 0, 255)
    assert tasks[0].extra == {"source": "wiki"}
    # the records file itself works too, and gives the same tasks
    same = KnowGenBenchmark(str(knowgen_dir / "knowgen_bench.json")).tasks("test")
    assert same == tasks


def test_knowgen_reads_jsonl_and_chooses_records_by_name(knowgen_dir):
    records = json.loads((knowgen_dir / "knowgen_bench.json").read_text())
    lines = "\n".join(json.dumps(r) for r in records[:2]) + "\n\n"
    (knowgen_dir / "subset.jsonl").write_text(lines, encoding="utf-8")
    with pytest.raises(DataError, match="found knowgen_bench.json, subset.jsonl"):
        KnowGenBenchmark(str(knowgen_dir))
    bench = KnowGenBenchmark(str(knowgen_dir), records="subset.jsonl")
    assert [t.id for t in bench.tasks("test")] == ["k1", "2"]
    (knowgen_dir / "bad.jsonl").write_text('{"id": 1}\n{oops\n', encoding="utf-8")
    with pytest.raises(DataError, match="bad.jsonl:2 is not valid JSON"):
        KnowGenBenchmark(str(knowgen_dir), records="bad.jsonl")


def test_knowgen_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        KnowGenBenchmark(str(tmp_path / "nowhere"))


def test_knowgen_lists_every_missing_gt_file(knowgen_dir):
    (knowgen_dir / "gt_images" / "k1.png").unlink()
    (knowgen_dir / "gt_images" / "k2.png").unlink()
    with pytest.raises(DataError) as err:
        KnowGenBenchmark(str(knowgen_dir))
    msg = str(err.value)
    assert msg.startswith("2 ground-truth image(s)")
    assert str((knowgen_dir / "gt_images" / "k1.png").resolve()) in msg
    assert str((knowgen_dir / "gt_images" / "k2.png").resolve()) in msg


def test_knowgen_duplicate_ids_and_incomplete_records(knowgen_dir):
    path = knowgen_dir / "knowgen_bench.json"
    records = json.loads(path.read_text())
    path.write_text(json.dumps(records + [dict(records[0])]), encoding="utf-8")
    with pytest.raises(DataError, match="Duplicate KnowGen ids .*: k1"):
        KnowGenBenchmark(str(knowgen_dir))
    path.write_text(json.dumps([{"id": "x", "prompt": "p", "gt_image": "a.png"}]))
    with pytest.raises(DataError, match="lacks meta.category"):
        KnowGenBenchmark(str(knowgen_dir))
    path.write_text("[1, 2]")
    with pytest.raises(DataError, match="not JSON objects"):
        KnowGenBenchmark(str(knowgen_dir))


def test_knowgen_unknown_split_and_unknown_category_warning(knowgen_dir, caplog):
    path = knowgen_dir / "knowgen_bench.json"
    records = json.loads(path.read_text())
    records[0]["meta"]["category"] = "cooking"
    path.write_text(json.dumps(records))
    with caplog.at_level(logging.WARNING):
        bench = KnowGenBenchmark(str(knowgen_dir))
    assert "cooking" in caplog.text
    with pytest.raises(UnknownNameError, match="Did you mean 'test'"):
        bench.tasks("tests")


@needs_wise
@pytest.mark.parametrize("variant", ["legacy", "verified"])
def test_wise_loads_full_variant(variant, caplog):
    with caplog.at_level(logging.WARNING):
        bench = WiseBenchmark(str(WISE_DATA), variant=variant)
    assert caplog.text == ""  # every upstream Category agrees with its id range
    assert isinstance(bench, Benchmark) and bench.splits() == ["test"]
    tasks = bench.tasks("test")
    assert [int(t.id) for t in tasks] == list(range(1, 1001)) and bench.missing_ids == []
    counts = Counter(t.category for t in tasks)
    assert counts == {name: last - first + 1 for name, first, last in WISE_RANGES[variant]}
    raw = json.loads((WISE_DATA / variant / WISE_FILES[variant][0]).read_text())[0]
    first = tasks[0]
    assert first.prompt == raw["Prompt"] and first.extra["explanation"] == raw["Explanation"]
    assert first.extra["subcategory"] == raw["Subcategory"] and first.gt_image == ""
    assert first.facts is None


@needs_wise
def test_wise_variants_differ_where_upstream_refreshed_prompts():
    legacy = {t.id: t for t in WiseBenchmark(str(WISE_DATA), "legacy").tasks()}
    verified = {t.id: t for t in WiseBenchmark(str(WISE_DATA), "verified").tasks()}
    assert legacy["641"].category == "space" and verified["641"].category == "biology"
    changed = sum(legacy[i].prompt != verified[i].prompt for i in legacy)
    assert changed > 100


def _copy_variant(tmp_path, variant):
    target = tmp_path / "wise"
    shutil.copytree(WISE_DATA / variant, target)
    for f in target.iterdir():
        f.chmod(0o644)
    return target


@needs_wise
def test_wise_reports_gaps_and_duplicates(tmp_path, caplog):
    folder = _copy_variant(tmp_path, "verified")
    path = folder / WISE_FILES["verified"][1]
    recs = json.loads(path.read_text())
    kept = [r for r in recs if r["prompt_id"] not in (450, 451, 600)]
    path.write_text(json.dumps(kept))
    with pytest.raises(DataError, match="lacks 3 of the 1000 prompt ids: 450-451, 600"):
        WiseBenchmark(str(folder), "verified")
    with caplog.at_level(logging.WARNING):
        bench = WiseBenchmark(str(folder), "verified", strict=False)
    assert bench.missing_ids == [450, 451, 600] and len(bench.tasks()) == 997
    assert "450-451, 600" in caplog.text
    path.write_text(json.dumps(kept + [recs[0]]))
    with pytest.raises(DataError, match="Duplicate WISE prompt ids: 401"):
        WiseBenchmark(str(folder), "verified", strict=False)


@needs_wise
def test_wise_missing_files_and_variant(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        WiseBenchmark(str(tmp_path / "none"), "legacy")
    folder = _copy_variant(tmp_path, "legacy")
    (folder / "natural_science.json").unlink()
    with pytest.raises(DataError, match="missing natural_science.json"):
        WiseBenchmark(str(folder), "legacy")
    with pytest.raises(UnknownNameError, match="Did you mean 'verified'"):
        WiseBenchmark(str(folder), "verifed")


def test_write_wise_layout_from_images_and_result_records(tmp_path):
    run = tmp_path / "run"
    _png(run / "images" / "3.png", "red")
    jpeg = run / "images" / "4.jpg"
    Image.new("RGB", (20, 10), "blue").save(jpeg, format="JPEG")
    records = [
        {"id": "3", "success": True, "output_path": "images/3.png"},
        {"id": "4", "success": True, "output_path": "images/4.jpg"},
        {"id": "5", "success": False, "output_path": None},
    ]
    out = tmp_path / "wise_images"
    written = write_wise_layout(records, out, base_dir=run)
    assert [p.name for p in written] == ["3.png", "4.png"]
    assert (out / "3.png").read_bytes() == (run / "images" / "3.png").read_bytes()
    with Image.open(out / "4.png") as im:
        assert im.format == "PNG" and im.size == (20, 10)
    written = write_wise_layout({7: Image.new("RGB", (8, 8), "white")}, out)
    with Image.open(written[0]) as im:
        assert im.format == "PNG" and im.getpixel((1, 1)) == (255, 255, 255)
    assert sorted(p.name for p in out.iterdir()) == ["3.png", "4.png", "7.png"]
    with pytest.raises(DataError, match="not a WISE prompt id"):
        write_wise_layout({"k1": Image.new("RGB", (8, 8))}, out)
    with pytest.raises(DataError, match="Cannot read generated image"):
        write_wise_layout({8: tmp_path / "missing.png"}, out)


@needs_wise
def test_wise_ranges_agree_with_category_ids_of_loaded_tasks():
    tasks = WiseBenchmark(str(WISE_DATA), "legacy").tasks()
    space = [int(t.id) for t in tasks if t.category == "space"]
    assert space == list(category_ids("legacy", "space"))
