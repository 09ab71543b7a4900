"""``add``: put a validated submission on the board as plain files.

A board is a folder::

    board/
        entries/<entry id>/entry.json     metadata, recomputed scores, corrections, checks
        entries/<entry id>/images/*.jpg   the generated images, downscaled
        entries/<entry id>/gt/*.png       the benchmark's ground truth, downscaled

Everything ``add`` writes, temporary files included, stays inside the board
folder: an archive is unpacked into a temporary folder there, the entry is
assembled in another and moved into place in one rename.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from knowgen.errors import DataError
from knowgen.eval.scoring import DIMENSIONS
from knowgen.leaderboard.benchmarks import BenchmarkSpecs
from knowgen.leaderboard.checks import LoadedSubmission, open_submission
from knowgen.leaderboard.images import downscale
from knowgen.leaderboard.rejudge import DEFAULT_TOLERANCE, rejudge
from knowgen.leaderboard.report import Report, SubmissionError, SubmissionLimits
from knowgen.leaderboard.schema import FORMAT_VERSION
from knowgen.leaderboard.scoring import sample_overall

logger = logging.getLogger(__name__)

ENTRIES = "entries"
ENTRY_FILE = "entry.json"
#: Version of the entry.json layout.
ENTRY_FORMAT = 1


def slug(text: str, limit: int = 40) -> str:
    """Lower-case letters, digits and dashes only (``"entry"`` when nothing is left)."""
    out = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].strip("-")
    return out or "entry"


def add(submission: str | Path, board_dir: str | Path, rejudge_fraction: float = 0.0,
        judge: Any = None, tolerance: float = DEFAULT_TOLERANCE, seed: int = 0,
        benchmarks: BenchmarkSpecs | None = None,
        limits: SubmissionLimits | None = None) -> dict[str, Any]:
    """Validate ``submission`` and store it on the board in ``board_dir``.

    Every aggregate is recomputed from the per-sample judgements; submitted totals
    that disagree are noted in the entry's ``corrections`` and ignored.

    Args:
        submission: A submission folder, or a ``.zip`` / ``.tar.gz`` of one.
        board_dir: The board folder (created when missing).
        rejudge_fraction: Share of evaluated samples the board re-judges, in [0, 1].
        judge: Image-judge spec (or object) for re-judging; required when the fraction > 0.
        tolerance: Largest accepted mean absolute difference of re-judged overall scores.
        seed: Seed of the random choice of samples to re-judge.
        benchmarks: Benchmark spec (or object) per name; see :func:`validate`.
        limits: Caps on archives and images.

    Returns:
        The stored entry (the content of its ``entry.json``).

    Raises:
        SubmissionError: when validation found errors (the report lists them all).
        DuplicateEntry: when the same results are already on the board.
        knowgen.errors.ConfigError: when ``judge`` is missing or cannot be built.
    """
    from knowgen.errors import ConfigError

    if rejudge_fraction and judge is None:
        raise ConfigError("rejudge_fraction > 0 needs a judge, e.g. judge='offline'.")
    board = Path(board_dir)
    (board / ENTRIES).mkdir(parents=True, exist_ok=True)
    report = Report(str(submission))
    with open_submission(submission, report, benchmarks, limits, work_dir=board) as sub:
        if sub is None or not report.ok or sub.meta is None or sub.scores is None:
            raise SubmissionError(report)
        digest, content = _digest(sub.root), content_digest(sub)
        _refuse_duplicate(board, digest, content)
        checks = (rejudge(sub, judge, rejudge_fraction, seed, tolerance)
                  if rejudge_fraction else None)
        entry = _entry(sub, report, digest, content, Path(submission).name, checks)
        _store(board, entry, sub)
    logger.info("Added %s (%s %s) to %s", entry["entry_id"], entry["scores"]["headline_label"],
                entry["scores"]["headline"], board)
    return entry


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for name in ("submission.yaml", "results.json", "samples.jsonl"):
        h.update(name.encode() + b"\0" + (root / name).read_bytes() + b"\0")
    return h.hexdigest()


def content_digest(sub: LoadedSubmission) -> str:
    """SHA-256 of what a submission's results say, independent of how its files are written.

    The parsed items of ``results.json`` and the lines of ``samples.jsonl``,
    each sorted by id and written as canonical JSON, are hashed with the judge
    and benchmark named in ``submission.yaml`` (which decide the table an entry
    joins); the rest of ``submission.yaml`` and the files' bytes are left out.
    Reformatting a file, reordering lines or renaming the system gives the
    same digest, so the same run cannot enter the board twice.
    """
    h = hashlib.sha256()
    if sub.meta is not None:
        where = {"judge": sub.meta.judge.model_dump(mode="json"),
                 "benchmark": sub.meta.benchmark.model_dump(mode="json")}
        h.update(json.dumps(where, sort_keys=True).encode() + b"\0")
    for name, items in (("results", sub.results), ("samples", sub.samples)):
        rows = sorted((item.model_dump(mode="json") for item in items), key=lambda r: r["id"])
        h.update(name.encode() + b"\0" + json.dumps(rows, sort_keys=True, ensure_ascii=True,
                                                     separators=(",", ":")).encode() + b"\0")
    return h.hexdigest()


def load_entries(board_dir: str | Path) -> list[dict[str, Any]]:
    """Every entry on the board, oldest first.

    Raises:
        DataError: when an ``entry.json`` is unreadable or of another format.
    """
    root = Path(board_dir) / ENTRIES
    entries = []
    for path in sorted(root.glob(f"*/{ENTRY_FILE}")) if root.is_dir() else []:
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(f"Cannot read {path} ({exc}); restore it or remove its folder.") from exc
        if not isinstance(entry, dict) or entry.get("entry_format") != ENTRY_FORMAT:
            raise DataError(f"{path} is not a board entry of format {ENTRY_FORMAT}; "
                            "remove its folder and add the submission again.")
        if entry.get("entry_id") != path.parent.name:
            raise DataError(f"{path} names entry {entry.get('entry_id')!r} but lies in "
                            f"{path.parent.name!r}; rename the folder back.")
        entries.append(entry)
    return sorted(entries, key=lambda e: (e.get("added_at", ""), e["entry_id"]))


class DuplicateEntry(DataError):
    """The submission's results are on the board already (``entry_id`` names the entry)."""

    def __init__(self, entry_id: str):
        self.entry_id = entry_id
        super().__init__(f"This submission is already on the board as {entry_id!r} (same "
                         "results); nothing was added.")


def _refuse_duplicate(board: Path, digest: str, content: str) -> None:
    for entry in load_entries(board):
        source = entry.get("source", {})
        if source.get("content_sha256") == content or source.get("sha256") == digest:
            raise DuplicateEntry(entry["entry_id"])


def _sample_rows(sub: LoadedSubmission) -> list[dict[str, Any]]:
    rows = []
    order = {sid: i for i, sid in enumerate(sub.tasks)}
    for i, s in enumerate(sorted(sub.samples, key=lambda s: order[s.id])):
        task = sub.tasks[s.id]
        row: dict[str, Any] = {"id": s.id, "prompt": task.prompt, "category": task.category,
                               "difficulty": task.difficulty, "success": s.success,
                               "file": f"s{i:05d}"}
        if s.image_judgement is not None and s.success:
            j = s.image_judgement
            row.update({d: getattr(j, d) for d in DIMENSIONS})
            row["text_accuracy_na"] = j.text_accuracy_na
            row["overall"] = sample_overall(j.model_dump())
        if s.wise_judgement is not None and s.success:
            row["wise"] = s.wise_judgement.model_dump(exclude_none=True)
        rows.append(row)
    return rows


def _entry(sub: LoadedSubmission, report: Report, digest: str, content: str, source_name: str,
           checks: dict[str, Any] | None) -> dict[str, Any]:
    meta = sub.meta
    assert meta is not None and sub.scores is not None
    entry_id = f"{meta.date.isoformat()}-{slug(meta.system)}-{content[:8]}"
    flags = []
    if checks and checks["flagged"]:
        flags.append(f"re-judged {checks['n']} sample(s) with {checks['judge']}: mean absolute "
                     f"difference {checks['mean_abs_diff']} exceeds {checks['tolerance']}"
                     + (f" ({checks['n_failed']} failed)" if checks["n_failed"] else ""))
    return {
        "entry_format": ENTRY_FORMAT,
        "submission_format": FORMAT_VERSION,
        "entry_id": entry_id,
        "added_at": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "submission": meta.model_dump(mode="json"),
        "source": {"name": source_name, "sha256": digest, "content_sha256": content},
        "scores": sub.scores,
        "n_samples": len(sub.samples),
        "corrections": [f"{p.where}: {p.message}" for p in report.warnings],
        "rejudge": checks,
        "flagged": bool(flags),
        "flags": flags,
        "samples": _sample_rows(sub),
    }


def _store(board: Path, entry: dict[str, Any], sub: LoadedSubmission) -> None:
    final = board / ENTRIES / entry["entry_id"]
    if final.exists():
        raise DataError(f"Entry folder {final} exists already; remove it to add this again.")
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=board))
    try:
        for row in entry["samples"]:
            image = sub.images.get(row["id"])
            if image is not None:
                row["image"] = downscale(image, staging / "images" / row["file"]) \
                    .relative_to(staging).as_posix()
            gt = sub.tasks[row["id"]].gt_image
            if gt and Path(gt).is_file():
                row["gt"] = downscale(Path(gt), staging / "gt" / row["file"]) \
                    .relative_to(staging).as_posix()
        text = json.dumps(entry, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
        (staging / ENTRY_FILE).write_text(text, encoding="utf-8")
        os.chmod(staging, 0o755)
        os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
