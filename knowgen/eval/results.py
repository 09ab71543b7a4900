"""Turn finished samples into the official results file and the run summary."""

from __future__ import annotations

import logging
import time
from typing import Any

from knowgen.eval.rundir import SCHEMA_VERSION
from knowgen.eval.scoring import SampleScore, aggregate_knowgen
from knowgen.judges.rubrics import lenient_counts

logger = logging.getLogger(__name__)

RESULT_KEYS = ("id", "success", "prompt", "meta", "output_path", "gt_image")


def build_results(samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The official KnowGen results array (paths relative to the run folder)."""
    return [{k: s.get(k) for k in RESULT_KEYS} for s in samples]


def sample_scores(samples: list[dict[str, Any]]) -> list[SampleScore]:
    """Scores of the evaluated samples (``success`` true and a judgement present)."""
    out = []
    for s in samples:
        judgement = s.get("image_judgement")
        if not s.get("success") or not judgement:
            continue
        out.append(SampleScore.from_mapping(s["id"], s["meta"]["category"], judgement))
    return out


def _mean(values: list[float]) -> float:
    return round(sum(values) / len(values), 4) if values else 0.0


def summary_header(samples: list[dict[str, Any]], meta: dict[str, Any], *,
                   benchmark_version: str, knowgen_version: str, git: str | None
                   ) -> dict[str, Any]:
    """The fields every run summary starts with: what ran, with which code, and when."""
    return {
        "schema_version": SCHEMA_VERSION,
        "benchmark": meta["benchmark"],
        "benchmark_version": benchmark_version,
        "split": meta["split"],
        "policy": meta["policy"],
        "seed": meta["seed"],
        "config": meta["config"],
        "knowgen_version": knowgen_version,
        "git_hash": git,
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "n_samples": len(samples),
        "n_fallback_generation": sum(1 for s in samples if s.get("fallback_generation")),
    }


def build_summary(samples: list[dict[str, Any]], meta: dict[str, Any], *,
                  benchmark_version: str, knowgen_version: str, git: str | None) -> dict[str, Any]:
    """Per-category, per-group and overall scores plus everything needed to reproduce them."""
    scores = sample_scores(samples)
    agg = aggregate_knowgen(scores)
    text_scores = [s["text_judgement"]["score"] for s in samples if s.get("text_judgement")]
    by_difficulty: dict[str, list[float]] = {}
    for s in samples:
        if s.get("image_judgement"):
            by_difficulty.setdefault(s["meta"].get("difficulty", ""), []).append(
                s["image_judgement"]["overall"])
    return {
        **summary_header(samples, meta, benchmark_version=benchmark_version,
                         knowgen_version=knowgen_version, git=git),
        "n_evaluated": len(scores),
        "n_not_evaluated": len(samples) - len(scores),
        "k_score": agg.k_score,
        "scores": agg.to_dict(),
        "official_summary": agg.official_items(),
        "lenient": lenient_counts([(s.get("image_judgement") or {}).get("evidence") or {}
                                   for s in samples]),
        "mean_reward": _mean([float(s.get("reward") or 0.0) for s in samples]),
        "mean_text_score": _mean(text_scores),
        "overall_by_difficulty": {k: _mean(v) for k, v in sorted(by_difficulty.items())},
        "mean_turns": _mean([float(s.get("turns", 0)) for s in samples]),
    }
