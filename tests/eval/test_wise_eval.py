"""WISE through `knowgen eval`: upstream image layout, WISE judgements, summary, resume."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from knowgen.benchmarks.wise import WISE_FILES, WiseBenchmark
from knowgen.cli import main
from knowgen.eval.html_report import load_run
from knowgen.eval.wise_run import build_wise_summary, partial_overall
from knowgen.eval.wise_scoring import WISE_WEIGHTS, category_of, weighted_overall
from knowgen.locking import FolderLock

WISE_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "wise"
PER_FILE = 3
KEY_ENV = "KNOWGEN_TEST_WISE_KEY"


# First prompt id of each of the three upstream files, per variant (their documented ranges).
FIRST_IDS = {"legacy": (1, 401, 701), "verified": (1, 401, 641)}


def copy_prompts(dest: Path, variant: str) -> Path:
    """The first PER_FILE prompts of each of the variant's three files.

    Taken from the local copy of WISE when there is one; otherwise written in the
    upstream record format with prompts of our own, so the test runs anywhere.
    """
    src = WISE_DATA / variant
    dest.mkdir(parents=True, exist_ok=True)
    for name, first in zip(WISE_FILES[variant], FIRST_IDS[variant]):
        if (src / name).is_file():
            data = json.loads((src / name).read_text(encoding="utf-8"))[:PER_FILE]
        else:
            data = [{"prompt_id": first + k, "Prompt": f"A red umbrella in the rain, scene {k}",
                     "Explanation": "The umbrella is red.", "Category": name.split(".")[0],
                     "Subcategory": "test"} for k in range(PER_FILE)]
        (dest / name).write_text(json.dumps(data), encoding="utf-8")
    return dest


def bench_spec(folder: Path, variant: str) -> str:
    return f"wise:path={folder},variant={variant},strict=false"


def eval_args(folder: Path, variant: str, run: Path, *extra: str) -> list[str]:
    return ["eval", "--benchmark", bench_spec(folder, variant), "--policy", "direct",
            "--run-dir", str(run), "--no-progress", *extra]


def samples_of(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_legacy_eval_writes_upstream_layout_and_wise_summary(tmp_path, capsys):
    data = copy_prompts(tmp_path / "wise", "legacy")
    run = tmp_path / "run"
    assert main(eval_args(data, "legacy", run, "--judge", "offline", "--limit", "6")) == 0
    out = capsys.readouterr().out
    assert "WISE legacy" in out and "needs all 1000 ids" in out

    samples = samples_of(run)
    assert len(samples) == 6 and not (run / "gt").exists()
    for s in samples:
        assert (run / "images" / f"{s['id']}.png").is_file()
        assert s["output_path"] == f"images/{s['id']}.png" and s["gt_image"] is None
        assert s["image_judgement"] is None and s["trajectory"]
        j = s["wise_judgement"]
        assert {j["consistency"], j["realism"], j["aesthetic_quality"]} <= {0, 1, 2}
        assert s["meta"]["category"] == category_of("legacy", int(s["id"]))
        with Image.open(run / s["output_path"]) as im:
            assert im.format == "PNG"

    summary = json.loads((run / "summary.json").read_text())
    wise = summary["wise"]
    assert summary["rubric"] == "wise" and wise["variant"] == "legacy"
    assert wise["overall"] is None and "1000" in wise["reason"]
    by_cat: dict[str, list[float]] = {}
    for s in samples:
        by_cat.setdefault(s["meta"]["category"], []).append(s["wise_judgement"]["wiscore"])
    for cat, values in by_cat.items():
        assert wise["categories"][cat] == pytest.approx(sum(values) / len(values), abs=1e-4)
        assert wise["counts"][cat] == len(values)
    covered = {c: sum(v) / len(v) for c, v in by_cat.items()}
    weights = {c: WISE_WEIGHTS["legacy"][c] for c in covered}
    expected = sum(weights[c] * covered[c] for c in covered) / sum(weights.values())
    assert wise["partial_overall"] == pytest.approx(expected, abs=1e-4)
    assert "not comparable" in wise["partial_note"]

    results = json.loads((run / "results.json").read_text())
    assert [r["id"] for r in results] == [s["id"] for s in samples]
    assert all(r["gt_image"] is None for r in results)
    report = load_run(run)  # the report reads the WISE summary
    assert len(report.samples) == 6 and (run / "report.html").stat().st_size > 1000

    # the same images judged afterwards from the upstream folder layout agree
    out = tmp_path / "judged"
    judge_args = ["judge", str(run / "images"), "--wise", str(data), "--variant", "legacy",
                  "--judge", "offline", "--out", str(out), "--no-progress"]
    assert main(judge_args) == 0
    judged = {r["id"]: r["wise_judgement"] for r in
              map(json.loads, (out / "judged.jsonl").read_text().splitlines())}
    assert judged == {s["id"]: s["wise_judgement"] for s in samples}
    again = json.loads((out / "summary.json").read_text())
    assert again["n_missing_images"] == 3 * PER_FILE - 6
    assert again["wise"]["categories"] == wise["categories"]
    assert main(judge_args) == 0  # a rerun judges nothing twice
    assert len((out / "judged.jsonl").read_text().splitlines()) == 6
    with FolderLock(out, "test holder"):  # a second writer is refused, the log untouched
        assert main(judge_args) == 2
    assert "Another process" in capsys.readouterr().err
    assert len((out / "judged.jsonl").read_text().splitlines()) == 6
    assert main([*judge_args[:5], "verified", *judge_args[6:]]) == 2
    assert "different settings" in capsys.readouterr().err


@pytest.mark.slow
def test_resume_redoes_only_the_missing_samples(tmp_path, capsys):
    data = copy_prompts(tmp_path / "wise", "verified")
    run = tmp_path / "run"
    args = eval_args(data, "verified", run, "--judge", "offline")
    assert main(args) == 0
    full = samples_of(run)
    assert len(full) == 3 * PER_FILE
    lines = (run / "samples.jsonl").read_text().splitlines(keepends=True)
    # a kill mid-write: two samples lost, the last one torn
    (run / "samples.jsonl").write_text("".join(lines[:-2]) + lines[-2][:40])
    (run / "images" / f"{full[-1]['id']}.png").unlink()
    capsys.readouterr()
    assert main(args) == 0
    assert f"(2 new, {len(full) - 2} resumed)" in capsys.readouterr().out
    again = samples_of(run)
    assert [s["id"] for s in again] == [s["id"] for s in full]
    assert [s["wise_judgement"] for s in again] == [s["wise_judgement"] for s in full]
    assert (run / "images" / f"{full[-1]['id']}.png").is_file()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["n_evaluated"] == len(full)
    assert set(summary["wise"]["categories"]) == set(WISE_WEIGHTS["verified"])


class FlakyChat:
    """An OpenAI-compatible chat endpoint on 127.0.0.1 that fails while ``down`` is set."""

    def __init__(self):
        self.down = True
        self.requests = 0
        self.bodies = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests += 1
                outer.bodies.append(body)
                if outer.down:
                    raw, status = b'{"error": "overloaded"}', 503
                else:
                    text = "The image shows the right subject.\nScore: 1"
                    raw, status = json.dumps({"choices": [{"index": 0, "message": {
                        "role": "assistant", "content": text}}], "model": body["model"]}
                    ).encode(), 200
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.slow
def test_openai_judge_failures_are_retried_by_a_rerun(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "test-key")
    data = copy_prompts(tmp_path / "wise", "verified")
    server = FlakyChat()
    try:
        judge = (f"openai:model=qwen3.5,base_url={server.url},api_key_env={KEY_ENV},"
                 f"max_retries=0,cache_dir={tmp_path / 'cache'}")
        run = tmp_path / "run"
        args = eval_args(data, "verified", run, "--judge", judge, "--limit", "4")
        assert main(args) == 1
        assert "not judged" in capsys.readouterr().out
        assert not (run / "samples.jsonl").exists() or not samples_of(run)
        summary = json.loads((run / "summary.json").read_text())
        assert summary["n_evaluated"] == 0 and summary["wise"]["overall"] is None
        server.down = False
        assert main(args) == 0
        samples = samples_of(run)
        assert len(samples) == 4 and all(s["wise_judgement"]["score"] == 1 for s in samples)
        assert "Score: 1" not in samples[0]["wise_judgement"]["rationale"]
    finally:
        server.close()


def test_wise_summary_overall_only_when_all_ids_judged():
    bench_dir = WISE_DATA / "verified"
    if not bench_dir.is_dir():
        pytest.skip("WISE prompt files not found")
    tasks = WiseBenchmark(str(WISE_DATA), variant="verified").tasks()
    # judge every image by its id's parity: a full run of real task ids
    samples = [{"id": t.id, "success": True, "meta": {"category": t.category},
                "wise_judgement": {"score": int(t.id) % 2}} for t in tasks]
    meta = {"benchmark": "wise", "split": "test", "policy": "direct", "seed": 0, "config": {}}
    kw = {"variant": "verified", "judge": "offline", "benchmark_version": "wise-verified",
          "knowgen_version": "0", "git": None}
    full = build_wise_summary(samples, tasks, meta, **kw)["wise"]
    assert full["overall"] == pytest.approx(weighted_overall(full["categories"], "verified"),
                                            abs=1e-4)
    assert full["partial_overall"] is None and full["reason"] is None
    part = build_wise_summary(samples[:-1], tasks, meta, **kw)
    assert part["wise"]["overall"] is None and part["wise"]["missing_ids"] == [1000]
    assert part["wise"]["partial_overall"] == partial_overall(part["wise"]["categories"],
                                                              "verified")
    assert part["scores"]["overall_avg"]["avg_scores"]["overall"] == part["wise"][
        "partial_overall"]


@pytest.mark.slow
def test_judge_prompt_from_sends_the_file_text(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "test-key")
    data = copy_prompts(tmp_path / "wise", "verified")
    rubric = tmp_path / "my rubric, v1.txt"  # a comma and a space survive the spec
    rubric.write_text("Grade this: {prompt} / {explanation}\nEnd with Score: 0 or 1.")
    server = FlakyChat()
    server.down = False
    try:
        judge = f"openai:model=qwen3.5,base_url={server.url},api_key_env={KEY_ENV}"
        run = tmp_path / "run"
        args = eval_args(data, "verified", run, "--judge", judge, "--limit", "1",
                         "--judge-prompt-from", str(rubric))
        assert main(args) == 0
        task = WiseBenchmark(str(data), variant="verified", strict=False).tasks()[0]
        system = server.bodies[0]["messages"][0]["content"]
        assert system == (f"Grade this: {task.prompt} / {task.extra['explanation']}\n"
                          "End with Score: 0 or 1.")
        config = json.loads((run / "run.json").read_text())["config"]
        assert str(rubric) in config["image_judge"]
    finally:
        server.close()


def test_missing_benchmark_path_says_what_to_pass(capsys):
    """`--benchmark wise` (or knowgen) without a path says what to pass."""
    from knowgen.cli import main

    assert main(["eval", "--benchmark", "wise", "--limit", "1", "--no-progress"]) == 2
    assert "wise:path=" in capsys.readouterr().err.replace("\n", "")
    assert main(["eval", "--benchmark", "knowgen", "--limit", "1", "--no-progress"]) == 2
    assert "knowgen:path=" in capsys.readouterr().err.replace("\n", "")


def test_variant_flag_selects_the_wise_variant(tmp_path, capsys):
    folder = copy_prompts(tmp_path / "wise", "legacy")
    run = tmp_path / "run"
    rc = main_eval(["eval", "--benchmark", f"wise:path={folder},strict=false", "--variant",
                    "legacy", "--judge", "offline", "--policy", "direct", "--limit", "2",
                    "--run-dir", str(run), "--no-progress"])
    assert rc == 0, capsys.readouterr().out
    summary = json.loads((run / "summary.json").read_text())
    assert summary["wise"]["variant"] == "legacy" and summary["n_evaluated"] == 2


def main_eval(argv):
    from knowgen.cli import main

    return main(argv)
