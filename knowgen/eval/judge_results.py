"""Judge images produced elsewhere, given in the official KnowGen results format.

``judge_results`` reads a results array (``id, success, prompt, meta, output_path,
gt_image`` per item), scores every generated image with a configured image
judge, and writes into its output folder::

    judged.jsonl       one line per sample (append-only; a rerun skips the ids it holds)
    results_eval.json  the official evaluator's judged output: every results item with
                       ``eval_success``, ``scores`` and ``error``, then the three
                       summary items (see :mod:`knowgen.eval.upstream_format`)
    summary.json       K-Score, groups, categories, counts, judge spec, knowgen version

Samples with ``success`` false or no image file are ``not_evaluated``: listed,
but left out of the averages (never scored 0). A judge failure on one sample is
recorded as that sample's error and the run goes on.

By default the file is read as the official evaluator reads it: an item without
``meta`` (or with a category in neither group) is judged and left out of the
groups, an item without a readable ground-truth image is not evaluated, an empty
prompt is that item's error. ``strict=True`` refuses such files instead (every
problem listed) and counts a missing ground truth as the sample's error.

Scored items of a ``results_eval.json``, whether in the output folder or given as
the results file itself (as the official evaluator writes it), are taken as done
and not judged again.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from PIL import Image
from tqdm.auto import tqdm

from knowgen.errors import DataError, RunError, UnknownNameError
from knowgen.eval import upstream_format
from knowgen.eval.rundir import SampleLog, atomic_write_json
from knowgen.eval.scoring import SampleScore, aggregate_knowgen, normalize_category
from knowgen.judges.rubrics import lenient_counts
from knowgen.locking import FolderLock, make_output_folder
from knowgen.registry import IMAGE_JUDGES, parse_spec
from knowgen.types import Task

logger = logging.getLogger(__name__)

#: Statuses of a line of ``judged.jsonl``.
STATUSES = ("scored", "not_evaluated", "error")
OFFLINE_ONLY_WORLD = ("the offline judge only scores world tasks; "
                      "use --judge openai:... for other benchmarks")


def _valid_id(item: dict[str, Any]) -> bool:
    return isinstance(item.get("id"), (str, int)) and not isinstance(item.get("id"), bool)


def _item_problems(index: int, item: Any, strict: bool) -> list[str]:
    """Every problem of one results item, each naming the item index and the field.

    Outside strict mode only what makes an item unusable is a problem: it is not
    an object, or it has no id.
    """
    where = f"item {index}"
    if not isinstance(item, dict):
        return [f"{where}: expected an object, got {type(item).__name__}"]
    problems = []
    if not _valid_id(item):
        problems.append(f"{where}: field 'id' is missing or not a string")
    if not strict:
        return problems
    if not isinstance(item.get("success"), bool):
        problems.append(f"{where}: field 'success' is missing or not true/false")
    if not isinstance(item.get("prompt"), str):
        problems.append(f"{where}: field 'prompt' is missing or not a string")
    meta = item.get("meta")
    if not isinstance(meta, dict):
        problems.append(f"{where}: field 'meta' is missing or not an object")
    else:
        if not isinstance(meta.get("category"), str):
            problems.append(f"{where}: field 'meta.category' is missing or not a string")
        if not isinstance(meta.get("difficulty", ""), str):
            problems.append(f"{where}: field 'meta.difficulty' is not a string")
    if "output_path" not in item or not isinstance(item["output_path"], (str, type(None))):
        problems.append(f"{where}: field 'output_path' is missing or not a string/null")
    if not isinstance(item.get("gt_image"), str):
        problems.append(f"{where}: field 'gt_image' is missing or not a string")
    return problems


def load_results(path: str | Path, strict: bool = False) -> list[dict[str, Any]]:
    """Read and validate a KnowGen results file; trailing summary items are dropped.

    Args:
        path: The results array (JSON), or a judged output of the same form.
        strict: Refuse items with a missing or mistyped field; otherwise only an
            item that is not an object or has no id (or a repeated one) is refused.

    Raises:
        DataError: when the file is missing, not JSON, not an array, or has bad
            items (every problem listed, with the item index and field).
    """
    path = Path(path)
    if path.is_dir():
        inner = path / "results.json"
        hint = f"pass {inner}" if inner.is_file() else "pass a results JSON file"
        raise DataError(f"{path} is a folder, not a results file; {hint} (or add --wise for a "
                        "folder of WISE images).")
    if not path.is_file():
        raise DataError(f"Results file {path} does not exist.")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"Results file {path} is not valid JSON ({exc}).") from exc
    except RecursionError:
        raise DataError(f"Results file {path} is nested too deeply to be a results "
                        "array.") from None
    if not isinstance(data, list):
        raise DataError(f"Results file {path} must hold a JSON array of items, "
                        f"got a {type(data).__name__}.")
    items, problems, seen = [], [], set()
    for i, item in enumerate(data):
        if isinstance(item, dict) and "id" not in item and "avg_scores" in item:
            continue  # a summary item appended by the official evaluator
        found = _item_problems(i, item, strict)
        problems += found
        if not found:
            if str(item["id"]) in seen:
                problems.append(f"item {i}: field 'id' repeats id {item['id']!r}")
            seen.add(str(item["id"]))
            items.append(item)
    if problems:
        raise DataError(f"Results file {path} has {len(problems)} problem(s); fix them and "
                        "rerun:\n  " + "\n  ".join(problems))
    return items


def resolve_path(base: Path, value: str | None) -> Path | None:
    """``value`` as a path, relative ones resolved against ``base``; ``None`` when empty."""
    if not value:
        return None
    p = Path(value).expanduser()
    return p if p.is_absolute() else (base / p).resolve()


class _TaskMaker:
    """Builds the Task of a results item; world facts attached for the offline and clip judges.

    With ``facts_optional`` an id the world lacks gives a task without facts
    instead of an error (the clip judge then compares with the GT image).
    """

    def __init__(self, base: Path, with_facts: bool, world_seed: int,
                 world_cache_dir: str | None, facts_optional: bool = False):
        self.base = base
        self.with_facts, self.facts_optional = with_facts, facts_optional
        self.world_seed, self.world_cache_dir = world_seed, world_cache_dir
        self._world: Any = None

    def make(self, item: dict[str, Any]) -> Task:
        """The Task of ``item``; raises DataError for an id the world lacks (offline judge)."""
        gt = resolve_path(self.base, _text_field(item, "gt_image"))
        meta = _meta(item)
        task = Task(id=str(item["id"]), prompt=_text_field(item, "prompt"),
                    category=normalize_category(meta.get("category")),
                    difficulty=str(meta.get("difficulty") or ""),
                    gt_image=str(gt) if gt else "")
        if not self.with_facts:
            return task
        if self._world is None:
            from knowgen.benchmarks.world import WorldBenchmark

            self._world = WorldBenchmark(seed=self.world_seed, cache_dir=self.world_cache_dir)
        try:
            facts = self._world.task(task.id).facts
        except UnknownNameError:
            if self.facts_optional:
                return task
            raise DataError(f"{task.id!r} is not a world task (seed {self.world_seed}): "
                            f"{OFFLINE_ONLY_WORLD}") from None
        return Task(task.id, task.prompt, task.category, task.difficulty, task.gt_image, facts)


def task_maker(base: Path, judge_name: str, world_seed: int = 0,
               world_cache_dir: str | None = None) -> _TaskMaker:
    """The task builder for results items judged by ``judge_name`` (facts where it uses them)."""
    return _TaskMaker(base, judge_name in ("offline", "clip"), world_seed, world_cache_dir,
                      facts_optional=judge_name != "offline")


def _meta(item: dict[str, Any]) -> dict[str, Any]:
    return item["meta"] if isinstance(item.get("meta"), dict) else {}


def _text_field(item: dict[str, Any], name: str) -> str:
    value = item.get(name)
    return value if isinstance(value, str) else ""


def _not_judged_reason(item: dict[str, Any], base: Path, strict: bool) -> str | None:
    """Why ``item`` is not evaluated (``None`` when it is to be judged)."""
    if not item.get("success"):
        return "success is false"
    image_path = resolve_path(base, _text_field(item, "output_path"))
    if image_path is None or not image_path.is_file():
        return f"no image at {image_path}"
    if strict:
        return None
    gt = resolve_path(base, _text_field(item, "gt_image"))
    if gt is None or not gt.is_file():
        return f"no ground-truth image at {gt}"
    return None


def _judge_one(item: dict[str, Any], base: Path, judge: Any, maker: _TaskMaker,
               spec: str, strict: bool) -> dict[str, Any]:
    """The ``judged.jsonl`` record of one results item."""
    rec: dict[str, Any] = {"id": str(item["id"]),
                           "category": normalize_category(_meta(item).get("category")),
                           "judge": spec}
    why = _not_judged_reason(item, base, strict)
    if why:
        return {**rec, "status": "not_evaluated", "reason": why}
    try:
        if not _text_field(item, "prompt").strip():
            raise DataError(f"Item {rec['id']!r} has an empty prompt.")
        task = maker.make(item)
        with Image.open(resolve_path(base, item["output_path"])) as img:  # type: ignore[arg-type]
            image = img.convert("RGB")
        judgement = judge.score(task, image).to_dict()
    except Exception as exc:  # noqa: BLE001 - one failing sample must not stop the run
        logger.warning("Judging %s failed: %s: %s", rec["id"], type(exc).__name__, exc)
        return {**rec, "status": "error",
                "error": {"type": type(exc).__name__, "message": str(exc)}}
    return {**rec, "status": "scored", "judgement": judgement}


def _check_same_judge(done: dict[str, dict[str, Any]], spec: str, log_path: Path) -> None:
    other = {r.get("judge") for r in done.values()} - {spec}
    if other:
        raise RunError(f"{log_path} holds samples judged with {sorted(map(str, other))}, not "
                       f"{spec!r}. Use the same --judge to resume, or another --out folder.")


def _with_strict(spec: str, strict: bool) -> str:
    """``spec`` with ``strict=true`` added for an ``openai`` judge in strict mode."""
    name, kwargs = parse_spec(spec)
    if not strict or name != "openai" or "strict" in kwargs:
        return spec
    return f"{spec},strict=true" if ":" in spec else f"{spec}:strict=true"


def _imported(items: list[dict[str, Any]], done: dict[str, dict[str, Any]], results_path: Path,
              out: Path, spec: str) -> list[dict[str, Any]]:
    """Records of items already scored in a judged output (the input itself or the out folder)."""
    found = upstream_format.scored_items(
        [it for it in items if "eval_success" in it], results_path)
    for item_id, judgement in upstream_format.read_scored(out / upstream_format.FILE_NAME).items():
        found.setdefault(item_id, judgement)
    recs = []
    for item in items:
        item_id = str(item["id"])
        if item_id in found and item_id not in done:
            recs.append({"id": item_id, "category": normalize_category(_meta(item).get("category")),
                         "judge": spec, "status": "scored", "judgement": found[item_id],
                         "imported_from": found[item_id]["evidence"]["imported_from"]})
    return recs


def judge_results(results_path: str | Path, judge_spec: str = "offline",
                  out_dir: str | Path | None = None, world_seed: int = 0,
                  world_cache_dir: str | None = None, progress: bool = True,
                  strict: bool = False) -> dict[str, Any]:
    """Score the images of a KnowGen results file with an image judge; resumable.

    Args:
        results_path: The official results array (JSON), or a ``results_eval.json``
            whose scored items are kept as they are.
        judge_spec: Image judge spec for ``IMAGE_JUDGES`` (``offline``, ``openai:...``).
        out_dir: Output folder (default: ``<results folder>/judged-<judge name>``).
        world_seed: Seed of the world benchmark whose hidden facts the offline judge uses.
        world_cache_dir: Ground-truth cache of that world benchmark.
        progress: Show a progress bar.
        strict: Refuse malformed items and judge replies with a missing or
            off-scale score instead of reading them as the official evaluator does.

    Returns:
        The summary written to ``summary.json``.

    Raises:
        DataError: when the results file is malformed (every problem listed).
        RunError: when ``judged.jsonl`` was written by another judge spec.
    """
    results_path = Path(results_path).resolve()
    items = load_results(results_path, strict=strict)
    base = results_path.parent
    judge_spec = _with_strict(judge_spec, strict)
    name, _ = parse_spec(judge_spec)
    out = Path(out_dir) if out_dir else base / f"judged-{name}"
    make_output_folder(out, "--out")
    with FolderLock(out, "judge output folder"):  # one writer per output folder
        return _judge_into(out, items, base, name, judge_spec, world_seed, world_cache_dir,
                           progress, results_path, strict)


def _judge_into(out: Path, items: list[dict[str, Any]], base: Path, name: str,
                judge_spec: str, world_seed: int, world_cache_dir: str | None, progress: bool,
                results_path: Path, strict: bool) -> dict[str, Any]:
    """Judge what ``out`` lacks and write its outputs (``out`` is locked)."""
    log = SampleLog(out / "judged.jsonl")
    done = {r["id"]: r for r in log.read()}
    _check_same_judge(done, judge_spec, log.path)
    imported = _imported(items, done, results_path, out, judge_spec)
    for rec in imported:
        log.append(rec)
        done[rec["id"]] = rec
    if imported:
        logger.info("Took %d scored samples from %s", len(imported),
                    ", ".join(sorted({r["imported_from"] for r in imported})))
    todo = [it for it in items if str(it["id"]) not in done]
    if done:
        logger.info("Resuming %s: %d of %d samples already judged", out, len(items) - len(todo),
                    len(items))
    if todo:
        judge = IMAGE_JUDGES.create(judge_spec)
        maker = task_maker(base, name, world_seed, world_cache_dir)
        for item in tqdm(todo, desc=f"judge {name}", unit="image", disable=not progress):
            rec = _judge_one(item, base, judge, maker, judge_spec, strict)
            log.append(rec)
            done[rec["id"]] = rec
    return _write_outputs(out, items, done, judge_spec, results_path, strict)


def _write_outputs(out: Path, items: list[dict[str, Any]], done: dict[str, dict[str, Any]],
                   spec: str, results_path: Path, strict: bool) -> dict[str, Any]:
    import knowgen

    recs = [done[str(it["id"])] for it in items]
    scored = [r for r in recs if r["status"] == "scored"]
    scores = [SampleScore.from_mapping(r["id"], r["category"], r["judgement"]) for r in scored]
    agg = aggregate_knowgen(scores)
    upstream_format.write(out / upstream_format.FILE_NAME, items, recs, agg.official_items())
    counts = {s: sum(r["status"] == s for r in recs) for s in STATUSES}
    lenient = lenient_counts([r["judgement"].get("evidence") or {} for r in scored])
    summary = {
        "results": str(results_path),
        "out_dir": str(out),
        "judge": spec,
        "mode": "strict" if strict else "upstream-compatible",
        "knowgen_version": knowgen.__version__,
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **agg.to_dict(),
        "counts": {"samples": len(recs), "scored": counts["scored"],
                   "not_evaluated": counts["not_evaluated"], "errors": counts["error"],
                   "skipped_unknown_category": sum(agg.skipped_categories.values()),
                   "imported": sum(1 for r in scored if r.get("imported_from"))},
        "lenient": lenient,
        "not_evaluated": [r["id"] for r in recs if r["status"] == "not_evaluated"],
        "errors": {r["id"]: r["error"] for r in recs if r["status"] == "error"},
        "official_summary": agg.official_items(),
    }
    atomic_write_json(out / "summary.json", summary)
    if any(lenient.values()):
        logger.warning("Judge replies read leniently (as the official evaluator reads them): %s. "
                       "Use --strict to refuse such replies.",
                       ", ".join(f"{k} in {v} samples" for k, v in lenient.items() if v))
    return summary
