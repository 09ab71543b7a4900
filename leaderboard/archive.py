"""Safe access to an untrusted submission: a folder, a ``.zip`` or a ``.tar.gz``.

Archives are unpacked member by member into a fresh temporary folder, never
with ``extractall``. A member is refused when its name is absolute, holds a
``..`` part or a backslash, repeats an earlier name, or is anything but a
plain file or folder (links, devices, fifos). Unpacking stops as soon as the
member count, the unpacked bytes, one file's bytes or the unpacked-to-packed
ratio passes its cap (zip bombs). Folders are walked without following links,
and every link that points outside the folder is reported. Every file the
checks later read goes through :func:`resolve_inside`, so no path can lead
out of the submission.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import IO

from knowgen.leaderboard.report import Report, SubmissionLimits

logger = logging.getLogger(__name__)

MARKER = "submission.yaml"
_CHUNK = 1 << 20
_DRIVE = re.compile(r"^[A-Za-z]:")
ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz", ".tar")


class _Abort(Exception):
    """Unpacking must stop: a cap was passed."""


def unsafe_reason(name: str) -> str | None:
    """Why ``name`` may not be used as a path inside a submission (None when it is safe)."""
    if not name or "\x00" in name:
        return "is empty or holds a NUL byte"
    if "\\" in name:
        return "holds a backslash; use forward slashes"
    if name.startswith("/") or _DRIVE.match(name):
        return "is an absolute path; paths must be relative to the submission folder"
    if ".." in PurePosixPath(name).parts:
        return "holds a '..' part that would lead outside the submission"
    return None


def resolve_inside(root: Path, rel: str, where: str, report: Report) -> Path | None:
    """The regular file ``root/rel``, or None after reporting why it cannot be used.

    The path is refused when it is unsafe (:func:`unsafe_reason`), missing, not a
    regular file, or resolves (through a link) to a place outside ``root``.
    """
    reason = unsafe_reason(rel)
    if reason:
        report.error(where, f"path {rel!r} {reason}")
        return None
    try:
        real = (root / rel).resolve(strict=True)
    except (OSError, RuntimeError):
        report.error(where, f"file {rel!r} does not exist in the submission")
        return None
    if not real.is_relative_to(root.resolve()):
        report.error(where, f"path {rel!r} leads outside the submission (a link?); "
                     "ship the file itself")
        return None
    if not stat.S_ISREG(real.stat().st_mode):
        report.error(where, f"{rel!r} is not a regular file")
        return None
    return real


def read_capped(path: Path, cap: int, where: str, report: Report) -> bytes | None:
    """The bytes of ``path`` when it holds at most ``cap`` bytes."""
    size = path.stat().st_size
    if size > cap:
        report.error(where, f"is {size:,} bytes; the cap is {cap:,}")
        return None
    return path.read_bytes()


def is_archive(path: Path) -> bool:
    """True when ``path`` is named like a supported archive."""
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


@contextmanager
def open_tree(path: str | Path, limits: SubmissionLimits, report: Report,
              work_dir: str | Path | None = None) -> Iterator[Path | None]:
    """Yield the submission's root folder (unpacked when ``path`` is an archive).

    Args:
        path: A folder, or a ``.zip`` / ``.tar.gz`` / ``.tgz`` / ``.tar`` file.
        limits: Caps on members, bytes and ratio.
        report: Receives every problem.
        work_dir: Where the temporary unpack folder is made (default: the system's).

    Yields:
        The folder holding ``submission.yaml`` (or the top folder when none does),
        or None when nothing could be read. A temporary folder is removed afterwards.
    """
    src = Path(path)
    tmp: str | None = None
    try:
        if src.is_dir():
            scan_folder(src, limits, report)
            yield find_root(src.resolve())
        elif src.is_file() and is_archive(src):
            if work_dir is not None:
                Path(work_dir).mkdir(parents=True, exist_ok=True)
            tmp = tempfile.mkdtemp(prefix="submission-", dir=work_dir)
            dest = Path(tmp).resolve()
            complete = unpack(src, dest, limits, report)
            yield find_root(dest) if complete else None
        elif src.exists():
            report.error(src.name, "is neither a folder nor a .zip / .tar.gz archive")
            yield None
        else:
            report.error(str(src), "does not exist")
            yield None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def find_root(top: Path) -> Path:
    """``top``, or its only sub-folder when that one holds ``submission.yaml`` instead."""
    if (top / MARKER).exists():
        return top
    entries = [p for p in top.iterdir() if not p.name.startswith(".") and p.name != "__MACOSX"]
    if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink() \
            and (entries[0] / MARKER).exists():
        return entries[0]
    return top


def scan_folder(root: Path, limits: SubmissionLimits, report: Report) -> None:
    """Report links that lead outside ``root`` and folders over the member or byte caps."""
    real_root = root.resolve()
    count = total = 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            count += 1
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            if p.is_symlink():
                target = p.resolve()
                if not target.is_relative_to(real_root):
                    report.error(rel, f"is a link pointing outside the submission ({target})")
            elif name in filenames:
                total += p.lstat().st_size
        if count > limits.max_members:
            report.error(".", f"holds more than {limits.max_members:,} files; the cap was passed")
            return
    if total > limits.max_total_bytes:
        report.error(".", f"holds {total:,} bytes; the cap is {limits.max_total_bytes:,}")


def unpack(archive: Path, dest: Path, limits: SubmissionLimits, report: Report) -> bool:
    """Unpack ``archive`` into ``dest`` member by member; False when unpacking had to stop."""
    try:
        if archive.name.lower().endswith(".zip"):
            _unpack_zip(archive, dest, limits, report)
        else:
            _unpack_tar(archive, dest, limits, report)
    except _Abort as exc:
        report.error(archive.name, f"{exc}; unpacking stopped and the archive is refused")
        return False
    except (zipfile.BadZipFile, tarfile.TarError, zlib.error, EOFError, OSError) as exc:
        report.error(archive.name, f"cannot be read as an archive ({exc})")
        return False
    return True


class _Budget:
    """Counts unpacked members and bytes against the caps."""

    def __init__(self, archive: Path, limits: SubmissionLimits):
        self.limits = limits
        self.packed = max(archive.stat().st_size, 1)
        self.members = 0
        self.bytes = 0
        self.names: set[str] = set()

    def member(self) -> None:
        self.members += 1
        if self.members > self.limits.max_members:
            raise _Abort(f"it holds more than {self.limits.max_members:,} members")

    def add(self, n: int) -> None:
        self.bytes += n
        lim = self.limits
        if self.bytes > lim.max_total_bytes:
            raise _Abort(f"it unpacks to more than {lim.max_total_bytes:,} bytes (zip bomb?)")
        ratio = self.bytes / self.packed
        if self.bytes > lim.ratio_floor_bytes and ratio > lim.max_ratio:
            raise _Abort(f"it unpacks to over {lim.max_ratio:g} times its packed size "
                         f"({self.bytes:,} bytes from {self.packed:,}; zip bomb?)")


def _target(dest: Path, name: str, budget: _Budget, report: Report) -> Path | None:
    where = f"archive member {name!r}"
    reason = unsafe_reason(name)
    if reason:
        report.error(where, f"{reason}; it was not unpacked")
        return None
    clean = PurePosixPath(name).as_posix().rstrip("/")
    if clean in budget.names:
        report.error(where, "appears twice in the archive; only the first copy was unpacked")
        return None
    budget.names.add(clean)
    target = (dest / clean).resolve()
    if not target.is_relative_to(dest) or target == dest:
        report.error(where, "would unpack outside the target folder; it was not unpacked")
        return None
    return target


def _write(src: IO[bytes], target: Path, declared: int, budget: _Budget, report: Report,
           where: str) -> None:
    if declared > budget.limits.max_file_bytes:
        raise _Abort(f"member {where!r} claims {declared:,} bytes; one file may hold "
                     f"{budget.limits.max_file_bytes:,}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        out = open(target, "xb")  # noqa: SIM115 - closed below; never follows a link
    except OSError as exc:
        report.error(f"archive member {where!r}", f"cannot be unpacked ({exc.strerror})")
        return
    written = 0
    with out:
        while chunk := src.read(_CHUNK):
            written += len(chunk)
            if written > budget.limits.max_file_bytes:
                raise _Abort(f"member {where!r} unpacks to more than "
                             f"{budget.limits.max_file_bytes:,} bytes")
            budget.add(len(chunk))
            out.write(chunk)


def _unpack_zip(archive: Path, dest: Path, limits: SubmissionLimits, report: Report) -> None:
    budget = _Budget(archive, limits)
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        if len(infos) > limits.max_members:
            raise _Abort(f"it holds {len(infos):,} members; the cap is {limits.max_members:,}")
        declared = sum(i.file_size for i in infos)
        if declared > limits.max_total_bytes:
            raise _Abort(f"its members claim {declared:,} bytes; the cap is "
                         f"{limits.max_total_bytes:,} (zip bomb?)")
        if declared > limits.ratio_floor_bytes and declared / budget.packed > limits.max_ratio:
            raise _Abort(f"its members claim over {limits.max_ratio:g} times its packed size "
                         f"({declared:,} bytes from {budget.packed:,}; zip bomb?)")
        for info in infos:
            budget.member()
            if stat.S_ISLNK(info.external_attr >> 16):
                report.error(f"archive member {info.filename!r}",
                             "is a link; submissions may hold only files and folders")
                continue
            target = _target(dest, info.filename, budget, report)
            if target is None:
                continue
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            try:
                with zf.open(info) as src:
                    _write(src, target, info.file_size, budget, report, info.filename)
            except (RuntimeError, NotImplementedError) as exc:  # encrypted, unknown method
                report.error(f"archive member {info.filename!r}", f"cannot be read ({exc})")


def _unpack_tar(archive: Path, dest: Path, limits: SubmissionLimits, report: Report) -> None:
    budget = _Budget(archive, limits)
    with tarfile.open(archive, mode="r|*") as tf:
        for member in tf:
            budget.member()
            if not (member.isreg() or member.isdir()):
                kind = "link" if (member.issym() or member.islnk()) else "special file"
                report.error(f"archive member {member.name!r}",
                             f"is a {kind}; submissions may hold only files and folders")
                continue
            if member.size > limits.max_file_bytes:
                raise _Abort(f"member {member.name!r} claims {member.size:,} bytes; one file "
                             f"may hold {limits.max_file_bytes:,}")
            target = _target(dest, member.name, budget, report)
            if target is None:
                continue
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            src = tf.extractfile(member)
            if src is not None:
                with src:
                    _write(src, target, member.size, budget, report, member.name)
