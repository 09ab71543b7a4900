"""File helpers: atomic writes (readers see the old file or the new one, never half of
one) and the reader of record files given as a JSON array or as JSON Lines."""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from PIL import Image

from knowgen.errors import DataError

#: What :func:`atomic_write` puts before the target's name and after the random part in
#: the names of its temporary files.
TEMP_PREFIX, TEMP_SUFFIX = ".", ".tmp"

#: Names of :func:`atomic_write`'s temporary files: ``.<name>.<8 random characters>.tmp``
#: (the random part as :func:`tempfile.mkstemp` makes it).
TEMP_NAME = re.compile(re.escape(TEMP_PREFIX) + r".+\.[a-z0-9_]{8}" + re.escape(TEMP_SUFFIX))


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write`` on a temporary file beside ``path``, fsync it, then rename it into place.

    The folder is created if needed; the file is left readable by all (0644);
    on any failure the temporary file is removed and ``path`` is untouched. Only a
    process killed between the two steps leaves the temporary file (named as
    :data:`TEMP_NAME` says) behind; :func:`remove_unfinished_writes` clears them.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{TEMP_PREFIX}{path.name}.",
                                suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_unfinished_writes(folder: str | Path, skip_marked: str | None = None) -> list[Path]:
    """Delete the temporary files of :func:`atomic_write` calls that never finished.

    Looks in ``folder`` and its direct subfolders (a run folder's ``images/``) for files
    named as :data:`TEMP_NAME` says. Call it only while no other process writes there
    (holding the folder's :class:`~knowgen.locking.FolderLock`): a live writer's file
    would be removed from under it.

    Args:
        folder: The folder.
        skip_marked: Leave alone a subfolder holding a file of this name (another
            writer's lock file: a judge writing its outputs inside a run folder).

    Returns:
        The files removed.
    """
    folder = Path(folder)
    subfolders = [p for p in folder.iterdir() if p.is_dir() and not p.is_symlink()
                  and not (skip_marked and (p / skip_marked).exists())]
    removed = []
    for where in [folder, *subfolders]:
        for path in where.iterdir():
            if TEMP_NAME.fullmatch(path.name) and path.is_file() and not path.is_symlink():
                try:
                    path.unlink()
                except FileNotFoundError:
                    continue
                removed.append(path)
    return removed


def atomic_write_text(path: str | Path, text: str) -> None:
    """Atomically write ``text`` as UTF-8."""
    data = text.encode("utf-8")
    atomic_write(path, lambda fh: fh.write(data))


def save_png_atomic(image: Image.Image, path: str | Path) -> None:
    """Atomically save ``image`` as a PNG file."""
    atomic_write(path, lambda fh: image.save(fh, format="PNG"))


def read_json_items(path: str | Path, what: str = "Data file",
                    max_bytes: int | None = None) -> list[Any]:
    """The items of a file holding a JSON array, or one JSON value per line (JSON Lines).

    The first non-blank character decides: ``[`` is an array, anything else JSON Lines
    (blank lines skipped). Items are returned as parsed; callers check their shape.

    Args:
        path: The file.
        what: How error messages name the file ("Task file", "SFT data file", ...).
        max_bytes: Refuse larger files (None: no limit).

    Raises:
        DataError: when the file is missing, too large, not UTF-8 text or not JSON; a
            JSON Lines error names its line (``FILE:LINE``).
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{what} {p} does not exist (give a JSON array file or a JSON Lines "
                        "file).")
    if max_bytes is not None and p.stat().st_size > max_bytes:
        raise DataError(f"{what} {p} is larger than {max_bytes // 2**20} MB.")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{what} {p} is not UTF-8 text: {exc}") from exc
    except OSError as exc:
        raise DataError(f"Cannot read {what.lower()} {p}: {exc.strerror or exc}") from exc
    if text.lstrip().startswith("["):
        try:
            return list(json.loads(text))
        except json.JSONDecodeError as exc:
            raise DataError(f"{what} {p} is not valid JSON (line {exc.lineno}: {exc.msg}).") \
                from exc
        except RecursionError as exc:
            raise DataError(f"{what} {p} nests too deeply to read.") from exc
    items = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                items.append(json.loads(line))
            except (json.JSONDecodeError, RecursionError) as exc:
                why = exc.msg if isinstance(exc, json.JSONDecodeError) else "nests too deeply"
                raise DataError(f"{p}:{n} is not valid JSON ({why}); a {what.lower()} is a "
                                "JSON array or one JSON object per line.") from exc
    return items
