"""One writer per folder: a lock file holding the writer's pid, stale locks detected.

Two processes appending to one run folder (or one ``knowgen judge --out``
folder) would each evaluate the same samples and write them twice. The writer
takes :class:`FolderLock` first; a second writer is refused with a message that
names the holder. The lock is an exclusive ``flock`` on ``<folder>/.lock``, so
the kernel releases it when the holder dies, even by ``kill -9``: a lock file
left behind by a dead process is stale and is taken over (with a warning naming
the dead pid). Where ``flock`` does not exist, the pid in the file is checked
instead. A writer killed in the middle of an atomic write leaves its temporary
file behind; whoever takes the lock next removes those files (see
:func:`knowgen.fileio.remove_unfinished_writes`), since no one else can be writing.

Example:
    >>> with FolderLock(run_dir, "run folder"):
    ...     append_samples()
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path
from types import TracebackType

from knowgen.errors import RunError
from knowgen.fileio import remove_unfinished_writes

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

LOCK_NAME = ".lock"
"""Name of the lock file inside a locked folder."""


class FolderLock:
    """An exclusive, non-blocking lock on a folder, held by one process at a time.

    Args:
        folder: The folder to lock (it must exist when :meth:`acquire` runs).
        what: How the folder is named in messages, e.g. ``"run folder"``.

    Raises:
        RunError: from :meth:`acquire` when another live process holds the lock,
            or when the lock file cannot be written.
    """

    def __init__(self, folder: str | Path, what: str = "folder"):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.what = what
        self._fd: int | None = None

    def acquire(self) -> FolderLock:
        """Take the lock (returns ``self``); see the class for what is refused."""
        for _ in range(5):  # the file may be removed by a releasing holder between open and lock
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise RunError(f"Cannot create the lock file {self.path} ({exc.strerror}); "
                               f"choose a {self.what} you can write to.") from None
            holder = _read_holder(fd)
            if not self._lock(fd, holder):
                os.close(fd)
                raise RunError(
                    f"Another process (pid {holder.get('pid', '?')} on "
                    f"{holder.get('host', '?')}) is writing to the {self.what} {self.folder}. "
                    "Wait for it to finish, or stop it; two writers would record the same "
                    "samples twice.")
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            if holder.get("pid") and holder.get("pid") != os.getpid():
                logger.warning("Took over a stale lock of %s: process %s on %s is gone.",
                               self.folder, holder.get("pid"), holder.get("host", "?"))
            _write_holder(fd)
            self._fd = fd
            self._clear_unfinished_writes()
            return self
        raise RunError(f"Cannot lock {self.path}: it keeps being replaced; is another process "
                       f"writing to the {self.what}?")

    def _clear_unfinished_writes(self) -> None:
        try:
            removed = remove_unfinished_writes(self.folder, skip_marked=LOCK_NAME)
        except OSError as exc:
            logger.warning("Could not look for unfinished writes in %s (%s).", self.folder,
                           exc.strerror or exc)
            return
        if removed:
            logger.warning("Removed %d unfinished temporary file(s) a stopped writer left in "
                           "%s: %s", len(removed), self.folder,
                           ", ".join(str(p.relative_to(self.folder)) for p in removed[:5])
                           + (", ..." if len(removed) > 5 else ""))

    def _lock(self, fd: int, holder: dict) -> bool:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True
        pid = holder.get("pid")  # pragma: no cover - without flock: trust a live pid
        return not (isinstance(pid, int) and pid != os.getpid()
                    and holder.get("host") == socket.gethostname() and _alive(pid))

    def release(self) -> None:
        """Give the lock up and remove the lock file (no error when not held)."""
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def __enter__(self) -> FolderLock:  # noqa: PYI034 - Self needs Python 3.11
        return self.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def _read_holder(fd: int) -> dict:
    try:
        data = json.loads(os.pread(fd, 4096, 0).decode("utf-8", "replace") or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_holder(fd: int) -> None:
    text = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                       "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    os.ftruncate(fd, 0)
    os.pwrite(fd, text.encode("utf-8") + b"\n", 0)


def _alive(pid: int) -> bool:  # pragma: no cover - used only without flock
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def make_output_folder(folder: str | Path, flag: str = "the output folder") -> Path:
    """Create ``folder`` (and its parents) for writing, or say in one line why it cannot be.

    Raises:
        RunError: when ``folder`` is a file or cannot be created.
    """
    path = Path(folder)
    if path.exists() and not path.is_dir():
        raise RunError(f"{path} is a file, not a folder; give {flag} a folder path.")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunError(f"Cannot create {path} ({exc.strerror}); give {flag} a folder you can "
                       "write to.") from None
    return path
