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
