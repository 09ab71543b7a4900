"""WISE through ``knowgen eval``: judging, sample records and the run summary.

WISE has no ground-truth images, so the environment's KnowGen judges cannot
score its tasks. A WISE run therefore gives the environment
:class:`NotJudged` placeholders (the episode, the generation and the saved
image are unchanged) and scores each generated image afterwards with a WISE
judge of the benchmark's variant:

* ``offline``: :class:`knowgen.judges.offline_wise.OfflineWiseJudge`, a free
  smoke-test proxy whose numbers are not comparable with published WISE scores;
* ``openai:model=...``: :class:`knowgen.judges.openai_judge.OpenAIWiseJudge` on
  any OpenAI-compatible endpoint (GPT-4o / GPT-4.1 or a served Qwen3.5).

The judge spec is the run's image-judge setting (``--judge`` / ``--image-judge``).
Images are written as ``images/{prompt_id}.png``, the layout the upstream
scripts read. Each line of ``samples.jsonl`` carries ``wise_judgement`` (the
rubric scores, rationale and, offline, the evidence); ``image_judgement``,
``text_judgement`` and ``reward`` are ``None``.

**Overall score.** ``summary.json`` holds ``wise.categories`` (the mean per
category over the judged images) and ``wise.overall``, which, as upstream, is
reported only when every one of the 1000 prompt ids was judged; otherwise it is
``None`` and ``wise.reason`` says why. A run with ``--limit`` also gets
``wise.partial_overall``: the variant's category weights applied to the
categories it covers, renormalised to sum to 1. It is labelled partial, useful
to compare runs on the same subset, and never comparable with a published
overall.

:func:`judge_wise_images` scores a folder of ``{prompt_id}.png`` images made
elsewhere with the same judges (``knowgen judge IMAGES --wise PATH``).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from rich.table import Table
from tqdm.auto import tqdm

import knowgen
from knowgen.errors import DataError, KnowgenError, RunError
from knowgen.eval.results import summary_header
from knowgen.eval.rundir import SampleLog, atomic_write_json, git_hash
from knowgen.eval.wise_scoring import WISE_WEIGHTS, score_wise_records
from knowgen.locking import FolderLock, make_output_folder
from knowgen.registry import Registry, parse_spec
from knowgen.types import Answer, ImageJudgement, ResolvedReference, Task, TextJudgement

logger = logging.getLogger(__name__)

#: Built-in WISE judges (``knowgen.registry.WISE_JUDGES`` when it exists holds the same).
PARTIAL_NOTE = ("partial_overall weights only the categories this run covers (weights "
                "renormalised); it is not the WISE overall and is not comparable with "
                "published scores.")


def is_wise(benchmark: Any) -> bool:
    """True for a WISE benchmark (scored by a WISE judge, not against a GT image)."""
    return getattr(benchmark, "name", None) == "wise" and hasattr(benchmark, "variant")


def wise_judges() -> Registry:
    """The registry of WISE judges (``knowgen list wise-judges``)."""
    from knowgen.registry import WISE_JUDGES

    return WISE_JUDGES


def make_wise_judge(spec: str, variant: str) -> Any:
    """Build the WISE judge named by ``spec`` for ``variant`` (the variant always wins).

    Raises:
        UnknownNameError: for a name that is not a WISE judge.
        ConfigError: for arguments the judge does not take.
    """
    _, kwargs = parse_spec(spec)
    if kwargs.get("variant") not in (None, variant):
        logger.warning("Judge spec %r names variant %r; the benchmark's %r is used.",
                       spec, kwargs["variant"], variant)
    return wise_judges().create(spec, variant=variant)


class NotJudged:
    """Stands in for the environment's image and text judges on tasks without a GT image.

    Its verdicts are all zero and marked ``{"skipped": ...}``; a WISE run discards
    them and judges the generated image with a WISE judge instead.
    """

    REASON = "no ground-truth image: judged afterwards by a WISE judge"

    def score(self, task: Task, image_or_answer: Any,
              references: list[ResolvedReference] | None = None
              ) -> ImageJudgement | TextJudgement:
        """A zero verdict (image judge when called with an image, else text judge)."""
        if isinstance(image_or_answer, Answer):
            return TextJudgement(0.0, self.REASON, {"skipped": self.REASON})
        return ImageJudgement(0.0, 0.0, 0.0, True, 0.0, self.REASON, {"skipped": self.REASON})


def wise_record(task: Task, image_path: str | None, judgement: dict[str, Any] | None,
                variant: str) -> dict[str, Any]:
    """The WISE-specific fields of one sample line (the runner adds the trajectory)."""
    return {
        "id": task.id,
        "prompt": task.prompt,
        "meta": {"category": task.category, "difficulty": task.difficulty,
                 "subcategory": task.extra.get("subcategory", "")},
        "success": image_path is not None and judgement is not None,
        "output_path": f"images/{task.id}.png" if image_path else None,
        "gt_image": None,
        "explanation": task.extra.get("explanation", ""),
        "wise_variant": variant,
        "wise_judgement": judgement,
        "image_judgement": None,
        "text_judgement": None,
        "reward": None,
        "reward_terms": None,
    }


def _value(judgement: dict[str, Any], variant: str) -> float:
    return float(judgement["wiscore"] if variant == "legacy" else judgement["score"])


def partial_overall(categories: dict[str, float | None], variant: str) -> float | None:
    """Weighted mean of the covered categories, weights renormalised (``None`` if none)."""
    weights = {c: w for c, w in WISE_WEIGHTS[variant].items() if categories.get(c) is not None}
    total = sum(weights.values())
    if not total:
        return None
    return round(sum(w * float(categories[c]) for c, w in weights.items()) / total, 4)


def build_wise_summary(samples: Sequence[dict[str, Any]], tasks: Sequence[Task],
                       meta: dict[str, Any], *, variant: str, judge: str,
                       benchmark_version: str, knowgen_version: str,
                       git: str | None) -> dict[str, Any]:
    """``summary.json`` of a WISE run: WISE categories and overall, counts, provenance.

    ``scores`` repeats the category means in the shape the HTML report reads
    (``avg_scores.overall`` per category); ``k_score`` is ``None``.
    """
    judged = [s for s in samples if s.get("success") and s.get("wise_judgement")]
    records = [{"prompt_id": int(s["id"]), **s["wise_judgement"]} for s in judged]
    requested = [int(t.id) for t in tasks]
    agg = score_wise_records(records, variant, requested).to_dict()
    partial = None if agg["overall"] is not None else partial_overall(agg["categories"], variant)
    agg.update(judge=judge, partial_overall=partial,
               partial_note=PARTIAL_NOTE if partial is not None else None)
    overall = agg["overall"] if agg["overall"] is not None else partial
    cats = {c: {"avg_scores": {"overall": v}, "count": agg["counts"][c]}
            for c, v in agg["categories"].items() if v is not None}
    return {
        **summary_header(samples, meta, benchmark_version=benchmark_version,
                         knowgen_version=knowgen_version, git=git),
        "rubric": "wise",
        "n_requested": len(tasks),
        "n_evaluated": len(judged),
        "n_not_evaluated": len(samples) - len(judged),
        "wise": agg,
        "k_score": None,
        "scores": {"overall_avg": {"avg_scores": {"overall": overall}, "count": len(judged)},
                   "groups": {}, "categories": cats},
        "mean_wise_score": (round(sum(_value(s["wise_judgement"], variant) for s in judged)
                                  / len(judged), 4) if judged else 0.0),
        "mean_turns": (round(sum(float(s.get("turns", 0)) for s in samples) / len(samples), 4)
                       if samples else 0.0),
    }


def wise_table(summary: dict[str, Any]) -> Table:
    """Terminal table of a WISE run: categories, overall (or why not), partial overall."""
    w = summary["wise"]
    table = Table(title=f"WISE {w['variant']}: {summary['policy']} on {summary['benchmark']} "
                  f"(judge {w.get('judge', '?')})",
                  caption=(w["reason"] or "all 1000 prompt ids judged")
                  + ("\n* " + PARTIAL_NOTE if w.get("partial_overall") is not None else ""))
    table.add_column("category")
    table.add_column("n", justify="right")
    table.add_column("score", justify="right")
    for cat, value in w["categories"].items():
        table.add_row(cat, str(w["counts"][cat]), "–" if value is None else f"{value:.4f}")
    overall = w["overall"]
    table.add_row("overall", str(summary["n_evaluated"]),
                  "n/a (needs all 1000 ids)" if overall is None else f"{overall:.4f}")
    if w.get("partial_overall") is not None:
        table.add_row("partial overall*", str(summary["n_evaluated"]),
                      f"{w['partial_overall']:.4f}")
    return table


def wise_comparison_table(summaries: list[dict[str, Any]], title: str = "WISE") -> Table:
    """One row per WISE run: the category scores, the overall and the partial overall."""
    cats = list(dict.fromkeys(c for s in summaries for c in s["wise"]["categories"]))
    table = Table(title=title, caption=PARTIAL_NOTE)
    for col in ("policy", "variant", "judge", "n", *cats, "overall", "partial*"):
        table.add_column(col, justify="left" if col in ("policy", "variant", "judge") else "right")

    def cell(value: Any) -> str:
        return "–" if value is None else f"{value:.4f}"

    for s in summaries:
        w = s["wise"]
        table.add_row(s["policy"], w["variant"], str(w.get("judge", "?")), str(s["n_evaluated"]),
                      *(cell(w["categories"].get(c)) for c in cats), cell(w["overall"]),
                      cell(w.get("partial_overall")))
    return table


def _judge_meta(images_dir: Path, variant: str, judge_spec: str) -> dict[str, Any]:
    return {"kind": "wise-judge", "images_dir": str(images_dir.resolve()), "variant": variant,
            "judge": judge_spec}


def _check_judge_folder(out: Path, meta: dict[str, Any]) -> None:
    """Refuse an existing ``out`` whose ``run.json`` was made with other settings."""
    path = out / "run.json"
    if not path.is_file():
        return
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunError(f"{path} is not valid JSON ({exc}); pass another --out.") from exc
    diff = [k for k in meta if old.get(k) != meta[k]]
    if diff:
        raise RunError(f"Cannot resume {out}: it was judged with different settings "
                       f"({', '.join(diff)}). Use the same flags, or another --out.")


def judge_wise_images(images_dir: str | Path, wise_path: str | Path, variant: str,
                      judge_spec: str = "offline", out_dir: str | Path | None = None,
                      progress: bool = True) -> dict[str, Any]:
    """Score a folder of ``{prompt_id}.png`` images made elsewhere with a WISE judge; resumable.

    Writes ``judged.jsonl`` (one line per judged image, append-only; a rerun
    judges only what is missing) and ``summary.json`` (as a WISE run's ``wise``
    block, plus counts) into ``out_dir`` (default ``<images_dir>/../wise-judged-<judge>``).
    Prompt ids without an image, and images the judge failed on, are counted and
    left for a rerun; the overall needs every one of the 1000 ids judged.

    Args:
        images_dir: Folder holding ``{prompt_id}.png``.
        wise_path: The WISE prompt files (see :class:`knowgen.benchmarks.wise.WiseBenchmark`).
        variant: ``"legacy"`` or ``"verified"``.
        judge_spec: ``offline`` or ``openai:model=...``.
        out_dir: Output folder.
        progress: Show a progress bar.

    Raises:
        DataError: for a missing images folder or unreadable prompt files.
        RunError: when ``out_dir`` was made with other settings, or another process
            is judging into it.
    """
    from knowgen.benchmarks.wise import WiseBenchmark

    images = Path(images_dir)
    if not images.is_dir():
        raise DataError(f"{images} is not a folder; pass the folder of {{prompt_id}}.png images.")
    name = parse_spec(judge_spec)[0]
    out = Path(out_dir) if out_dir else images.resolve().parent / f"wise-judged-{name}"
    meta = _judge_meta(images, variant, judge_spec)
    _check_judge_folder(out, meta)
    tasks = WiseBenchmark(str(wise_path), variant=variant, strict=False).tasks()
    judge = make_wise_judge(judge_spec, variant)
    make_output_folder(out, "--out")
    with FolderLock(out, "WISE judge output folder"):  # one writer per output folder
        return _judge_wise_into(out, images, tasks, judge, judge_spec, variant, meta, progress)


def _judge_wise_into(out: Path, images: Path, tasks: list[Task], judge: Any, judge_spec: str,
                     variant: str, meta: dict[str, Any], progress: bool) -> dict[str, Any]:
    """Judge the images ``out`` lacks and write its summary (``out`` is locked)."""
    name = parse_spec(judge_spec)[0]
    if not (out / "run.json").is_file():
        atomic_write_json(out / "run.json", meta)
    log = SampleLog(out / "judged.jsonl")
    done = {r["id"]: r for r in log.read()}
    todo = [t for t in tasks if t.id not in done and (images / f"{t.id}.png").is_file()]
    queued = {t.id for t in todo}
    missing = [t.id for t in tasks if t.id not in done and t.id not in queued]
    errors: list[str] = []
    lock = threading.Lock()

    def one(task: Task) -> None:
        try:
            verdict = judge.score(task, str(images / f"{task.id}.png")).to_dict()
        except KnowgenError as exc:
            logger.error("WISE judge failed on %s.png: %s", task.id, exc)
            with lock:
                errors.append(task.id)
            return
        rec = {"id": task.id, "meta": {"category": task.category}, "success": True,
               "output_path": f"{task.id}.png", "wise_judgement": verdict}
        with lock:
            log.append(rec)
            done[task.id] = rec

    workers = max(1, int(getattr(judge, "concurrency", 1)))
    with ThreadPoolExecutor(workers) as pool:
        list(tqdm(pool.map(one, todo), total=len(todo), desc=f"WISE judge {name}",
                  disable=not progress))
    samples = [done[t.id] for t in tasks if t.id in done]
    run_meta = {"benchmark": f"wise:variant={variant}", "split": "test",
                "policy": f"images in {images}", "seed": None, "config": {}}
    summary = build_wise_summary(samples, tasks, run_meta, variant=variant, judge=judge_spec,
                                 benchmark_version=f"wise-{variant}",
                                 knowgen_version=knowgen.__version__, git=git_hash())
    summary.update(n_missing_images=len(missing), n_judge_errors=len(errors),
                   out_dir=str(out))
    atomic_write_json(out / "summary.json", summary)
    return summary
