"""``knowgen leaderboard validate|add|build|seed|schema``.

:func:`add_parser` adds the sub-command to the ``knowgen`` parser and
:func:`run` executes it; ``python -m knowgen.leaderboard`` runs the same
commands on their own.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

logger = logging.getLogger(__name__)


def _specs(values: Sequence[str] | None) -> dict[str, str]:
    """``["knowgen:path=/d", "world:cache_dir=/c"]`` -> spec per benchmark name."""
    from knowgen.registry import parse_spec

    return {parse_spec(v)[0]: v for v in values or []}


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``leaderboard`` and its sub-commands to ``sub``."""
    p = sub.add_parser("leaderboard", help="validate submissions, add them to a board, "
                       "build the static site")
    _add_commands(p)


def _add_commands(p: argparse.ArgumentParser) -> None:
    cmds = p.add_subparsers(dest="lb_command", required=True)
    bench_help = ("benchmark spec the board uses for that benchmark name, e.g. "
                  "'knowgen:path=/data/knowgen_bench' (repeatable)")
    v = cmds.add_parser("validate", help="list every problem of a submission")
    v.add_argument("submission", help="submission folder, .zip or .tar.gz")
    v.add_argument("--benchmark", action="append", help=bench_help)
    v.add_argument("--json", action="store_true", help="print the report as JSON")
    a = cmds.add_parser("add", help="validate a submission and add it to a board")
    a.add_argument("submission", help="submission folder, .zip or .tar.gz")
    a.add_argument("--board", required=True, help="board folder (created when missing)")
    a.add_argument("--benchmark", action="append", help=bench_help)
    a.add_argument("--rejudge-fraction", type=float, default=0.0,
                   help="share of samples the board re-judges (0 to 1; default 0)")
    a.add_argument("--judge", default=None, help="image-judge spec for re-judging, e.g. offline")
    a.add_argument("--tolerance", type=float, default=None,
                   help="largest mean absolute difference of re-judged scores (default 0.15)")
    a.add_argument("--seed", type=int, default=0, help="seed of the re-judged sample choice")
    b = cmds.add_parser("build", help="write the board's static site")
    b.add_argument("--board", required=True, help="board folder")
    b.add_argument("--out", required=True, help="folder to write the site into")
    s = cmds.add_parser("seed", help="add finished 'knowgen eval' run folders to a board")
    s.add_argument("run_dirs", nargs="+", help="run folders written by 'knowgen eval'")
    s.add_argument("--board", required=True, help="board folder")
    s.add_argument("--site", default=None, help="also build the site into this folder")
    s.add_argument("--benchmark", action="append", help=bench_help)
    c = cmds.add_parser("schema", help="print (or write) the submission JSON Schema")
    c.add_argument("--out", default=None, help="write it to this file")


def run(args: argparse.Namespace) -> int:
    """Execute a parsed ``leaderboard`` command; returns the exit status (1: refused)."""
    from rich.console import Console

    console = Console(markup=False)  # entry ids, paths and messages print as they are
    cmd = args.lb_command
    if cmd == "validate":
        from knowgen.leaderboard.checks import validate

        report = validate(args.submission, benchmarks=_specs(args.benchmark))
        console.print_json(json.dumps(report.to_dict())) if args.json \
            else console.print(report.text(), markup=False, highlight=False)
        return 0 if report.ok else 1
    if cmd == "add":
        from knowgen.leaderboard.board import add
        from knowgen.leaderboard.rejudge import DEFAULT_TOLERANCE

        entry = add(args.submission, args.board, rejudge_fraction=args.rejudge_fraction,
                    judge=args.judge, seed=args.seed, benchmarks=_specs(args.benchmark),
                    tolerance=DEFAULT_TOLERANCE if args.tolerance is None else args.tolerance)
        s = entry["scores"]
        console.print(f"Added {entry['entry_id']}: {s['headline_label']} {s['headline']}"
                      f"{' (FLAGGED)' if entry['flagged'] else ''}; "
                      f"{len(entry['corrections'])} correction(s)", markup=False)
        for line in entry["corrections"] + entry["flags"]:
            console.print(f"  {line}", markup=False, highlight=False)
        return 0
    if cmd == "build":
        from knowgen.leaderboard.site import build

        console.print(f"Site: {build(args.board, args.out)}", markup=False)
        return 0
    if cmd == "seed":
        from knowgen.leaderboard.seed import SeedOutcome, seed_board

        outcome = SeedOutcome()
        try:
            seed_board(args.run_dirs, args.board, args.site, _specs(args.benchmark),
                       outcome=outcome)
        finally:
            for e in outcome.added:
                console.print(f"Added {e['entry_id']}", markup=False)
            for run, entry_id in outcome.skipped:
                console.print(f"Skipped {run}: already on the board as {entry_id}", markup=False)
        return 0
    from knowgen.leaderboard.schema import export_schema, schema_text

    if args.out:
        console.print(f"Wrote {export_schema(args.out)}", markup=False)
    else:
        sys.stdout.write(schema_text())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m knowgen.leaderboard``: the same commands without the ``knowgen`` prefix."""
    from knowgen.errors import KnowgenError

    parser = argparse.ArgumentParser(prog="python -m knowgen.leaderboard",
                                     description="Leaderboard submissions, board and site.")
    _add_commands(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        return run(args)
    except KnowgenError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
