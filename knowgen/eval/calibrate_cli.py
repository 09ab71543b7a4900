"""``knowgen judge calibrate``: fit the clip judge's thresholds and print its agreement."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.table import Table

from knowgen.errors import ConfigError
from knowgen.registry import parse_spec


def run(args: argparse.Namespace) -> int:
    """Run ``knowgen judge calibrate``; returns the exit status."""
    from knowgen.cli import console
    from knowgen.eval.clip_calibration import (
        CASES_FILE,
        calibrate,
        case_samples,
        gt_folder,
        result_samples,
    )
    from knowgen.judges.clip_judge import ClipImageJudge

    name, kwargs = parse_spec(args.judge)
    if name != "clip":
        raise ConfigError(f"Only the clip judge has thresholds to fit, not {name!r}: pass "
                          "--judge clip:model=NAME,pretrained=TAG_OR_FILE.")
    if bool(args.results) != bool(args.reference):
        raise ConfigError("--results and --reference go together: the images to judge and "
                          "the reference judge's verdicts on them.")
    kwargs.pop("thresholds", None)
    judge = ClipImageJudge(**kwargs, require_thresholds=False)
    if args.results:
        samples = list(result_samples(args.results, args.reference, args.world_seed,
                                      args.world_cache_dir))
        fitted_on = {"source": "results", "results": str(args.results),
                     "reference": str(args.reference)}
    with gt_folder() as folder:
        if not args.results:
            cases = args.cases or CASES_FILE
            samples = list(case_samples(cases, folder))
            fitted_on = {"source": "calibration set" if not args.cases else "cases",
                         "file": Path(cases).name, "reference": "offline judge"}
        thresholds = calibrate(judge, samples, fitted_on, all_dimensions=not args.fit_only,
                               progress=not args.no_progress)
    out = thresholds.save(args.out or judge.thresholds_file)
    console.print(_calibration_table(thresholds))
    console.print(f"Thresholds for {judge.model_name} ({judge.weights}) written to {out}",
                  markup=False)
    return 0


def _calibration_table(thresholds: Any) -> Table:
    table = Table(title=f"clip judge agreement on {thresholds.fitted_on.get('n')} samples")
    for col in ("dimension", "cut points", "exact", "exact held out", "Spearman"):
        table.add_column(col)
    for dim, rep in thresholds.agreement.items():
        cuts = thresholds.cut_points.get(dim)
        table.add_row(dim, f"{cuts[0]:.4f} / {cuts[1]:.4f}" if cuts else "-",
                      _fmt(rep.get("exact")), _fmt(rep.get("held_out_exact")),
                      _fmt(rep.get("spearman")))
    return table


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}"


def add_parser(sub: Any) -> None:
    """Add the ``judge-calibrate`` command (``knowgen judge calibrate``) to ``sub``."""
    p = sub.add_parser("judge-calibrate", prog="knowgen judge calibrate",
                       help="fit the clip judge's thresholds (same as 'knowgen judge calibrate')",
                       description="Fit the clip judge's thresholds on judged samples and "
                       "report its agreement with the reference judge per dimension.")
    p.add_argument("--judge", default="clip", metavar="clip:ARGS",
                   help="the clip judge to calibrate, e.g. clip:model=ViT-B-32,"
                   "pretrained=openai (default: clip)")
    p.add_argument("--cases", default=None, metavar="FILE",
                   help="calibration set file (default: the committed set of world cases, "
                   "judged by the offline judge)")
    p.add_argument("--results", default=None, metavar="RESULTS_JSON",
                   help="calibrate on these images instead (an official results file) ...")
    p.add_argument("--reference", default=None, metavar="PATH",
                   help="... against this judge's verdicts on them: a 'knowgen judge' output "
                   "folder or a results_eval.json")
    p.add_argument("--out", default=None, help="thresholds file to write (default: the one "
                   "the judge reads for this model, under ~/.cache/knowgen/clip)")
    p.add_argument("--fit-only", action="store_true",
                   help="fit and report the calibrated dimensions only (no OCR pass)")
    p.add_argument("--world-seed", type=int, default=0,
                   help="seed of the world benchmark whose facts --results tasks take (default: 0)")
    p.add_argument("--world-cache-dir", default=None,
                   help="ground-truth cache of that world benchmark (default: ~/.cache/knowgen)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
