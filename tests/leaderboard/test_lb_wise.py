"""WISE submissions: verified 0/1 judgements aggregated with the project's WISE scoring."""

import json

import yaml
from PIL import Image

from knowgen.benchmarks.wise import WISE_FILES
from knowgen.eval.runner import select_tasks
from knowgen.eval.wise_scoring import WISE_RANGES, score_wise_records
from knowgen.leaderboard import add, build, validate

UPSTREAM = {"culture": "Cultural knowledge", "time": "Time", "space": "Space",
            "biology": "Biology", "physics": "Physical Knowledge", "chemistry": "Chemistry"}


def _wise_folder(root):
    """A complete verified prompt set (1000 prompts) in the upstream file layout."""
    names = WISE_FILES["verified"]
    files = {names[0]: [], names[1]: [], names[2]: []}
    for cat, first, last in WISE_RANGES["verified"]:
        name = names[0] if cat == "culture" else names[1] if cat in ("time", "space") else names[2]
        files[name] += [{"prompt_id": i, "Prompt": f"Prompt {i} about {cat}",
                         "Explanation": f"Explanation {i}", "Category": UPSTREAM[cat],
                         "Subcategory": ""} for i in range(first, last + 1)]
    root.mkdir()
    for name, records in files.items():
        (root / name).write_text(json.dumps(records))
    return root


def test_wise_subset_is_scored_with_wise_rules(tmp_path):
    from knowgen.benchmarks.wise import WiseBenchmark

    data = _wise_folder(tmp_path / "wise")
    tasks = select_tasks(WiseBenchmark(str(data), "verified").tasks("test"), 12)
    sub = tmp_path / "sub"
    (sub / "images").mkdir(parents=True)
    samples = []
    for n, task in enumerate(tasks):
        Image.new("RGB", (32, 32), (n * 20, 90, 160)).save(sub / "images" / f"{task.id}.png")
        samples.append({"id": task.id, "prompt": task.prompt, "success": True,
                        "meta": {"category": task.category, "difficulty": ""},
                        "output_path": f"images/{task.id}.png", "gt_image": None,
                        "wise_judgement": {"score": n % 2}})
    (sub / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))
    (sub / "results.json").write_text(json.dumps(
        [{k: s[k] for k in ("id", "success", "prompt", "meta", "output_path", "gt_image")}
         for s in samples]))
    meta = {"format_version": 1, "system": "W", "agent": "a", "generator": "g",
            "judge": {"name": "openai", "model": "qwen3.5-35b-a3b"}, "date": "2026-02-01",
            "contact": "x@example.org",
            "benchmark": {"name": "wise", "version": "wise-verified", "split": "test",
                          "limit": 12, "args": {"variant": "verified"}}}
    (sub / "submission.yaml").write_text(yaml.safe_dump(meta))
    specs = {"wise": f"wise:path={data}"}
    assert validate(sub, benchmarks=specs).ok

    expected = score_wise_records([{"prompt_id": int(s["id"]), "score": n % 2}
                                   for n, s in enumerate(samples)], "verified",
                                  [int(t.id) for t in tasks]).to_dict()
    entry = add(sub, tmp_path / "board", benchmarks=specs)
    assert entry["scores"]["headline"] is None  # a subset never gets an overall
    assert entry["scores"]["categories"] == {c: v for c, v in expected["categories"].items()
                                             if v is not None}
    assert "WISE verified" in build(tmp_path / "board", tmp_path / "site").read_text()

    samples[0]["wise_judgement"] = {"score": 2}
    (sub / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))
    report = validate(sub, benchmarks=specs)
    assert "wise_judgement.score: 2 is off the verified scale (0, 1)" in report.text()
