"""The benchmark a submission names, as the maintainer has it.

A submission names a benchmark, its version, a split, optionally a subset
(``limit``) and the arguments that change the task set (``seed`` for the
offline world, ``variant`` for WISE). Where the data lives is the
maintainer's business: a spec string per benchmark name (``{"knowgen":
"knowgen:path=/data/knowgen_bench"}``) or a ready benchmark object. The
submission's own arguments are restricted to :data:`IDENTITY_ARGS`, so a
submission can never point the maintainer's loader at a path of its choosing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from knowgen.errors import KnowgenError
from knowgen.eval.runner import select_tasks
from knowgen.leaderboard.report import Report
from knowgen.leaderboard.schema import BenchmarkInfo
from knowgen.registry import BENCHMARKS
from knowgen.types import Task

logger = logging.getLogger(__name__)

#: Benchmark spec string or benchmark object, per benchmark name.
BenchmarkSpecs = Mapping[str, Any]
#: Arguments a submission may give per benchmark: they select the task set, nothing else.
IDENTITY_ARGS: dict[str, tuple[str, ...]] = {"world": ("seed",), "knowgen": (), "wise": ("variant",)}
_WHERE = "submission.yaml: benchmark"


def load_benchmark(info: BenchmarkInfo, benchmarks: BenchmarkSpecs | None,
                   report: Report) -> Any | None:
    """The maintainer's benchmark for ``info``, or None after reporting why not."""
    allowed = IDENTITY_ARGS.get(info.name, ())
    unknown = sorted(set(info.args) - set(allowed))
    if unknown:
        report.error(f"{_WHERE}.args", f"unknown argument(s) {', '.join(unknown)}; "
                     f"{info.name} accepts {', '.join(allowed) or 'none'}")
        return None
    given = (benchmarks or {}).get(info.name, info.name)
    if not isinstance(given, str):
        for key, value in info.args.items():
            if getattr(given, key, value) != value:
                report.error(f"{_WHERE}.args.{key}", f"{value!r} differs from the board's "
                             f"{info.name} benchmark ({getattr(given, key)!r})")
                return None
        return given
    try:
        return BENCHMARKS.create(given, **info.args)
    except KnowgenError as exc:
        report.error(_WHERE, f"the board cannot load benchmark {info.name!r} ({exc}). "
                     f"Maintainers: configure it, e.g. --benchmark '{info.name}:path=...'")
        return None


def expected_tasks(info: BenchmarkInfo, benchmarks: BenchmarkSpecs | None,
                   report: Report) -> dict[str, Task] | None:
    """The tasks a submission for ``info`` must answer, by id (None on error)."""
    bench = load_benchmark(info, benchmarks, report)
    if bench is None:
        return None
    version = str(getattr(bench, "version", ""))
    if version != info.version:
        report.error(f"{_WHERE}.version", f"{info.version!r} is not the board's version of "
                     f"{info.name} ({version!r}); re-run on that version")
        return None
    try:
        tasks = bench.tasks(info.split)
    except KnowgenError as exc:
        report.error(f"{_WHERE}.split", str(exc))
        return None
    return {t.id: t for t in select_tasks(tasks, info.limit)}
