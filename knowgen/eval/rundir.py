"""The run folder on disk: atomic writes, an append-only sample log, identity, resuming.

A run folder holds::

    run.json        the run's identity: its settings and a run id (checked on resume)
    samples.jsonl   one finished sample a line: trajectory, answer, judgements
    samples.quarantine.jsonl   lines of samples.jsonl that could not be read (if any)
    results.json    the official KnowGen results array (written at the end)
    summary.json    aggregated scores plus config, versions and git hash
    images/         generated images, ``<id>.png``
    gt/             ground-truth images copied in, ``<id>.png``
    .lock           present while a process writes the folder (see :mod:`knowgen.locking`)

``run.json`` is written before the first sample and every sample line carries
the run id, so a resume with other settings, or a sample log from another run,
is refused instead of mixing two runs under one label.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from knowgen.errors import RunError
from knowgen.fileio import atomic_write_text

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1

IDENTITY_KEYS = ("benchmark", "split", "policy", "seed", "limit", "tasks", "config")
"""Settings of ``run.json`` that must match for a run folder to be resumed."""

RecordCheck = Callable[[Any], str]
"""``check(record) -> problem`` ("" when the record is usable)."""


def atomic_write_json(path: Path, data: Any) -> None:
    """Atomically write ``data`` as indented JSON."""
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def has_id(record: Any) -> str:
    """The default record check: a JSON object with a non-empty string ``id``."""
    if not isinstance(record, dict):
        return "is not a JSON object"
    sid = record.get("id")
    if not isinstance(sid, str) or not sid:
        return "has no sample id"
    return ""


def sample_problem(record: Any, run_id: str | None = None) -> str:
    """Why a line of a run's ``samples.jsonl`` cannot count as a finished sample ("" if it can).

    A finished sample is an object with a string ``id``, a boolean ``success``
    and a ``meta`` object; when ``success`` is true it holds a judgement
    (``image_judgement`` or ``wise_judgement``). With ``run_id`` set, a record
    tagged with another run's id is refused too.
    """
    problem = has_id(record)
    if problem:
        return problem
    if not isinstance(record.get("success"), bool):
        return "lacks a true/false 'success'"
    if not isinstance(record.get("meta"), dict):
        return "lacks its 'meta' object"
    if record["success"] and not (isinstance(record.get("image_judgement"), dict)
                                  or isinstance(record.get("wise_judgement"), dict)):
        return "is marked evaluated but holds no judgement"
    tag = record.get("run_id")
    if run_id is not None and tag is not None and tag != run_id:
        return f"belongs to run {tag!r}, not to this folder's run {run_id!r}"
    return ""


class SampleLog:
    """Append-only JSON-lines log of finished samples.

    A line is written with one ``write`` call, flushed and fsynced, so a killed
    run loses at most the sample it was writing. Reading goes line by line:
    every readable record is kept; a line that cannot be used (torn by a kill,
    not UTF-8, not JSON, failing ``check``, or repeating an id already read) is
    moved to the quarantine file beside the log, with its line number and the
    reason, and a warning names how many and where. Nothing is dropped silently.

    Args:
        path: The log file.
        check: ``check(record) -> problem``; default :func:`has_id`.
    """

    def __init__(self, path: Path, check: RecordCheck | None = None):
        self.path = Path(path)
        self.check = check or has_id

    @property
    def quarantine_path(self) -> Path:
        """Where unreadable lines go: ``<stem>.quarantine.jsonl`` beside the log."""
        return self.path.with_name(f"{self.path.stem}.quarantine.jsonl")

    def read(self) -> list[dict[str, Any]]:
        """Every usable record, in file order; unusable lines are moved to quarantine.

        Raises:
            RunError: when the log cannot be read or rewritten (permissions, disk).
        """
        if not self.path.exists():
            return []
        try:
            raw = self.path.read_bytes()
        except OSError as exc:
            raise RunError(f"Cannot read {self.path} ({exc.strerror}).") from None
        records, kept, bad = scan_lines(raw, self.check)
        body = b"".join(kept)
        if body != raw:
            self._quarantine(bad)
            self._rewrite(body)
        return records

    def _quarantine(self, bad: list[tuple[int, str, bytes]]) -> None:
        if not bad:
            return
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        lines = "".join(json.dumps({"source": self.path.name, "line": n, "reason": why,
                                    "quarantined_at": stamp,
                                    "text": line.decode("utf-8", "backslashreplace")},
                                   ensure_ascii=True) + "\n" for n, why, line in bad)
        try:
            with self.quarantine_path.open("a", encoding="ascii") as fh:
                fh.write(lines)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise RunError(f"Cannot write {self.quarantine_path} ({exc.strerror}); "
                           f"{self.path} is left as it was.") from None
        shown = "; ".join(f"line {n} {why}" for n, why, _ in bad[:3])
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        logger.warning("%d line(s) of %s could not be used and were moved to %s (%s%s); "
                       "every other record is kept and the samples of those lines are "
                       "evaluated again.", len(bad), self.path, self.quarantine_path, shown, more)

    def _rewrite(self, body: bytes) -> None:
        from knowgen.fileio import atomic_write

        try:
            atomic_write(self.path, lambda fh: fh.write(body))
        except OSError as exc:
            raise RunError(f"Cannot rewrite {self.path} ({exc.strerror}).") from None

    def rewrite(self, records: list[dict[str, Any]]) -> None:
        """Replace the log's content with ``records`` (atomically)."""
        self._rewrite(b"".join(_line(r) for r in records))

    def append(self, record: dict[str, Any]) -> None:
        """Append one record durably."""
        with self.path.open("ab") as fh:
            fh.write(_line(record))
            fh.flush()
            os.fsync(fh.fileno())


def _line(record: dict[str, Any]) -> bytes:
    """One JSON line; a lone surrogate is kept as its JSON escape, never as invalid UTF-8."""
    text = json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n"
    return text.encode("utf-8", "backslashreplace")


def scan_lines(raw: bytes, check: RecordCheck, skip: Callable[[Any], bool] | None = None
               ) -> tuple[list[dict[str, Any]], list[bytes], list[tuple[int, str, bytes]]]:
    """Split a sample log's bytes into usable records and the lines that cannot be used.

    A line is unusable when it is not UTF-8, not JSON, fails ``check``, or repeats an id
    read before it (the first copy is the one kept). A record that ``skip`` names is
    neither kept nor counted as unusable.

    Returns:
        ``(records, kept_lines, bad)``: the usable records in file order, their lines
        (each ending in a newline), and ``(line number, why, line)`` for the rest.
    """
    records: list[dict[str, Any]] = []
    kept: list[bytes] = []
    bad: list[tuple[int, str, bytes]] = []
    seen: set[str] = set()
    for n, line in enumerate(raw.splitlines(keepends=True), 1):
        if not line.strip():
            continue
        record, problem = _parse_line(line, check)
        if not problem and skip is not None and skip(record):
            continue
        if not problem and record["id"] in seen:
            problem = f"repeats sample {record['id']!r} (the first copy is kept)"
        if problem:
            if not line.endswith(b"\n"):
                problem += "; it is the last line and has no line end (a write was cut off)"
            bad.append((n, problem, line))
            continue
        seen.add(record["id"])
        records.append(record)
        kept.append(line if line.endswith(b"\n") else line + b"\n")
    return records, kept, bad


def _parse_line(line: bytes, check: RecordCheck) -> tuple[Any, str]:
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"is not UTF-8 (byte {exc.start})"
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"is not valid JSON ({exc.msg} at column {exc.colno})"
    except RecursionError:
        return None, "is nested too deeply to read"
    return record, check(record)


def read_samples(run_dir: str | Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]],
                                               list[str]]:
    """A run folder's own finished samples, read as a resume reads them, changing nothing.

    The readers of a finished run (paired comparisons, replay data) take the samples a
    resume of the run would keep: the lines of its own ``run_id`` (every line, in a
    folder that has none) that :func:`sample_problem` accepts, the first copy of each id.
    Unlike :meth:`SampleLog.read`, nothing is moved to quarantine.

    Returns:
        ``(meta, samples, problems)``: the folder's ``run.json``, its samples by id, and
        ``"line N <why>"`` for each line a resume would set aside as unreadable (lines of
        another run are left out without a word, as the run's summary left them out).

    Raises:
        RunError: when ``run.json`` or ``samples.jsonl`` is missing or unreadable.
    """
    folder = Path(run_dir)
    meta = read_run_meta(folder)
    run_id = meta.get("run_id")
    path = folder / "samples.jsonl"
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RunError(f"Cannot read {path} ({exc.strerror}); pass the folder of a "
                       "'knowgen eval' run that has played some tasks.") from None
    records, _, bad = scan_lines(raw, sample_problem, skip=lambda record: run_id is not None
                                 and record.get("run_id") not in (None, run_id))
    return meta, {r["id"]: r for r in records}, [f"line {n} {why}" for n, why, _ in bad]


def git_hash() -> str | None:
    """The commit of the knowgen checkout, when it runs from one."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True,
            text=True, timeout=5, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def new_run_id() -> str:
    """A fresh run id (12 hex digits)."""
    return uuid.uuid4().hex[:12]


def read_run_meta(run_dir: Path) -> dict[str, Any]:
    """The content of ``run_dir/run.json``.

    Raises:
        RunError: when it is missing, unreadable, not UTF-8 JSON, or not an object.
    """
    meta_path = Path(run_dir) / "run.json"
    if not meta_path.is_file():
        raise RunError(
            f"{run_dir} has no run.json, so it is not a knowgen run folder. "
            "Pass a folder made by 'knowgen eval', or choose a new --run-dir."
        )
    fix = ("Move it aside and rerun with --adopt to take the folder over with the current "
           "settings, or choose a new --run-dir.")
    try:
        old = json.loads(meta_path.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise RunError(f"Cannot read {meta_path} ({exc.strerror}).") from None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise RunError(f"{meta_path} is not valid JSON ({exc}). {fix}") from None
    if not isinstance(old, dict) or not all(k in old for k in ("benchmark", "policy")):
        raise RunError(f"{meta_path} does not hold a run's settings (got "
                       f"{type(old).__name__}). {fix}")
    return old


def check_resumable(run_dir: Path, run_meta: dict[str, Any],
                    grows: Callable[[Any], bool] | None = None) -> dict[str, Any]:
    """Refuse to resume a run folder that was started with other settings.

    A larger ``limit`` is the one difference allowed, and only where ``grows(old_limit)``
    says the folder's tasks are all among the new selection: the run then goes on to the
    tasks it has not played (see :func:`open_identity`).

    Returns:
        The folder's ``run.json`` content.

    Raises:
        RunError: when ``run.json`` is missing, unreadable, or its settings differ.
    """
    old = read_run_meta(run_dir)
    diff = [k for k in IDENTITY_KEYS if old.get(k) != run_meta.get(k)]
    if diff == ["limit"] and grows is not None and grows(old.get("limit")):
        diff = []
    elif diff == ["limit"]:
        raise RunError(
            f"Cannot resume {run_dir} with --limit {run_meta.get('limit')}: it ran "
            f"{_limit_words(old.get('limit'))}, and a run folder can only grow to a selection "
            "that holds every task it has (a larger --limit, or none for the whole split). "
            "Use a new --run-dir for a smaller selection.")
    if diff:
        raise RunError(
            f"Cannot resume {run_dir}: it was started with different settings "
            f"({', '.join(diff)}). Use the same flags (or just 'knowgen eval --resume "
            f"{run_dir}', which reads them from its run.json), or a new --run-dir."
        )
    was, now = folder_benchmark_version(run_dir, old), run_meta.get("benchmark_version")
    if was is not None and now is not None and str(was) != str(now):
        raise RunError(
            f"Cannot resume {run_dir}: it was run on version {was} of its benchmark and this "
            f"knowgen has version {now}, whose tasks differ. Its results stay readable "
            "(knowgen compare, report, judge); start a new --run-dir to run this version."
        )
    return old


def _limit_words(limit: Any) -> str:
    return "every task of its split" if limit is None else f"--limit {limit}"


def folder_benchmark_version(run_dir: Path, meta: dict[str, Any]) -> str | None:
    """The benchmark version a run folder was written against (None: not recorded).

    ``run.json`` records it; folders written before it did have it in ``summary.json``.
    """
    if meta.get("benchmark_version") is not None:
        return str(meta["benchmark_version"])
    try:
        summary = json.loads((Path(run_dir) / "summary.json").read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    version = summary.get("benchmark_version") if isinstance(summary, dict) else None
    return str(version) if version is not None else None


def open_identity(run_dir: Path, meta: dict[str, Any], *, resume: bool = False,
                  adopt: bool = False, grows: Callable[[Any], bool] | None = None
                  ) -> dict[str, Any]:
    """Check (or write) the identity of ``run_dir`` before any sample is written.

    * ``run.json`` present: its settings must equal ``meta``'s (a run id is added
      to a folder written before run ids existed), except for a ``limit`` that
      ``grows`` accepts (:func:`check_resumable`); the folder then takes the new
      limit, keeps its run id and lists the limits it had under ``grown_from``.
    * no ``run.json`` but samples: refused, since their settings are unknown,
      unless ``adopt`` is set; the folder then takes ``meta`` with a new run id
      and its readable samples are tagged with it.
    * an empty folder: ``meta`` is written with a new run id (refused with
      ``resume``: there is nothing to resume).

    Returns:
        The identity now in ``run.json`` (``meta`` plus ``run_id``).

    Raises:
        RunError: as above, or when ``run.json`` is unreadable.
    """
    path = run_dir / "run.json"
    samples = run_dir / "samples.jsonl"
    if path.exists():
        old = check_resumable(run_dir, meta, grows)
        changed = not isinstance(old.get("run_id"), str)
        if changed:
            old["run_id"] = new_run_id()
        if old.get("limit") != meta.get("limit"):
            logger.info("Growing %s from %s to %s.", run_dir, _limit_words(old.get("limit")),
                        _limit_words(meta.get("limit")))
            before = old.get("grown_from")
            old["grown_from"] = [*(before if isinstance(before, list) else []), old.get("limit")]
            old["limit"] = meta.get("limit")
            changed = True
        if changed:
            atomic_write_json(path, old)
        return old
    has_samples = samples.is_file() and samples.stat().st_size > 0
    if has_samples and not adopt:
        raise RunError(
            f"{run_dir} holds samples but no run.json, so the settings they were made with "
            "are unknown. Rerun with --adopt to take the folder over with the current "
            "settings (only if they are the ones the samples were made with), or choose a "
            "new --run-dir.")
    if resume and not has_samples:
        raise RunError(f"Nothing to resume at {run_dir}: it has no run.json.")
    identity = {**meta, "run_id": new_run_id()}
    if has_samples:
        log = SampleLog(samples, check=sample_problem)
        records = [{**r, "run_id": identity["run_id"]} for r in log.read()]
        identity["adopted"] = True
        atomic_write_json(path, identity)
        log.rewrite(records)
        logger.warning("Adopted %s: %d sample(s) taken over under the current settings "
                       "(new run id %s).", run_dir, len(records), identity["run_id"])
        return identity
    atomic_write_json(path, identity)
    return identity
