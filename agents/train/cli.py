"""``knowgen train data|sft|grpo|tiny``: expert data, SFT, GRPO and the whole tiny recipe.

Hook into the ``knowgen`` parser with :func:`add_train_parser` and dispatch the
``train`` command to :func:`run_train_command`.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

logger = logging.getLogger(__name__)

_CONFIG_HELP = ("YAML file of TrainConfig settings, or a preset name: smoke, tiny, smollm2, paper "
                "(default: tiny)")
_DATA_HELP = {
    "sft": "SFT records: knowgen's JSONL (knowgen train data) or upstream Gen-Searcher's "
           "sft_data.json (LLaMA-Factory sharegpt); sets sft.data",
    "grpo": "RL prompts in upstream Gen-Searcher's rl_data.json form ({id, prompt, gt_image}); "
            "sets grpo.data (set judges that compare with the GT via grpo.env_overrides)",
}
_SET_HELP = "override one setting, e.g. --set sft.epochs=2 --set grpo.alpha=0.3 (repeatable)"


def add_train_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``train`` and its sub-commands to the ``knowgen`` sub-parsers ``sub``."""
    p = sub.add_parser("train", help="train a search agent: expert data, SFT, GRPO",
                       description="Train a Gen-Searcher style agent on the offline world "
                       "with TRL (needs the 'train' extra).")
    cmds = p.add_subparsers(dest="train_command", required=True)
    d = cmds.add_parser("data", help="play the train split with an expert and write SFT records")
    d.add_argument("--out", required=True, help="JSONL file to write")
    d.add_argument("--expert", default=None, choices=("scripted", "oracle", "guided"),
                   help="expert policy (default: the config's, scripted)")
    d.add_argument("--limit", type=int, default=None, help="play only the first N tasks")
    d.add_argument("--from-run", default=None, metavar="RUN_DIR",
                   help="instead of playing an expert, keep the well-paid episodes of a "
                   "'knowgen eval' run on the train split (the agent's own, to replay "
                   "beside new data: sft.replay); data.min_reward and data.max_chars apply")
    d.add_argument("--executor", default="local", metavar="NAME[:ARGS]",
                   help="where episodes run: local (this process, default) or "
                   "ray[:address=auto,actors=N,...] (in parallel on a Ray cluster; needs "
                   "knowgen[ray]); the records are the same either way")
    for name, helptext in (("sft", "supervised fine-tuning on expert records"),
                           ("grpo", "GRPO from an SFT checkpoint with the dual reward")):
        c = cmds.add_parser(name, help=helptext)
        c.add_argument("--out", default=None, help="run folder (overrides output_dir)")
        c.add_argument("--data", default=None, metavar="FILE", help=_DATA_HELP[name])
    t = cmds.add_parser("tiny", help="the whole recipe of the shipped tiny agent: data, "
                        "tokenizer, SFT, then GRPO")
    t.add_argument("--out", required=True, help="run folder; the agent ends in OUT/final")
    t.add_argument("--skip-grpo", action="store_true", help="stop after SFT")
    i = cmds.add_parser("interpolate", help="interpolate two LoRA adapters of one base "
                        "(keep part of what each stage learned)")
    i.add_argument("first", help="folder of the first LoRA adapter (its files are copied)")
    i.add_argument("second", help="folder of the second LoRA adapter, over the same base")
    i.add_argument("--weight", type=float, default=0.5,
                   help="the second adapter's share of the weight change: 0 to 1 "
                   "interpolates, above 1 extrapolates past the second adapter")
    i.add_argument("--out", required=True, help="new folder for the interpolated adapter")
    for c in (d, *[v for k, v in cmds.choices.items() if k != "interpolate"]):
        if not any(a.dest == "no_progress" for a in c._actions):
            c.add_argument("--no-progress", action="store_true", help="hide every progress bar")
        if not any(a.dest == "config" for a in c._actions):
            c.add_argument("--config", default="tiny", help=_CONFIG_HELP)
            c.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                           help=_SET_HELP)
    return p


def _config(args: argparse.Namespace):
    from knowgen.agents.train.config import load_train_config, parse_set_options

    overrides = parse_set_options(args.set)
    if getattr(args, "out", None) and args.train_command != "data":
        overrides["output_dir"] = args.out
    if getattr(args, "data", None):
        overrides[f"{args.train_command}.data"] = args.data
    return load_train_config(args.config, overrides)


#: Packages of the 'train' extra that sft, grpo and tiny import (checked before any work).
TRAIN_PACKAGES = ("torch", "transformers", "trl", "accelerate", "datasets")


def check_train_extra(command: str) -> None:
    """Fail at once, in one line, when a package of the 'train' extra is missing.

    Only looks the packages up (nothing is imported), so it costs milliseconds; without
    it a run would render the expert data first and then fail deep inside an import.

    Raises:
        MissingDependencyError: naming the first missing package and the extra.
    """
    import importlib.util

    from knowgen.errors import MissingDependencyError

    for package in TRAIN_PACKAGES:
        try:
            found = importlib.util.find_spec(package) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise MissingDependencyError(package, "train", f"knowgen train {command}")


def run_train_command(args: argparse.Namespace) -> int:
    """Run ``knowgen train ...`` for parsed ``args``; returns the exit status.

    Raises:
        ConfigError: for bad settings (the ``knowgen`` entry point prints it).
        MissingDependencyError: when the 'train' extra is not installed (checked
            before any work for sft, grpo and tiny).
    """
    from knowgen.agents.train.progress import training_output

    if args.train_command != "data":
        check_train_extra(args.train_command)
    with training_output(progress=not getattr(args, "no_progress", False)):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    if args.train_command == "interpolate":
        from knowgen.agents.interpolate import interpolate_adapters

        print_done("Interpolation", interpolate_adapters(args.first, args.second, args.weight,
                                                         args.out))
        return 0
    cfg = _config(args)
    if args.train_command == "data":
        return _cmd_data(args, cfg)
    if args.train_command == "sft":
        from knowgen.agents.train.sft import run_sft

        print_done("SFT", run_sft(cfg))
    elif args.train_command == "grpo":
        from knowgen.agents.train.grpo import run_grpo

        print_done("GRPO", run_grpo(cfg))
    else:
        _cmd_tiny(args, cfg)
    return 0


def _cmd_data(args: argparse.Namespace, cfg) -> int:
    from knowgen.agents.expert_data import generate_expert_data, write_jsonl
    from knowgen.eval.executors import check_executor

    check_executor(args.executor)
    if args.from_run:
        return _cmd_replay(args, cfg)
    if args.expert:
        cfg.data.expert = args.expert
    if args.limit is not None:
        if args.limit < 1:
            from knowgen.errors import ConfigError

            raise ConfigError(f"--limit must be at least 1, got {args.limit}.")
        cfg.data.limit = args.limit
    try:  # refuse an unwritable --out before playing every task
        Path(args.out).resolve().parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        from knowgen.errors import ConfigError

        raise ConfigError(f"Cannot write {args.out} ({exc.strerror}); choose another "
                          "--out.") from None
    cfg.data.system_prompt = cfg.system_prompt
    records, stats = generate_expert_data(cfg.data, executor=args.executor)
    out = write_jsonl(records, args.out)
    print_done("expert data", out, stats)
    return 0


def _cmd_replay(args: argparse.Namespace, cfg) -> int:
    from knowgen.agents.expert_data import write_jsonl
    from knowgen.agents.run_records import run_records
    from knowgen.errors import ConfigError

    clashes = [flag for flag, value in (("--expert", args.expert), ("--limit", args.limit),
                                        ("--executor", args.executor != "local" or None))
               if value]
    if clashes:
        verb, them = ("has", "it") if len(clashes) == 1 else ("have", "them")
        raise ConfigError(f"--from-run replays a finished run, so {', '.join(clashes)} {verb} "
                          f"nothing to set; drop {them} (choose the tasks when you run "
                          "'knowgen eval').")
    records, stats = run_records(args.from_run, cfg.data.min_reward, cfg.data.max_chars,
                                 cfg.system_prompt)
    if not records:
        raise ConfigError(f"No episode of {args.from_run} is paid at least "
                          f"data.min_reward={cfg.data.min_reward} ({stats}); lower it with "
                          "--set data.min_reward=... or replay a longer run.")
    out = write_jsonl(records, args.out)
    print_done("replay data", out, stats)
    return 0


def _cmd_tiny(args: argparse.Namespace, cfg) -> None:
    import shutil

    from knowgen.agents.train.grpo import run_grpo
    from knowgen.agents.train.sft import run_sft

    final = run_sft(cfg)
    if not args.skip_grpo:
        final = run_grpo(cfg)
    target = Path(cfg.output_dir) / "final"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(final, target)
    print_done("tiny agent", target)


def print_done(what: str, path: Path, stats: dict | None = None) -> None:
    """Tell the user where a stage's result is (stdout is the command's output)."""
    from rich.console import Console
    from rich.text import Text

    console = Console(markup=False)
    console.print(Text.assemble((f"{what} done:", "green"), f" {path}"))
    if stats:
        console.print(json.dumps(stats, indent=2))


def main(argv: list[str] | None = None) -> int:
    """Run ``knowgen train`` on its own (``python -m knowgen.agents.train.cli sft ...``)."""
    import sys

    from knowgen.errors import KnowgenError

    parser = argparse.ArgumentParser(prog="knowgen")
    sub = parser.add_subparsers(dest="command", required=True)
    add_train_parser(sub)
    args = parser.parse_args(["train", *(sys.argv[1:] if argv is None else argv)])
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        return run_train_command(args)
    except KnowgenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
