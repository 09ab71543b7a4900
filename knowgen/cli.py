"""The ``knowgen`` command.

Sub-commands:
    eval      run a policy on a benchmark and score it
    compare   print one table comparing finished runs
    list      list registered backends of every kind
    tasks     show tasks of a benchmark split
    report    write a self-contained HTML report of a run folder
    judge     score images of a KnowGen results file (or a WISE image folder)
    serve     run a knowgen service over HTTP (retriever, generator, env)
    leaderboard  validate submissions, add them to a board, build the static site
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table
from rich.text import Text

from knowgen.errors import ConfigError, KnowgenError
from knowgen.progress import progress_bars

# Piped output (make demo, CI logs) would be cut to 80 columns; tables need more.
# markup=False: messages, paths and table cells are printed as they are, so text in
# square brackets (pip extras such as knowgen[serve], file names) is never eaten as
# rich markup; styling is given with style= instead.
console = Console(width=None if sys.stdout.isatty() else 120, markup=False)
err_console = Console(stderr=True, markup=False, soft_wrap=True)  # one message, one line

# flag -> dotted config key of EvalConfig
_EVAL_FLAGS = {
    "benchmark": "env.benchmark",
    "split": "env.split",
    "search": "env.search",
    "image_search": "env.image_search",
    "browser": "env.browser",
    "generator": "env.generator",
    "image_judge": "env.image_judge",
    "text_judge": "env.text_judge",
    "alpha": "env.alpha",
    "max_turns": "env.max_turns",
    "max_tool_calls": "env.max_tool_calls",
    "policy": "policy",
    "limit": "limit",
    "tasks": "tasks",
    "seed": "seed",
    "output_dir": "output_dir",
    "resume": "resume",
    "workers": "workers",
    "executor": "executor",
}


def _add_eval(sub: argparse._SubParsersAction) -> None:
    from knowgen.config import EnvConfig, EvalConfig, field_docs

    docs = {**{f"env.{k}": v for k, v in field_docs(EnvConfig).items()}, **field_docs(EvalConfig)}
    p = sub.add_parser("eval", help="run a policy on a benchmark and score it",
                       description="Run a policy on every task of a benchmark split through "
                       "SearchGenEnv, judge the images, and write a run folder.")
    p.add_argument("--config", help="YAML file of EvalConfig settings; flags override it")
    types = {"alpha": float, "max_turns": int, "max_tool_calls": int, "limit": int,
             "seed": int, "workers": int}
    defaults = EvalConfig()
    for flag, key in _EVAL_FLAGS.items():
        value: object = defaults
        for part in key.split("."):
            value = getattr(value, part)
        shown = "" if value in (None, "") else f" (default: {value})".replace("%", "%%")
        p.add_argument(f"--{flag.replace('_', '-')}", dest=flag, type=types.get(flag, str),
                       default=None, help=docs.get(key, "").replace("%", "%%") + shown)
    p.add_argument("--judge", dest="image_judge", default=argparse.SUPPRESS, metavar="NAME:ARGS",
                   help="same as --image-judge; on WISE the WISE judge "
                   "(offline, or openai:model=gpt-4.1,...)")
    p.add_argument("--judge-prompt-from", metavar="PATH", default=None,
                   help="rubric file for the image (or WISE) judge, read at run time; "
                   "same as adding prompt_from=PATH to its spec")
    p.add_argument("--variant", default=None, choices=("legacy", "verified"),
                   help="WISE variant; same as adding variant=... to --benchmark wise:...")
    p.add_argument("--system-prompt-from", metavar="PATH", default=None,
                   help="system prompt for an LLM policy (openai, transformers), read at run "
                   "time from a file of a local upstream checkout (.txt/.md whole; .py: its "
                   "first *PROMPT* string constant); same as system_prompt_from=PATH")
    p.add_argument("--run-dir", help="write into this folder (resumes it if it holds samples)")
    p.add_argument("--by-category", action="store_true", help="also print per-category scores")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--adopt", action="store_true",
                   help="take over a run folder that holds samples but no run.json, "
                   "with the current settings")


def _cmd_eval(args: argparse.Namespace) -> int:
    from knowgen.config import EvalConfig, load_config
    from knowgen.eval.report import category_table, comparison_table
    from knowgen.eval.runner import run_eval

    overrides = {key: getattr(args, flag) for flag, key in _EVAL_FLAGS.items()}
    if args.resume and not args.config and os.path.isfile(os.path.join(args.resume, "run.json")):
        from knowgen.eval.runner import resume_config  # the folder's run.json holds the settings

        cfg = resume_config(args.resume, overrides)
    else:
        cfg = load_config(EvalConfig, args.config, overrides)
    if args.judge_prompt_from:
        cfg.env.image_judge = _with_prompt_from(cfg.env.image_judge, args.judge_prompt_from)
    if args.system_prompt_from:
        cfg.policy = _with_arg(cfg.policy, "system_prompt_from", args.system_prompt_from)
    if args.variant:
        cfg.env.benchmark = _with_arg(cfg.env.benchmark, "variant", args.variant)
    outcome = run_eval(cfg, run_dir=args.run_dir, progress=not args.no_progress,
                       adopt=args.adopt)
    if outcome.summary.get("rubric") == "wise":
        from knowgen.eval.wise_run import wise_table

        console.print(wise_table(outcome.summary))
    else:
        console.print(comparison_table([outcome.summary]))
        if args.by_category:
            console.print(category_table(outcome.summary))
    failed = f", {outcome.n_failed} not judged: rerun to retry" if outcome.n_failed else ""
    console.print(f"Run folder: {outcome.run_dir} ({outcome.n_new} new, "
                  f"{outcome.n_resumed} resumed{failed})")
    return 1 if outcome.n_failed else 0


def _with_prompt_from(spec: str, path: str) -> str:
    """``spec`` with ``prompt_from=PATH`` added (the path quoted, so commas survive)."""
    return _with_arg(spec, "prompt_from", path)


def _with_arg(spec: str, key: str, value: str) -> str:
    """``spec`` with ``key=value`` added (the value quoted, so commas survive)."""
    import json

    return f"{spec}{',' if ':' in spec else ':'}{key}={json.dumps(value)}"


def _cmd_compare(args: argparse.Namespace) -> int:
    from knowgen.eval.compare_cli import run

    return run(args)


def _cmd_list(args: argparse.Namespace) -> int:
    from knowgen import registry

    kinds = {
        "benchmarks": registry.BENCHMARKS, "policies": registry.POLICIES,
        "search": registry.TEXT_SEARCH, "image-search": registry.IMAGE_SEARCH,
        "browsers": registry.BROWSERS, "generators": registry.GENERATORS,
        "image-judges": registry.IMAGE_JUDGES, "text-judges": registry.TEXT_JUDGES,
        "wise-judges": registry.WISE_JUDGES,
    }
    if args.kind and args.kind not in kinds:
        from knowgen.errors import UnknownNameError

        raise UnknownNameError("kind", args.kind, kinds)
    for name, reg in kinds.items():
        if args.kind in (None, name):
            console.print(Text.assemble((name, "bold"), f": {', '.join(reg.names())}"))
    return 0


def _cmd_tasks(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {args.limit}.")

    from knowgen.registry import BENCHMARKS

    bench = BENCHMARKS.create(args.benchmark)
    tasks = bench.tasks(args.split)
    table = Table(title=f"{args.benchmark}/{args.split}: {len(tasks)} tasks")
    for col in ("id", "category", "difficulty", "prompt"):
        table.add_column(col)
    for t in tasks[: args.limit]:
        table.add_row(t.id, t.category, t.difficulty, t.prompt)
    console.print(table)
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from knowgen.eval.html_report import write_report

    console.print(f"Report: {write_report(args.run_dir, args.out)}")
    return 0


def _add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run a knowgen service over HTTP")
    services = p.add_subparsers(dest="service", required=True)
    r = services.add_parser("retriever", help="serve the offline world's pages on a "
                            "Search-R1 style POST /retrieve endpoint")
    r.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    r.add_argument("--port", type=int, default=8000, help="port to listen on (default: 8000)")
    r.add_argument("--data-dir", default=None, help="world folder (default: the shipped world)")
    g = services.add_parser("generator", help="serve an image generator on POST /generate, "
                            "for clients using --generator http:url=http://HOST:PORT")
    g.add_argument("--generator", required=True, metavar="NAME:ARGS",
                   help="generator spec, e.g. diffusers:path=/models/qwen-image-edit,"
                   "preset=qwen-image-edit")
    g.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: 127.0.0.1; 0.0.0.0 for other machines)")
    g.add_argument("--port", type=int, default=8100, help="port to listen on (default: 8100)")
    g.add_argument("--max-queue", type=int, default=16,
                   help="requests that may wait while one is drawn; more get 503 (default: 16)")
    g.add_argument("--max-request-mb", type=float, default=32.0,
                   help="largest request body in MiB; larger ones get 413 (default: 32)")
    from knowgen.envs.openenv_cli import add_env_parser

    add_env_parser(services)


def _cmd_serve(args: argparse.Namespace) -> int:
    from knowgen.errors import ConfigError

    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be a number from 0 to 65535 (0: any free port), got "
                          f"{args.port}.")
    if args.service == "generator" and (args.max_queue < 0 or args.max_request_mb <= 0):
        raise ConfigError("--max-queue must be 0 or more and --max-request-mb more than 0.")
    if args.service == "generator":
        from knowgen.generators.server import serve_generator

        serve_generator(args.generator, host=args.host, port=args.port, max_queue=args.max_queue,
                        max_request_bytes=int(args.max_request_mb * 1024 * 1024))
        return 0
    if args.service == "env":
        from knowgen.envs.openenv_cli import run_serve_env

        return run_serve_env(args)
    from knowgen.search.retrieve_server import make_server

    server = make_server(args.host, args.port, args.data_dir)
    console.print(f"Serving {len(server.index.world.pages)} world pages on {server.url} "
                  "(Ctrl-C stops)")
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


def _cmd_judge(args: argparse.Namespace) -> int:
    from knowgen.eval.judge_results import judge_results

    judge = _with_prompt_from(args.judge, args.judge_prompt_from) if args.judge_prompt_from \
        else args.judge
    if args.wise:
        return _judge_wise(args, judge)
    s = judge_results(args.results, judge, out_dir=args.out, world_seed=args.world_seed,
                      world_cache_dir=args.world_cache_dir, progress=not args.no_progress,
                      strict=args.strict)
    c = s["counts"]
    console.print(f"K-Score {s['k_score']:.2f}: {c['scored']} scored, {c['not_evaluated']} not "
                  f"evaluated, {c['errors']} errors, {c['skipped_unknown_category']} skipped "
                  "(category in no KnowGen group)")
    lenient = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in s["lenient"].items() if n)
    if lenient:
        console.print(f"Read as the official evaluator reads them: {lenient} "
                      "(--strict refuses such replies)", markup=False)
    console.print(f"Scores: {s['out_dir']}/results_eval.json (official format) and "
                  f"{s['out_dir']}/summary.json", markup=False)
    return 1 if c["errors"] else 0


def _judge_wise(args: argparse.Namespace, judge: str) -> int:
    from knowgen.eval.wise_run import judge_wise_images, wise_table

    s = judge_wise_images(args.results, args.wise, args.variant, judge, out_dir=args.out,
                          progress=not args.no_progress)
    console.print(wise_table(s))
    console.print(f"{s['n_evaluated']} judged, {s['n_missing_images']} without an image, "
                  f"{s['n_judge_errors']} judge errors. Scores: {s['out_dir']}/summary.json")
    return 1 if s["n_judge_errors"] else 0


def _cmd_judge_calibrate(args: argparse.Namespace) -> int:
    from knowgen.eval.calibrate_cli import run

    return run(args)


def _cmd_leaderboard(args: argparse.Namespace) -> int:
    from knowgen.leaderboard.cli import run

    return run(args)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``knowgen`` command."""
    import knowgen
    from knowgen.clihelp import Parser

    parser = Parser(prog="knowgen", description="Evaluate, judge and train search-augmented "
                    "image generation agents (run 'knowgen COMMAND --help' for a command).")
    parser.add_argument("--version", action="version", version=f"knowgen {knowgen.__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_eval(sub)
    from knowgen.eval.compare_cli import add_parser as _add_compare

    _add_compare(sub)
    p = sub.add_parser("list", help="list registered backends")
    p.add_argument("kind", nargs="?", help="only this kind (e.g. policies, generators)")
    p = sub.add_parser("tasks", help="show tasks of a benchmark split")
    p.add_argument("--benchmark", default="world", metavar="NAME:ARGS",
                   help="benchmark spec (see 'knowgen list benchmarks')")
    p.add_argument("--split", default="test", help="split of the benchmark")
    p.add_argument("--limit", type=int, default=20, help="show at most this many tasks")
    p = sub.add_parser("report", help="write a self-contained HTML report of a run folder")
    p.add_argument("run_dir", help="a run folder written by 'knowgen eval'")
    p.add_argument("--out", default=None, help="HTML file to write (default: RUN_DIR/report.html)")
    p = sub.add_parser("judge", help="score the images of a KnowGen results file with an image judge",
                       epilog="'knowgen judge calibrate --help': fit the clip judge's thresholds.")
    p.add_argument("results", help="official results JSON array (id, success, prompt, meta, "
                   "output_path, gt_image; relative paths resolve against its folder), "
                   "or with --wise a folder of {prompt_id}.png images")
    p.add_argument("--judge", default="offline", metavar="NAME:ARGS",
                   help="image judge spec (default: offline, world tasks only; "
                   "e.g. openai:model=gpt-4.1 or clip:model=ViT-B-32,pretrained=FILE for others)")
    p.add_argument("--judge-prompt-from", metavar="PATH", default=None,
                   help="rubric file read at run time (e.g. the official prompt of your "
                   "checkout of the benchmark); same as prompt_from=PATH in --judge")
    p.add_argument("--out", default=None, help="output folder (default: "
                   "RESULTS_FOLDER/judged-<judge name>); resumed if it exists")
    p.add_argument("--wise", metavar="PATH", default=None,
                   help="score WISE images instead: RESULTS is then a folder of "
                   "{prompt_id}.png and PATH the WISE prompt files")
    p.add_argument("--variant", default="verified", choices=("legacy", "verified"),
                   help="WISE variant with --wise (default: verified)")
    p.add_argument("--strict", action="store_true",
                   help="refuse what the official evaluator tolerates: items without meta or "
                   "with mistyped fields, a missing ground truth (an error, not 'not "
                   "evaluated'), judge replies with a missing or off-scale score or without "
                   "text_accuracy_na (default: read them as the official evaluator does)")
    p.add_argument("--world-seed", type=int, default=0,
                   help="seed of the world benchmark the offline judge takes facts from (default: 0)")
    p.add_argument("--world-cache-dir", default=None,
                   help="ground-truth cache of that world benchmark (default: ~/.cache/knowgen)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    from knowgen.eval.calibrate_cli import add_parser as _add_judge_calibrate

    _add_judge_calibrate(sub)
    _add_serve(sub)
    from knowgen.leaderboard.cli import add_parser as _add_leaderboard

    _add_leaderboard(sub)
    from knowgen.agents.train.cli import add_train_parser

    add_train_parser(sub)
    return parser


def _cmd_train(args: argparse.Namespace) -> int:
    from knowgen.agents.train.cli import run_train_command

    return run_train_command(args)


_COMMANDS = {"eval": _cmd_eval, "compare": _cmd_compare, "list": _cmd_list, "tasks": _cmd_tasks,
             "report": _cmd_report, "judge": _cmd_judge, "judge-calibrate": _cmd_judge_calibrate,
             "serve": _cmd_serve,
             "leaderboard": _cmd_leaderboard, "train": _cmd_train}


def _route_subcommands(argv: list[str]) -> list[str]:
    """``judge calibrate ...`` is the ``judge-calibrate`` command (``judge`` takes a file)."""
    words = [i for i, a in enumerate(argv) if not a.startswith("-")]
    if len(words) >= 2 and argv[words[0]] == "judge" and argv[words[1]] == "calibrate" \
            and words[1] == words[0] + 1:
        return argv[:words[0]] + ["judge-calibrate"] + argv[words[1] + 1:]
    return argv


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``knowgen`` console script; returns the exit status."""
    args = build_parser().parse_args(_route_subcommands(list(sys.argv[1:] if argv is None else argv)))
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(message)s",
                        handlers=[RichHandler(console=err_console, show_path=False)])
    try:
        with progress_bars(not getattr(args, "no_progress", False)):
            return _COMMANDS[args.command](args)
    except KnowgenError as exc:
        err_console.print(Text.assemble(("error:", "bold red"), f" {exc}"))
        return 2
    except KeyboardInterrupt:
        err_console.print("interrupted", style="yellow")
        return 130
    except OSError as exc:  # a file or folder named on the command line
        where = f" ({exc.filename})" if exc.filename else ""
        err_console.print(f"error: {exc.strerror or exc}{where}; check the path and its "
                          "permissions, or choose another one.", markup=False, highlight=False)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
