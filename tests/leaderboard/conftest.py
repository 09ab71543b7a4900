"""Fixtures of the leaderboard tests.

``kg_bench`` is a real benchmark in the KnowGen-Bench layout (records file plus
ground-truth PNGs taken from the shipped world), read by the real loader.
``make_submission`` writes a submission folder for it: the generated images are
real PNG files, the judgements are fixed per sample, and ``summary.json`` is
computed with the project's aggregation. ``world_runs`` holds real
``knowgen eval`` runs on the offline world (slow; shared by the session).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from knowgen.eval.results import build_results, sample_scores
from knowgen.eval.scoring import aggregate_knowgen
from knowgen.world.data import DEFAULT_DATA_DIR

FLAGS = ["ar", "br", "ca", "de", "fr", "jp"]
CATEGORIES = ["geography", "sports", "posters", "film", "politics", "geography"]
JUDGEMENTS = [  # F, V, T, A, text N/A
    (1.0, 1.0, 1.0, 1.0, False), (0.5, 0.0, 0.5, 0.5, False), (1.0, 0.5, 0.5, 1.0, True),
    (0.0, 0.0, 0.0, 0.5, False), (1.0, 1.0, 0.5, 0.5, False), (0.5, 0.5, 1.0, 0.0, False),
]


@pytest.fixture(scope="session")
def kg_bench(tmp_path_factory) -> dict[str, Any]:
    """A six-task benchmark in the KnowGen-Bench layout, with its spec and version."""
    from knowgen.benchmarks.knowgen import KnowGenBenchmark

    root = tmp_path_factory.mktemp("kg_bench")
    (root / "gt_images").mkdir()
    records = []
    for i, (code, cat) in enumerate(zip(FLAGS, CATEGORIES)):
        shutil.copyfile(DEFAULT_DATA_DIR / "images" / f"flag-{code}.png",
                        root / "gt_images" / f"{i:04d}.png")
        records.append({"id": f"kg-{i:04d}", "prompt": f"The national flag with code {code}.",
                        "meta": {"category": cat, "difficulty": "easy"},
                        "gt_image": f"gt_images/{i:04d}.png"})
    (root / "knowgen_bench.json").write_text(json.dumps(records), encoding="utf-8")
    bench = KnowGenBenchmark(str(root))
    return {"root": root, "spec": f"knowgen:path={root}", "version": bench.version,
            "records": records, "benchmarks": {"knowgen": f"knowgen:path={root}"}}


def _meta(bench: dict[str, Any], **fields: Any) -> dict[str, Any]:
    meta = {"format_version": 1, "system": "Flag copier", "agent": "copier",
            "generator": "identity", "judge": {"name": "offline", "model": "offline"},
            "benchmark": {"name": "knowgen", "version": bench["version"], "split": "test"},
            "date": "2026-01-31", "contact": "team@example.org",
            "link": "https://example.org/flags"}
    meta.update(fields)
    return meta


def _samples(bench: dict[str, Any]) -> list[dict[str, Any]]:
    samples = []
    for i, rec in enumerate(bench["records"]):
        f, v, t, a, na = JUDGEMENTS[i]
        text = 0.5 if na else t
        overall = round(0.1 * f + 0.4 * v + 0.4 * text + 0.1 * a, 4)
        samples.append({
            "id": rec["id"], "prompt": rec["prompt"], "meta": dict(rec["meta"]),
            "success": True, "output_path": f"images/{rec['id']}.png",
            "gt_image": f"gt/{rec['id']}.png", "reward": overall,
            "image_judgement": {"faithfulness": f, "visual_correctness": v, "text_accuracy": t,
                                "text_accuracy_na": na, "aesthetics": a, "overall": overall,
                                "rationale": "fixed", "evidence": {}},
            "text_judgement": {"score": 0.75, "rationale": "fixed"},
            "trajectory": [{"action": "<answer>{}</answer>"}],
        })
    return samples


def write_folder(dest: Path, bench: dict[str, Any], samples: list[dict[str, Any]],
                 meta: dict[str, Any], summary_of: list[dict[str, Any]] | None = None) -> Path:
    """Write a submission folder (images copied from the benchmark's GT).

    ``summary.json`` is aggregated from ``summary_of`` (default: ``samples``).
    """
    (dest / "images").mkdir(parents=True, exist_ok=True)
    for i, rec in enumerate(bench["records"]):
        shutil.copyfile(bench["root"] / rec["gt_image"], dest / "images" / f"{rec['id']}.png")
    (dest / "submission.yaml").write_text(yaml.safe_dump(meta), encoding="utf-8")
    (dest / "samples.jsonl").write_text(
        "".join(json.dumps(s) + "\n" for s in samples), encoding="utf-8")
    (dest / "results.json").write_text(json.dumps(build_results(samples), indent=1),
                                       encoding="utf-8")
    agg = aggregate_knowgen(sample_scores(samples if summary_of is None else summary_of))
    (dest / "summary.json").write_text(json.dumps({"k_score": agg.k_score,
                                                   "scores": agg.to_dict()}), encoding="utf-8")
    return dest


@pytest.fixture
def make_submission(kg_bench, tmp_path) -> Callable[..., Path]:
    """``make_submission(name, edit=None, **meta)``: a submission folder under ``tmp_path``.

    ``edit(samples)`` may change the sample records before they are written.
    """

    def make(name: str = "sub", edit: Callable[[list[dict[str, Any]]], Any] | None = None,
             **meta: Any) -> Path:
        samples = _samples(kg_bench)
        if edit is not None:
            edit(samples)
        return write_folder(tmp_path / name, kg_bench, samples, _meta(kg_bench, **meta),
                            summary_of=_samples(kg_bench))

    return make


def snapshot(root: Path, skip: Path | None = None) -> dict[str, tuple[int, int]]:
    """Every path under ``root`` (except under ``skip``) with its size and mtime."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if skip is not None and Path(dirpath).resolve().is_relative_to(skip.resolve()):
            continue
        for name in dirnames + filenames:
            if skip is not None and Path(dirpath, name).resolve() == skip.resolve():
                continue
            st = os.lstat(Path(dirpath) / name)
            out[str(Path(dirpath, name).relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture(scope="session")
def world_runs(tmp_path_factory) -> dict[str, Any]:
    """Real ``knowgen eval`` runs (direct, oracle, random; 6 tasks each) on the offline world."""
    from knowgen.cli import main

    root = tmp_path_factory.mktemp("world_runs")
    bench = f"world:cache_dir={root / 'cache'}"
    runs = {}
    for policy in ("direct", "oracle", "random"):
        run = root / policy
        rc = main(["eval", "--policy", policy, "--limit", "6", "--benchmark", bench,
                   "--run-dir", str(run), "--no-progress"])
        assert rc == 0, f"knowgen eval --policy {policy} failed"
        runs[policy] = run
    return {"runs": runs, "spec": bench, "benchmarks": {"world": bench}}
