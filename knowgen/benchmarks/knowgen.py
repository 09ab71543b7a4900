"""The released KnowGen-Bench, read from a local folder.

The layout is a records file plus a folder of ground-truth images::

    knowgen_bench/
        knowgen_bench.json        # or .jsonl
        gt_images/0001.png ...

Each record is ``{"id", "prompt", "meta": {"category", "difficulty"}, "gt_image"}``;
a relative ``gt_image`` resolves against the folder of the records file. ``path``
may name the records file itself, or a folder holding exactly one ``.json`` /
``.jsonl`` file (pass ``records=`` to choose when there are several).

Example:
    >>> bench = KnowGenBenchmark("/data/knowgen_bench")
    >>> len(bench.tasks("test"))
    630
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from knowgen.benchmarks.base import SingleSplitBenchmark
from knowgen.errors import ConfigError, DataError
from knowgen.fileio import read_json_items
from knowgen.types import KNOWGEN_GROUPS, Task, resolve_path

logger = logging.getLogger(__name__)

_KNOWN_CATEGORIES = {c for cats in KNOWGEN_GROUPS.values() for c in cats}
_SHOWN = 20


def find_records_file(path: str | Path, records: str | None = None) -> Path:
    """The records file named by ``path`` (a file, or a folder holding one).

    Raises:
        DataError: when nothing exists there, or the folder holds zero or several candidates.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"KnowGen-Bench path {str(p)!r} does not exist; pass the folder "
                        "(or the .json/.jsonl records file) of the released benchmark.")
    if p.is_file():
        return p
    if records:
        f = p / records
        if not f.is_file():
            raise DataError(f"Records file {records!r} not found in {str(p)!r}.")
        return f
    found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix in {".json", ".jsonl"})
    if len(found) != 1:
        names = ", ".join(f.name for f in found) or "none"
        raise DataError(f"Expected one .json or .jsonl records file in {str(p)!r}, found {names}. "
                        "Pass records=NAME to choose one.")
    return found[0]


def read_records(path: Path) -> list[dict[str, Any]]:
    """Records of a JSON array or JSON Lines file.

    Raises:
        DataError: for a missing or unreadable file, invalid JSON (with the line number for
            JSONL) or items that are not JSON objects.
    """
    data = read_json_items(path, what="KnowGen records file")
    bad = [i for i, r in enumerate(data) if not isinstance(r, dict)]
    if bad:
        raise DataError(f"{str(path)!r}: items {bad[:_SHOWN]} are not JSON objects.")
    return data


def _to_task(rec: dict[str, Any], index: int, base: Path) -> Task:
    absent = [k for k in ("id", "prompt", "gt_image") if not rec.get(k) and rec.get(k) != 0]
    meta = rec.get("meta")
    if not isinstance(meta, dict) or not meta.get("category"):
        absent.append("meta.category")
    if absent:
        raise DataError(f"KnowGen record #{index} (id {rec.get('id')!r}) lacks "
                        f"{', '.join(absent)}.")
    task = Task.from_record({k: v for k, v in rec.items() if k != "facts"})
    return replace(task, gt_image=str(resolve_path(task.gt_image, base).resolve()))


class KnowGenBenchmark(SingleSplitBenchmark):
    """KnowGen-Bench records as knowgen tasks (one split, ``"test"``).

    Args:
        path: The records file, or the folder that holds it.
        records: File name of the records inside ``path`` when it holds several.

    Attributes:
        records_file: The records file that was read.
        version: ``"sha256:<12 hex digits>"`` of the records file, for run summaries.

    Raises:
        DataError: for a missing path, malformed records, duplicate ids, or
            ground-truth files that do not exist (all of them listed).
    """

    name = "knowgen"

    def __init__(self, path: str | None = None, records: str | None = None):
        if not path:
            raise ConfigError("KnowGen is read from a local copy of the released benchmark: "
                              "pass --benchmark knowgen:path=/data/KnowGen-Bench (the folder "
                              "holding the records file and the ground-truth images).")
        self.records_file = find_records_file(path, records)
        digest = hashlib.sha256(self.records_file.read_bytes()).hexdigest()
        self.version = f"sha256:{digest[:12]}"
        self._tasks = self._load()

    def _load(self) -> list[Task]:
        base = self.records_file.parent
        tasks = [_to_task(r, i, base) for i, r in enumerate(read_records(self.records_file))]
        if not tasks:
            raise DataError(f"{str(self.records_file)!r} holds no records.")
        counts: dict[str, int] = {}
        for t in tasks:
            counts[t.id] = counts.get(t.id, 0) + 1
        dups = sorted(i for i, n in counts.items() if n > 1)
        if dups:
            raise DataError(f"Duplicate KnowGen ids in {str(self.records_file)!r}: "
                            f"{', '.join(dups[:_SHOWN])}{' ...' if len(dups) > _SHOWN else ''}.")
        missing = [t.gt_image for t in tasks if not Path(t.gt_image).is_file()]
        if missing:
            shown = "\n  ".join(missing[:_SHOWN])
            more = f"\n  ... and {len(missing) - _SHOWN} more" if len(missing) > _SHOWN else ""
            raise DataError(f"{len(missing)} ground-truth image(s) of {str(self.records_file)!r} "
                            f"are missing:\n  {shown}{more}\nRelative gt_image paths resolve "
                            "against the records file's folder; download the GT images there.")
        unknown = sorted({t.category.lower() for t in tasks} - _KNOWN_CATEGORIES)
        if unknown:
            logger.warning("KnowGen categories in no group (their samples are not scored): %s",
                           ", ".join(unknown))
        return tasks
