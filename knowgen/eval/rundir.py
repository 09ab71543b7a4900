"""The run folder on disk: atomic writes, an append-only sample log, resuming.

A run folder holds::

    run.json        the configuration the run started with (checked on resume)
    samples.jsonl   one finished sample a line: trajectory, answer, judgements
    results.json    the official KnowGen results array (written at the end)
    summary.json    aggregated scores plus config, versions and git hash
    images/         generated images, ``<id>.png``
    gt/             ground-truth images copied in, ``<id>.png``
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from pathlib import Path
from typing import Any

from knowgen.errors import RunError
from knowgen.fileio import atomic_write_text

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1


def atomic_write_json(path: Path, data: Any) -> None:
    """Atomically write ``data`` as indented JSON."""
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


class SampleLog:
    """Append-only JSON-lines log of finished samples.

    A line is written with one ``write`` call, flushed and fsynced, so a killed
    run loses at most the sample it was writing; a torn last line is dropped
    (and cut from the file) when the log is read back.
    """

    def __init__(self, path: Path):
        self.path = path

    def read(self) -> list[dict[str, Any]]:
        """All complete samples; a torn trailing line is removed from the file."""
        if not self.path.exists():
            return []
        raw = self.path.read_bytes()
        samples, good_bytes = [], 0
        for line in raw.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                break
            if not isinstance(rec, dict) or "id" not in rec:
                break
            samples.append(rec)
            good_bytes += len(line)
        if good_bytes != len(raw):
            logger.warning("Dropping a torn record at the end of %s", self.path)
            with self.path.open("r+b") as fh:
                fh.truncate(good_bytes)
        return samples

    def append(self, record: dict[str, Any]) -> None:
        """Append one record durably."""
        line = json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n"
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())


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


def check_resumable(run_dir: Path, run_meta: dict[str, Any]) -> None:
    """Refuse to resume a run folder that was started with other settings.

    Raises:
        RunError: when ``run.json`` is missing, unreadable, or its config differs.
    """
    meta_path = run_dir / "run.json"
    if not meta_path.is_file():
        raise RunError(
            f"{run_dir} has no run.json, so it is not a knowgen run folder. "
            "Pass a folder made by 'knowgen eval', or choose a new --run-dir."
        )
    try:
        old = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RunError(f"{meta_path} is not valid JSON ({exc}); start a new run.") from exc
    keys = ("benchmark", "split", "policy", "seed", "limit", "config")
    diff = [k for k in keys if old.get(k) != run_meta.get(k)]
    if diff:
        raise RunError(
            f"Cannot resume {run_dir}: it was started with different settings "
            f"({', '.join(diff)}). Use the same flags, or a new --run-dir."
        )
