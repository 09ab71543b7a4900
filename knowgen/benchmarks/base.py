"""Interface of benchmarks: named collections of tasks."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from knowgen.types import Task


@runtime_checkable
class Benchmark(Protocol):
    """A benchmark loader.

    Attributes:
        name: Registered name, e.g. ``"world"``.
        version: Version string written into run summaries.
    """

    name: str
    version: str

    def splits(self) -> list[str]:
        """Names of the available splits."""
        ...

    def tasks(self, split: str) -> list[Task]:
        """All tasks of ``split`` with ``gt_image`` pointing at readable files.

        Raises:
            knowgen.errors.UnknownNameError: for an unknown split.
        """
        ...


class SingleSplitBenchmark:
    """Mixin for benchmarks released as one ``"test"`` split held in ``self._tasks``."""

    _tasks: list[Task]

    def splits(self) -> list[str]:
        """The one split, ``"test"``."""
        return ["test"]

    def tasks(self, split: str = "test") -> list[Task]:
        """All tasks, in the benchmark's own order.

        Raises:
            knowgen.errors.UnknownNameError: for a split other than ``"test"``.
        """
        from knowgen.errors import UnknownNameError

        if split != "test":
            raise UnknownNameError("split", split, self.splits())
        return list(self._tasks)
