"""``validate``: check a submission and list every problem it has.

Checks, in order: the archive or folder (paths, links, caps), the schema of
``submission.yaml``, ``results.json`` and ``samples.jsonl``, the sample ids
against the named benchmark version and split (missing, extra and duplicate
ids), the agreement of ``results.json`` with ``samples.jsonl`` and with the
benchmark (categories, prompts), every generated image (inside the
submission, within the caps, decodes), the per-sample scores (on the
rubric's scale), and finally the submitted totals against the recomputed ones.

Example:
    >>> report = validate("runs/my_run.zip", benchmarks={"world": "world:cache_dir=/tmp/kg"})
    >>> print(report.text())
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from knowgen.leaderboard.archive import (
    MARKER,
    open_tree,
    read_capped,
    resolve_inside,
    unsafe_reason,
)
from knowgen.leaderboard.benchmarks import BenchmarkSpecs, expected_tasks
from knowgen.leaderboard.images import check_image
from knowgen.leaderboard.report import Report, SubmissionLimits
from knowgen.leaderboard.safeload import LoadError, load_json, load_yaml
from knowgen.leaderboard.schema import BenchmarkInfo, ResultItem, SampleRecord, SubmissionMeta
from knowgen.leaderboard.scoring import (
    check_wise_sample,
    compare_samples,
    compare_summary,
    recompute,
    rubric_of,
)
from knowgen.types import Task

logger = logging.getLogger(__name__)


@dataclass
class LoadedSubmission:
    """A submission read and checked; only meaningful while its context is open.

    Attributes:
        root: The folder holding ``submission.yaml`` (a temporary one for archives).
        meta: ``submission.yaml``, or None when it failed its schema.
        results: Items of ``results.json`` that passed the schema.
        samples: Lines of ``samples.jsonl`` that passed the schema.
        tasks: The benchmark's tasks the submission must answer, by id.
        images: Generated image of each evaluated sample that passed its checks.
        scores: Recomputed board scores (None when errors prevent them).
    """

    root: Path
    meta: SubmissionMeta | None = None
    results: list[ResultItem] = field(default_factory=list)
    samples: list[SampleRecord] = field(default_factory=list)
    tasks: dict[str, Task] = field(default_factory=dict)
    images: dict[str, Path] = field(default_factory=dict)
    scores: dict[str, Any] | None = None
    benchmark: BenchmarkInfo | None = None
    sample_where: dict[str, str] = field(default_factory=dict)
    unparsed_ids: dict[str, set[str]] = field(default_factory=dict)


def validate(path: str | Path, benchmarks: BenchmarkSpecs | None = None,
             limits: SubmissionLimits | None = None) -> Report:
    """Check the submission at ``path`` and return every problem found.

    Args:
        path: A submission folder, or a ``.zip`` / ``.tar.gz`` of one.
        benchmarks: Benchmark spec (or instance) per benchmark name, for benchmarks
            that need local data, e.g. ``{"knowgen": "knowgen:path=/data/knowgen"}``.
        limits: Caps on archive members, bytes and images (defaults: :class:`SubmissionLimits`).

    Returns:
        The report; ``report.ok`` is True when no error was found.
    """
    report = Report(str(path))
    with open_submission(path, report, benchmarks, limits):
        pass
    return report


@contextmanager
def open_submission(path: str | Path, report: Report, benchmarks: BenchmarkSpecs | None = None,
                    limits: SubmissionLimits | None = None,
                    work_dir: str | Path | None = None) -> Iterator[LoadedSubmission | None]:
    """Open, check and load a submission; temporary files go when the context closes.

    Args:
        path: A submission folder or archive.
        report: Receives every problem.
        benchmarks: See :func:`validate`.
        limits: See :func:`validate`.
        work_dir: Where an archive is unpacked (default: the system's temporary folder).

    Yields:
        The loaded submission, or None when nothing could be read.
    """
    caps = limits or SubmissionLimits()
    with open_tree(path, caps, report, work_dir) as root:
        if root is None:
            yield None
            return
        sub = LoadedSubmission(root)
        _load(sub, report, benchmarks, caps)
        report.info.update(_info(sub))
        yield sub


def _info(sub: LoadedSubmission) -> dict[str, Any]:
    out: dict[str, Any] = {"n_results": len(sub.results), "n_samples": len(sub.samples),
                           "n_expected": len(sub.tasks)}
    if sub.meta is not None:
        out["benchmark"] = sub.meta.benchmark.model_dump()
    if sub.scores is not None:
        out["headline"] = sub.scores["headline"]
        out["coverage"] = sub.scores.get("coverage")
    return out


def _load(sub: LoadedSubmission, report: Report, benchmarks: BenchmarkSpecs | None,
          caps: SubmissionLimits) -> None:
    sub.meta, sub.benchmark = _load_meta(sub.root, report)
    sub.results = _load_results(sub.root, report, caps, sub.unparsed_ids)
    sub.samples = _load_samples(sub.root, report, caps, sub.sample_where, sub.unparsed_ids)
    if sub.benchmark is not None:
        sub.tasks = expected_tasks(sub.benchmark, benchmarks, report) or {}
    _check_ids(sub, report)
    _check_agreement(sub, report)
    rubric = rubric_of(sub.benchmark.name) if sub.benchmark else "knowgen"
    _check_judgements(sub, rubric, report)
    _check_images(sub, report, caps)
    if report.ok and sub.meta is not None:
        _score(sub, rubric, report)


def _where(file: str, loc: tuple[Any, ...]) -> str:
    return f"{file}: {'.'.join(str(x) for x in loc)}" if loc else file


def _schema_errors(exc: ValidationError, file: str, report: Report) -> None:
    for err in exc.errors():
        msg = err["msg"].removeprefix("Value error, ")
        value = err.get("input")
        shown = repr(value)
        if isinstance(value, (str, int, float, bool)) and err["type"] != "missing" \
                and shown not in msg:
            msg += f" (got {shown if len(shown) < 60 else shown[:57] + '...'})"
        report.error(_where(file, tuple(err["loc"])), msg)


def _parse(model: type[BaseModel], data: Any, file: str, report: Report) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        _schema_errors(exc, file, report)
        return None


def _read(root: Path, name: str, cap: int, report: Report, required: bool = True) -> bytes | None:
    if not (root / name).exists() and not (root / name).is_symlink():
        if required:
            report.error(name, "is missing from the submission")
        return None
    path = resolve_inside(root, name, name, report)
    return None if path is None else read_capped(path, cap, name, report)


def _load_meta(root: Path, report: Report) -> tuple[SubmissionMeta | None, BenchmarkInfo | None]:
    """``submission.yaml``, and its benchmark part alone when only the rest failed."""
    raw = _read(root, MARKER, SubmissionLimits().max_yaml_bytes, report)
    if raw is None:
        return None, None
    try:
        data = load_yaml(raw.decode("utf-8"))
    except (LoadError, UnicodeDecodeError) as exc:
        report.error(MARKER, f"is not valid YAML ({exc})")
        return None, None
    if not isinstance(data, dict):
        report.error(MARKER, "must be a mapping of fields (system, agent, generator, ...)")
        return None, None
    meta = _parse(SubmissionMeta, data, MARKER, report)
    if meta is not None:
        return meta, meta.benchmark
    try:
        return None, BenchmarkInfo.model_validate(data.get("benchmark"))
    except ValidationError:
        return None, None


def _raw_id(data: Any) -> str | None:
    sid = data.get("id") if isinstance(data, dict) else None
    return sid if isinstance(sid, str) else None


def _load_results(root: Path, report: Report, caps: SubmissionLimits,
                  unparsed: dict[str, set[str]]) -> list[ResultItem]:
    raw = _read(root, "results.json", caps.max_file_bytes, report)
    if raw is None:
        return []
    try:
        data = load_json(raw)
    except LoadError as exc:
        report.error("results.json", f"is not valid JSON ({exc})")
        return []
    if not isinstance(data, list):
        report.error("results.json", "must be a JSON array of result items")
        return []
    items = []
    for i, item in enumerate(data):
        parsed = _parse(ResultItem, item, f"results.json[{i}]", report)
        if parsed is not None:
            items.append(parsed)
        elif _raw_id(item):
            unparsed.setdefault("results.json", set()).add(_raw_id(item))
    return items


def _load_samples(root: Path, report: Report, caps: SubmissionLimits, where: dict[str, str],
                  unparsed: dict[str, set[str]]) -> list[SampleRecord]:
    raw = _read(root, "samples.jsonl", caps.max_file_bytes, report)
    if raw is None:
        return []
    samples = []
    for n, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        loc = f"samples.jsonl line {n}"
        try:
            data = load_json(line)
        except LoadError as exc:
            report.error(loc, f"is not valid JSON ({exc})")
            continue
        parsed = _parse(SampleRecord, data, loc, report)
        if parsed is not None:
            samples.append(parsed)
            where.setdefault(parsed.id, f"{loc} (id {parsed.id!r})")
        elif _raw_id(data):
            unparsed.setdefault("samples.jsonl", set()).add(_raw_id(data))
    return samples


def _dups(ids: list[str], file: str, report: Report) -> None:
    for sid, n in sorted(Counter(ids).items()):
        if n > 1:
            report.error(file, f"id {sid!r} appears {n} times; keep one item per sample")


def _check_ids(sub: LoadedSubmission, report: Report) -> None:
    result_ids = [r.id for r in sub.results]
    sample_ids = [s.id for s in sub.samples]
    _dups(result_ids, "results.json", report)
    _dups(sample_ids, "samples.jsonl", report)
    all_results = set(result_ids) | sub.unparsed_ids.get("results.json", set())
    all_samples = set(sample_ids) | sub.unparsed_ids.get("samples.jsonl", set())
    if all_results or (sub.root / "results.json").exists():
        for sid in sorted(all_results - all_samples):
            report.error("samples.jsonl", f"has no line for id {sid!r} of results.json")
        for sid in sorted(all_samples - all_results):
            report.error("results.json", f"has no item for id {sid!r} of samples.jsonl")
    if not sub.tasks:
        return
    label = _split_label(sub)
    given = all_results | all_samples
    for sid in sorted(set(sub.tasks) - given):
        report.error("results.json", f"id {sid!r} of {label} is missing")
    for sid in sorted(given - set(sub.tasks)):
        report.error("results.json", f"id {sid!r} is not a task of {label}")


def _split_label(sub: LoadedSubmission) -> str:
    b = sub.benchmark  # type: ignore[union-attr]
    subset = f" (limit {b.limit})" if b.limit else ""
    return f"{b.name} {b.version}/{b.split}{subset}"


def _check_agreement(sub: LoadedSubmission, report: Report) -> None:
    samples = {s.id: s for s in sub.samples}
    for i, item in enumerate(sub.results):
        where = f"results.json[{i}] (id {item.id!r})"
        s = samples.get(item.id)
        if s is not None:
            for key in ("success", "output_path"):
                if getattr(s, key) != getattr(item, key):
                    report.error(where, f"{key} {getattr(item, key)!r} differs from "
                                 f"samples.jsonl's {getattr(s, key)!r}")
            if s.meta.category != item.meta.category:
                report.error(where, f"meta.category {item.meta.category!r} differs from "
                             f"samples.jsonl's {s.meta.category!r}")
        task = sub.tasks.get(item.id)
        if task is None:
            continue
        if item.meta.category.lower() != task.category.lower():
            report.error(where, f"meta.category {item.meta.category!r} is not the benchmark's "
                         f"{task.category!r}")
        if item.prompt.strip() != task.prompt.strip():
            report.error(where, "prompt differs from the benchmark's; was the run made on "
                         "another version of it?")


def _check_judgements(sub: LoadedSubmission, rubric: str, report: Report) -> None:
    variant = str(sub.benchmark.args.get("variant", "verified")) if sub.benchmark else "verified"
    for s in sub.samples:
        where = sub.sample_where.get(s.id, f"samples.jsonl (id {s.id!r})")
        if not s.success:
            continue
        if rubric == "knowgen" and s.image_judgement is None:
            report.error(where, "success is true but image_judgement is missing; judge the "
                         "sample, or set success false to leave it out of the averages")
        if rubric == "wise":
            if s.wise_judgement is None:
                report.error(where, "success is true but wise_judgement is missing")
            check_wise_sample(s, variant, where, report)


def _check_images(sub: LoadedSubmission, report: Report, caps: SubmissionLimits) -> None:
    seen: set[str] = set()
    for s in sub.samples:
        if s.id in seen:
            continue
        seen.add(s.id)
        where = sub.sample_where.get(s.id, f"samples.jsonl (id {s.id!r})")
        if s.gt_image is not None and unsafe_reason(s.gt_image):
            report.error(f"{where}: gt_image", f"path {s.gt_image!r} {unsafe_reason(s.gt_image)}")
        if not s.success:
            continue
        if not s.output_path:
            report.error(f"{where}: output_path", "success is true but no image is named")
            continue
        path = resolve_inside(sub.root, s.output_path, f"{where}: output_path", report)
        if path is not None and check_image(path, s.output_path, f"{where}: output_path",
                                            caps, report):
            sub.images[s.id] = path


def _score(sub: LoadedSubmission, rubric: str, report: Report) -> None:
    b = sub.meta.benchmark  # type: ignore[union-attr]
    categories = {sid: t.category for sid, t in sub.tasks.items()}
    requested = [int(sid) for sid in sub.tasks] if rubric == "wise" else None
    sub.scores = recompute(sub.samples, rubric, categories,
                           variant=str(b.args.get("variant", "verified")), requested=requested)
    n_expected, n_evaluated = sub.scores.get("n_expected", 0), sub.scores["n_evaluated"]
    if n_evaluated < n_expected:
        report.warn("samples.jsonl", f"{n_expected - n_evaluated} of {n_expected} samples were "
                    "not evaluated (success false or no judgement); the board counts each as 0 "
                    f"and shows the coverage ({n_evaluated}/{n_expected}) beside the scores")
    pairs = [(sub.sample_where.get(s.id, s.id), s) for s in sub.samples]
    n_samples = compare_samples(pairs, report)
    n_summary = 0
    if (sub.root / "summary.json").exists():
        raw = _read(sub.root, "summary.json", 64 * 1024**2, report, required=False)
        try:
            summary = load_json(raw) if raw is not None else None
        except LoadError:
            report.warn("summary.json", "is not valid JSON; it is ignored")
            summary = None
        n_summary = compare_summary(summary, sub.scores, report)
    sub.scores["corrected"] = {"samples": n_samples, "totals": n_summary}

