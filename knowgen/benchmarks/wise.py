"""The WISE benchmark (legacy and verified), read from a local copy of its prompt files.

Each variant ships three JSON arrays of
``{"prompt_id", "Prompt", "Explanation", "Category", "Subcategory"}``:

* legacy: ``cultural_common_sense.json``, ``spatio-temporal_reasoning.json``,
  ``natural_science.json``;
* verified: the same names with a ``_verified`` suffix.

The loader looks for them in ``path``, ``path/<variant>``, ``path/data`` and
``path/data/<variant>``, so a checkout of the upstream repository works as well as
a folder holding only the files. WISE has no ground-truth images: tasks have
``gt_image == ""`` and are judged by a WISE judge,
:class:`knowgen.judges.openai_judge.OpenAIWiseJudge` (the published protocol) or
:class:`knowgen.judges.offline_wise.OfflineWiseJudge` (an offline smoke-test
proxy). ``knowgen eval --benchmark wise:path=...,variant=... --judge ...`` runs
a policy on the prompts and scores the images (see :mod:`knowgen.eval.wise_run`).

Example:
    >>> bench = WiseBenchmark("/data/wise", variant="verified")
    >>> task = bench.tasks("test")[0]
    >>> task.category, task.extra["explanation"][:20]
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from PIL import Image

from knowgen.benchmarks.base import SingleSplitBenchmark
from knowgen.errors import ConfigError, DataError
from knowgen.eval.wise_scoring import WISE_IDS, category_of, check_variant, format_id_ranges
from knowgen.types import Task, resolve_path

logger = logging.getLogger(__name__)

_STEMS = ("cultural_common_sense", "spatio-temporal_reasoning", "natural_science")
#: The three prompt files of each variant.
WISE_FILES: dict[str, tuple[str, ...]] = {
    "legacy": tuple(f"{s}.json" for s in _STEMS),
    "verified": tuple(f"{s}_verified.json" for s in _STEMS),
}
#: Upstream ``Category`` values and the category names they map to per variant.
_UPSTREAM_CATEGORY = {
    "cultural knowledge": {"legacy": "cultural", "verified": "culture"},
    "time": {"legacy": "time", "verified": "time"},
    "space": {"legacy": "space", "verified": "space"},
    "biology": {"legacy": "biology", "verified": "biology"},
    "physical knowledge": {"legacy": "physics", "verified": "physics"},
    "chemistry": {"legacy": "chemistry", "verified": "chemistry"},
}
_REQUIRED = ("prompt_id", "Prompt", "Explanation", "Category")


def find_wise_folder(path: str | Path, variant: str) -> Path:
    """The folder under ``path`` that holds the three files of ``variant``.

    Raises:
        DataError: when ``path`` does not exist or no candidate holds all three files.
    """
    root = Path(path).expanduser()
    if not root.exists():
        raise DataError(f"WISE folder {str(root)!r} does not exist; pass the folder that holds "
                        f"{', '.join(WISE_FILES[variant])}.")
    candidates = [root, root / variant, root / "data", root / "data" / variant]
    for folder in candidates:
        if all((folder / name).is_file() for name in WISE_FILES[variant]):
            return folder
    missing = [n for n in WISE_FILES[variant] if not (root / n).is_file()]
    raise DataError(
        f"No complete WISE {variant} prompt set under {str(root)!r}: missing {', '.join(missing)} "
        f"(also looked in {variant}/, data/ and data/{variant}/). "
        "Point path at the folder holding the three JSON files of this variant.")


def _read_array(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"Cannot read WISE file {str(path)!r}: {exc}") from exc
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise DataError(f"WISE file {str(path)!r} must hold a JSON array of objects.")
    return data


def _to_task(rec: dict[str, Any], variant: str, source: Path) -> Task:
    absent = [k for k in _REQUIRED if k not in rec]
    if absent:
        raise DataError(f"A record in {source.name} lacks {', '.join(absent)}: {rec!r}")
    try:
        pid = int(rec["prompt_id"])
    except (TypeError, ValueError) as exc:
        raise DataError(f"prompt_id {rec['prompt_id']!r} in {source.name} is not a number.") from exc
    category = category_of(variant, pid)
    expected = _UPSTREAM_CATEGORY.get(str(rec["Category"]).strip().lower(), {}).get(variant)
    if expected != category:
        logger.warning("WISE %s prompt %d is labelled %r but its id lies in the %s range; "
                       "scoring follows the id range.", variant, pid, rec["Category"], category)
    return Task(
        id=str(pid), prompt=str(rec["Prompt"]), category=category, difficulty="", gt_image="",
        facts=None,
        extra={"explanation": str(rec["Explanation"]), "wise_category": str(rec["Category"]),
               "subcategory": str(rec.get("Subcategory", "")), "wise_variant": variant},
    )


class WiseBenchmark(SingleSplitBenchmark):
    """WISE prompts of one variant as knowgen tasks (one split, ``"test"``).

    Args:
        path: Folder with the variant's three JSON files (see the module docstring).
        variant: ``"legacy"`` or ``"verified"``.
        strict: Raise when prompt ids 1..1000 are not all present (otherwise warn).

    Attributes:
        missing_ids: Ids of 1..1000 absent from the files (empty for a full copy).

    Raises:
        DataError: for a missing folder or file, malformed records, duplicate ids,
            or (with ``strict``) gaps in the id coverage.
        UnknownNameError: for an unknown variant.
    """

    name = "wise"

    def __init__(self, path: str | None = None, variant: str = "verified", strict: bool = True):
        if not path:
            raise ConfigError("WISE is read from a local copy of its JSON files: pass "
                              "--benchmark wise:path=/data/WISE (the folder of the upstream "
                              "data files), optionally with --variant legacy|verified.")
        self.variant = check_variant(variant)
        self.folder = find_wise_folder(path, variant)
        self.version = f"wise-{variant}"
        self._tasks = self._load()
        present = {int(t.id) for t in self._tasks}
        self.missing_ids = sorted(set(WISE_IDS) - present)
        if self.missing_ids:
            msg = (f"WISE {variant} under {str(self.folder)!r} lacks {len(self.missing_ids)} of "
                   f"the 1000 prompt ids: {format_id_ranges(self.missing_ids)}. "
                   "Its overall score cannot be computed.")
            if strict:
                raise DataError(msg + " Pass strict=False to load it anyway.")
            logger.warning(msg)

    def _load(self) -> list[Task]:
        tasks: list[Task] = []
        seen: dict[int, str] = {}
        dups: list[str] = []
        for name in WISE_FILES[self.variant]:
            path = self.folder / name
            for rec in _read_array(path):
                task = _to_task(rec, self.variant, path)
                pid = int(task.id)
                if pid in seen:
                    dups.append(f"{pid} ({seen[pid]} and {name})")
                seen[pid] = name
                tasks.append(task)
        if dups:
            raise DataError(f"Duplicate WISE prompt ids: {', '.join(dups[:20])}"
                            f"{' ...' if len(dups) > 20 else ''}. Each id must appear once.")
        tasks.sort(key=lambda t: int(t.id))
        return tasks


def _iter_images(results: Mapping[Any, Any] | Iterable[Mapping[str, Any]],
                 base_dir: Path | None) -> Iterable[tuple[Any, Any]]:
    """Yield ``(id, image or path)`` from a mapping or from result records."""
    if isinstance(results, Mapping):
        yield from results.items()
        return
    skipped = 0
    for rec in results:
        out = rec.get("output_path")
        if not rec.get("success", True) or not out:
            skipped += 1
            continue
        yield rec["id"], resolve_path(out, base_dir) if base_dir else Path(out)
    if skipped:
        logger.warning("Skipped %d results without a generated image.", skipped)


def write_wise_layout(results: Mapping[Any, Any] | Iterable[Mapping[str, Any]],
                      out_dir: str | Path, *, base_dir: str | Path | None = None) -> list[Path]:
    """Write generated images as ``{prompt_id}.png`` so upstream WISE scripts can score them.

    Args:
        results: Either a mapping ``prompt_id -> PIL image or image path``, or result
            records with ``id``, ``output_path`` and ``success`` (as in ``results.json``).
        out_dir: Folder to write into (created if needed).
        base_dir: Folder that relative ``output_path`` values resolve against.

    Returns:
        The written files, in input order.

    Raises:
        DataError: for an id that is not a WISE prompt id, a duplicate, or an unreadable image.
    """
    target = Path(out_dir)
    target.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    seen: set[int] = set()
    for raw_id, image in _iter_images(results, Path(base_dir) if base_dir else None):
        try:
            pid = int(str(raw_id))
        except ValueError as exc:
            raise DataError(f"Result id {raw_id!r} is not a WISE prompt id (1..1000).") from exc
        if not 1 <= pid <= 1000 or pid in seen:
            raise DataError(f"Result id {raw_id!r} is out of 1..1000 or appears twice.")
        seen.add(pid)
        dest = target / f"{pid}.png"
        _write_png(image, dest)
        written.append(dest)
    logger.info("Wrote %d WISE images to %s", len(written), target)
    return written


def _write_png(image: Any, dest: Path) -> None:
    """Write ``image`` (PIL image or file path) to ``dest`` as PNG, atomically."""
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=dest.parent)
    os.close(fd)
    try:
        if isinstance(image, Image.Image):
            image.save(tmp, format="PNG")
        else:
            src = Path(image)
            try:
                with Image.open(src) as im:
                    if im.format == "PNG":
                        shutil.copyfile(src, tmp)
                    else:
                        im.save(tmp, format="PNG")
            except (OSError, ValueError) as exc:
                raise DataError(f"Cannot read generated image {str(src)!r}: {exc}") from exc
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
