"""Leaderboard: submission checks, aggregation and the static site.

Public entry points (imported lazily, so ``import knowgen.leaderboard`` stays light):

* :func:`validate` -- list every problem of a submission (:class:`Report`);
* :func:`add` -- validate, recompute the scores and store an entry on a board;
* :func:`build` -- write the board's static site;
* :func:`seed_board` / :func:`write_submission` -- turn finished runs into submissions.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "validate": "knowgen.leaderboard.checks",
    "add": "knowgen.leaderboard.board",
    "load_entries": "knowgen.leaderboard.board",
    "build": "knowgen.leaderboard.site",
    "seed_board": "knowgen.leaderboard.seed",
    "write_submission": "knowgen.leaderboard.seed",
    "submission_meta": "knowgen.leaderboard.seed",
    "Report": "knowgen.leaderboard.report",
    "Problem": "knowgen.leaderboard.report",
    "SubmissionError": "knowgen.leaderboard.report",
    "SubmissionLimits": "knowgen.leaderboard.report",
    "SubmissionMeta": "knowgen.leaderboard.schema",
    "submission_schema": "knowgen.leaderboard.schema",
}
__all__ = [
    "Problem", "Report", "SubmissionError", "SubmissionLimits", "SubmissionMeta", "add", "build",
    "load_entries", "seed_board", "submission_meta", "submission_schema", "validate",
    "write_submission",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'knowgen.leaderboard' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_EXPORTS[name]), name)
