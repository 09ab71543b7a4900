"""``knowgen compare``: one table of finished runs, their paired intervals, and by family.

The score table reads each run's ``summary.json``; the paired comparison with the first
run (:mod:`knowgen.eval.paired`) and the table by task family read each folder's samples
once. A folder whose samples cannot be paired leaves those two tables out with a warning,
and the score table stands.
"""

from __future__ import annotations

import argparse

from rich.text import Text

from knowgen.errors import ConfigError, RunError


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add the ``compare`` sub-command to ``sub``."""
    p = sub.add_parser("compare", help="print one table comparing finished runs")
    p.add_argument("run_dirs", nargs="+", help="run folders written by 'knowgen eval'")
    p.add_argument("--title", default="knowgen results", help="title printed above the table")
    p.add_argument("--resamples", type=int, default=2000,
                   help="bootstrap resamples of the paired comparison with the first run "
                        "(0: leave it out)")
    p.add_argument("--by-family", action="store_true",
                   help="also print each run's mean overall score per task family (the part "
                        "of a task id before its first '-': the offline world's templates), "
                        "weakest first")


def run(args: argparse.Namespace) -> int:
    """Run ``knowgen compare``; returns the exit status."""
    from knowgen.cli import console, err_console
    from knowgen.eval.report import comparison_table, load_summary, task_set_warning

    if args.resamples and args.resamples < 100:
        raise ConfigError(f"--resamples must be 0 (no paired comparison) or at least 100, got "
                          f"{args.resamples}.")
    summaries = [load_summary(d) for d in args.run_dirs]
    warning = task_set_warning(args.run_dirs, summaries)
    if warning:
        err_console.print(Text.assemble(("warning:", "bold yellow"), f" {warning}"))
    knowgen_runs = [s for s in summaries if s.get("rubric") != "wise"]
    wise_runs = [s for s in summaries if s.get("rubric") == "wise"]
    if knowgen_runs:
        console.print(comparison_table(knowgen_runs, title=args.title))
    paired = [d for d, s in zip(args.run_dirs, summaries, strict=True) if s.get("rubric") != "wise"]
    pairing = bool(args.resamples) and len(paired) > 1
    scores = None
    if pairing or (args.by_family and paired):
        from knowgen.eval.paired import run_scores

        try:
            scores = [run_scores(d) for d in paired]  # each folder read once for both tables
        except RunError as exc:  # the score table stands; only these tables are left out
            what = " and ".join(w for w, on in (("no paired comparison", pairing),
                                                ("no table by family", args.by_family)) if on)
            err_console.print(Text.assemble(("warning:", "bold yellow"), f" {what}: {exc}"))
    if pairing and scores is not None:
        from knowgen.eval.paired import compare_runs
        from knowgen.eval.report import paired_table

        try:
            first, results = compare_runs(paired, resamples=args.resamples, scores=scores)
        except RunError as exc:
            err_console.print(Text.assemble(("warning:", "bold yellow"),
                                            f" no paired comparison: {exc}"))
        else:
            console.print(paired_table(paired[0], first, results))
    if args.by_family and scores is not None:
        from knowgen.eval.report import family_table

        console.print(family_table(paired, scores))
    if wise_runs:
        from knowgen.eval.wise_run import wise_comparison_table

        console.print(wise_comparison_table(wise_runs, title=args.title))
    return 0
