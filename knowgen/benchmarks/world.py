"""The ``world`` benchmark: generated tasks over the shipped offline world.

Tasks come from :func:`knowgen.world.tasks.generate_tasks` (split by entity,
deterministic per seed). Ground-truth images are rendered from the task facts
on first use and cached as PNG files under::

    <cache_dir>/world-<fingerprint>-seed<seed>/gt/<task id>.png

where ``cache_dir`` defaults to ``~/.cache/knowgen`` and the fingerprint
covers the world's content, the template set and the layout, so a change to
any of them renders afresh instead of reusing stale pictures.

With ``tasks=FILE`` the benchmark serves the requests of a user's task file
(:mod:`knowgen.world.taskfile`) instead of the generated splits; every record
is validated first, and ground truths are rendered from its facts.

Example:
    >>> bench = WorldBenchmark(seed=0)
    >>> bench.splits()
    ['train', 'test', 'test-ood']
    >>> task = bench.tasks("test-ood")[0]   # gt_image: an absolute path to a PNG
    >>> mine = WorldBenchmark(tasks="my_requests.jsonl")
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import threading
from dataclasses import replace
from pathlib import Path

from tqdm.auto import tqdm

from knowgen.errors import ConfigError, UnknownNameError
from knowgen.fileio import save_png_atomic
from knowgen.generators.layout import LAYOUT_VERSION
from knowgen.progress import progress_enabled
from knowgen.types import Task
from knowgen.world.data import World, load_world
from knowgen.world.render import render_gt
from knowgen.world.taskfile import load_task_file
from knowgen.world.tasks import SPLITS, TEMPLATE_VERSION, generate_tasks

logger = logging.getLogger(__name__)

#: Width and height of ground-truth images (the ``compositor`` default).
GT_SIZE = 512
#: Show a progress bar when at least this many images must be rendered.
_PROGRESS_FROM = 20


def default_cache_dir() -> Path:
    """``~/.cache/knowgen``."""
    return Path.home() / ".cache" / "knowgen"


class WorldBenchmark:
    """Tasks over the offline world, with cached ground-truth renders.

    Args:
        seed: Seed of the entity split and of the task sampling.
        data_dir: World folder (default: the one shipped in the package).
        cache_dir: Where ground-truth PNGs are cached (default ``~/.cache/knowgen``).
        tasks: A task file over the world to serve instead of the generated splits.

    Attributes:
        version: ``"<world version>.t<template version>"`` (``.f<hash>`` added for a task file).
        gt_dir: Folder of this benchmark's ground-truth images.

    Raises:
        ConfigError: for a seed that is not an integer.
        knowgen.errors.DataError: when the world cannot be loaded.
    """

    name = "world"

    def __init__(self, seed: int = 0, data_dir: str | None = None, cache_dir: str | None = None,
                 tasks: str | None = None):
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ConfigError(f"world benchmark seed must be an integer of 0 or more, got "
                              f"{seed!r}.")
        self.seed = seed
        self.world: World = load_world(data_dir)
        self.version = f"{self.world.version}.t{TEMPLATE_VERSION}"
        self._plain: dict[str, list[Task]] = {}
        self._file_hash = ""
        if tasks:
            self._plain = load_task_file(tasks, self.world)
            self._file_hash = hashlib.sha256(
                Path(tasks).expanduser().read_bytes()).hexdigest()[:10]
            self.version += f".f{self._file_hash}"
        root = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        self.gt_dir = (root / f"world-{self.fingerprint()}-seed{seed}" / "gt").resolve()
        self._lock = threading.Lock()

    def fingerprint(self) -> str:
        """Short hash of the world content, template version, layout version and task file."""
        key = (f"{self.world.fingerprint()}|t{TEMPLATE_VERSION}|l{LAYOUT_VERSION}|{GT_SIZE}"
               f"|{self._file_hash}")
        return hashlib.sha256(key.encode()).hexdigest()[:12]

    def _split_names(self) -> list[str]:
        return sorted(self._plain) if self._file_hash else list(SPLITS)

    def splits(self) -> list[str]:
        """``["train", "test", "test-ood"]``, or the splits a task file names."""
        return self._split_names()

    def tasks(self, split: str) -> list[Task]:
        """All tasks of ``split``, ``gt_image`` an absolute path to a rendered PNG.

        Missing ground-truth images are rendered (and cached) first.

        Raises:
            UnknownNameError: for an unknown split.
        """
        tasks = self._tasks_without_gt(split)
        self._render_missing(tasks)
        return [self._with_gt(t) for t in tasks]

    def task(self, task_id: str) -> Task:
        """The task ``task_id`` of any split, with its ground truth rendered.

        Raises:
            UnknownNameError: when no split holds ``task_id``.
        """
        for split in self._split_names():
            for t in self._tasks_without_gt(split):
                if t.id == task_id:
                    self._render_missing([t])
                    return self._with_gt(t)
        ids = [t.id for s in self._split_names() for t in self._tasks_without_gt(s)]
        close = difflib.get_close_matches(task_id, ids, n=10, cutoff=0.0)
        raise UnknownNameError(f"world task (seed {self.seed}; showing the closest ids)",
                               task_id, close)

    def _tasks_without_gt(self, split: str) -> list[Task]:
        if split not in self._split_names():
            what = "split of this task file" if self._file_hash else "split of benchmark 'world'"
            raise UnknownNameError(what, split, self._split_names())
        with self._lock:
            if split not in self._plain:
                self._plain[split] = generate_tasks(self.world, split, self.seed)
            return self._plain[split]

    def _gt_path(self, task: Task) -> Path:
        return self.gt_dir / f"{task.id}.png"

    def _with_gt(self, task: Task) -> Task:
        return replace(task, gt_image=str(self._gt_path(task)))

    def _render_missing(self, tasks: list[Task]) -> None:
        missing = [t for t in tasks if not self._gt_path(t).is_file()]
        if not missing:
            return
        try:
            self.gt_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"Cannot write ground-truth images into {self.gt_dir} "
                              f"({exc.strerror}); pass a writable cache_dir, e.g. "
                              "--benchmark world:cache_dir=/tmp/knowgen.") from None
        logger.info("rendering %d ground-truth images into %s", len(missing), self.gt_dir)
        bar = tqdm(missing, desc="world ground truth", unit="img",
                   disable=len(missing) < _PROGRESS_FROM or not progress_enabled(),
                   leave=False)
        for task in bar:
            save_png_atomic(render_gt(task, self.world, GT_SIZE), self._gt_path(task))
