"""``knowgen eval``: run a policy on every task of a benchmark through SearchGenEnv.

The runner drives exactly the environment an RL researcher steps, so a
benchmark score and an RL reward can never disagree. Each finished sample is
appended durably to ``samples.jsonl``; a killed run resumes where it stopped.

Episodes run on an executor (:mod:`knowgen.eval.executors`): threads of this
process, or Ray actors on a cluster (``--executor ray``). Either way the
results come back to the calling thread, which alone writes the run folder, so
resuming and the files written do not depend on where the episodes ran.

WISE runs (no ground-truth images) go through the same episodes; the generated
image is then scored by a WISE judge of the benchmark's variant, named by the
image-judge setting (see :mod:`knowgen.eval.wise_run`).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

import knowgen
from knowgen.config import EnvConfig, EvalConfig, apply_overrides, from_dict, to_dict
from knowgen.errors import KnowgenError, RunError, UnknownNameError
from knowgen.eval.episodes import EpisodeResult, LocalEpisodes, RemoteEpisodes
from knowgen.eval.executors import TaskLost, check_executor, make_executor
from knowgen.eval.results import build_results, build_summary
from knowgen.eval.rundir import (
    SCHEMA_VERSION,
    SampleLog,
    atomic_write_json,
    check_resumable,
    git_hash,
    open_identity,
    read_run_meta,
    sample_problem,
)
from knowgen.eval.wise_run import build_wise_summary, is_wise, make_wise_judge
from knowgen.fileio import atomic_write
from knowgen.locking import FolderLock
from knowgen.progress import progress_bars, progress_enabled
from knowgen.registry import BENCHMARKS
from knowgen.types import Task, task_family

logger = logging.getLogger(__name__)


@dataclass
class RunOutcome:
    """What a finished (or resumed) run produced."""

    run_dir: Path
    summary: dict[str, Any]
    n_new: int
    n_resumed: int
    n_failed: int = 0


def default_run_dir(cfg: EvalConfig) -> Path:
    """``<output_dir>/<benchmark>__<policy>__<seed>__<timestamp>``."""
    bench = cfg.env.benchmark.split(":")[0]
    policy = cfg.policy.split(":")[0]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path(cfg.output_dir) / f"{bench}__{policy}__{cfg.seed}__{stamp}"


def _run_meta(cfg: EvalConfig) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "benchmark": cfg.env.benchmark,
        "split": cfg.env.split,
        "policy": cfg.policy,
        "seed": cfg.seed,
        "limit": cfg.limit,
        "tasks": cfg.tasks,
        "config": to_dict(cfg.env),
    }


def select_tasks(tasks: list[Task], limit: int | None, only: str | None = None) -> list[Task]:
    """``limit`` tasks spread evenly over the split (all when None), after ``only``.

    Benchmarks list tasks grouped by kind, so the first N would all be alike;
    an even stride keeps a small run representative and deterministic.

    Args:
        tasks: The split's tasks, in the benchmark's order.
        limit: How many to keep, or None for all.
        only: Comma-separated id patterns (see :func:`match_tasks`); None keeps every task.

    Raises:
        RunError: for a limit below 1, or a pattern of ``only`` that matches no task.
    """
    if only is not None:
        tasks = match_tasks(tasks, only)
    if limit is None or limit >= len(tasks):
        return tasks
    if limit <= 0:
        raise RunError(f"--limit must be a positive number of tasks, got {limit}.")
    return [tasks[(i * len(tasks)) // limit] for i in range(limit)]


def task_patterns(only: str) -> list[str]:
    """The patterns of a ``--tasks`` value (comma-separated, blanks dropped).

    Raises:
        RunError: when it holds no pattern.
    """
    patterns = [p.strip() for p in str(only).split(",") if p.strip()]
    if not patterns:
        raise RunError(f"--tasks {only!r} holds no pattern; give task ids or patterns such as "
                       "'flag_by_neighbours-*', or leave it out to run every task.")
    return patterns


def match_tasks(tasks: list[Task], only: str) -> list[Task]:
    """The tasks whose id matches one of ``only``'s patterns, in the split's order.

    Patterns are matched case-sensitively with ``*`` and ``?`` wildcards
    (:func:`fnmatch.fnmatchcase`); a pattern without one names a single task.

    Raises:
        RunError: for a pattern that matches no task, with the closest ids and families.
    """
    import difflib
    from fnmatch import fnmatchcase

    patterns = task_patterns(only)
    ids = [t.id for t in tasks]
    for pattern in patterns:
        if not any(fnmatchcase(i, pattern) for i in ids):
            families = sorted({task_family(i) + "-*" for i in ids if "-" in i})
            close = difflib.get_close_matches(pattern, families + ids, n=3)
            hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            shown = families or ids[:5]
            raise RunError(f"--tasks pattern {pattern!r} matches no task of this split.{hint} "
                           f"Its tasks: {', '.join(shown[:30])}"
                           f"{', ...' if len(shown) > 30 else ''}.")
    return [t for t in tasks if any(fnmatchcase(t.id, p) for p in patterns)]


def check_settings(cfg: EvalConfig) -> None:
    """Refuse settings no run can use, before anything is created.

    Raises:
        RunError: for ``workers`` below 1, ``limit`` below 1, a negative ``seed`` or a
            ``tasks`` value with no pattern.
        ConfigError: for an environment setting out of range or an executor option.
        UnknownNameError: for a backend, policy, benchmark or executor name nobody registered.
        MissingDependencyError: for ``--executor ray`` without Ray installed.
    """
    if cfg.workers < 1:
        raise RunError(f"--workers must be at least 1, got {cfg.workers}.")
    check_executor(cfg.executor)
    if cfg.limit is not None and cfg.limit < 1:
        raise RunError(f"--limit must be a positive number of tasks, got {cfg.limit}; leave it "
                       "out to run every task.")
    if cfg.seed < 0:
        raise RunError(f"--seed must be 0 or more, got {cfg.seed}.")
    if cfg.tasks is not None:
        task_patterns(cfg.tasks)
    from knowgen import registry
    from knowgen.envs.searchgen import SearchGenEnv

    SearchGenEnv.check_config(cfg.env)
    specs = [(registry.POLICIES, cfg.policy), (registry.BENCHMARKS, cfg.env.benchmark),
             (registry.TEXT_SEARCH, cfg.env.search), (registry.IMAGE_SEARCH, cfg.env.image_search),
             (registry.BROWSERS, cfg.env.browser), (registry.GENERATORS, cfg.env.generator),
             (registry.IMAGE_JUDGES, cfg.env.image_judge),
             (registry.TEXT_JUDGES, cfg.env.text_judge)]
    for reg, spec in specs:
        name = registry.parse_spec(spec)[0]
        if reg is registry.IMAGE_JUDGES and name in registry.WISE_JUDGES:
            continue  # on WISE the image-judge setting names a WISE judge
        if name not in reg:
            raise UnknownNameError(reg.kind, name, reg.names())


def resume_config(run_dir: str | Path, overrides: dict[str, Any] | None = None) -> EvalConfig:
    """The settings a run folder was started with (from its ``run.json``), plus ``overrides``.

    This is what ``knowgen eval --resume DIR`` runs with, so the command printed
    when a run is interrupted works as printed.

    Raises:
        RunError: when ``run.json`` is missing or unreadable.
    """
    meta = read_run_meta(Path(run_dir))
    try:
        env = from_dict(EnvConfig, meta.get("config") or {}, where="config")
        cfg = EvalConfig(env=env, policy=str(meta["policy"]), limit=meta.get("limit"),
                         tasks=meta.get("tasks"), seed=int(meta.get("seed") or 0), resume=str(run_dir))
    except (KnowgenError, TypeError, ValueError) as exc:
        raise RunError(f"Cannot take the settings of {run_dir} from its run.json ({exc}); "
                       "give them as flags instead.") from None
    return apply_overrides(cfg, overrides or {})


class _Interrupted(RunError):
    """Ctrl-C during a run (the message says how to resume)."""


def run_eval(cfg: EvalConfig, run_dir: str | Path | None = None, progress: bool = True,
             write_html: bool = True, adopt: bool = False) -> RunOutcome:
    """Evaluate ``cfg.policy`` on ``cfg.env.benchmark``; resume when the run folder has samples.

    The settings, the benchmark and the task selection are checked before the
    run folder is created, and a start that fails before its first sample
    removes the folder it created, so failed starts leave nothing behind. One
    process at a time may write a run folder (see :mod:`knowgen.locking`).

    Args:
        cfg: The evaluation settings.
        run_dir: Where to write; default ``cfg.resume`` or a new timestamped folder.
        progress: Show a progress bar.
        write_html: Also write ``report.html`` and ``categories.png`` into the run folder.
        adopt: Take over a folder that holds samples but no ``run.json``.

    Raises:
        RunError: when the run folder belongs to a run with other settings, is
            being written by another process, or cannot be created.
    """
    check_settings(cfg)
    target = Path(run_dir or cfg.resume or default_run_dir(cfg))
    if target.exists() and not target.is_dir():
        raise RunError(f"{target} is a file, not a folder; choose another --run-dir.")
    if cfg.resume and not target.is_dir():
        raise RunError(f"Nothing to resume at {target}: no such folder.")
    meta = _run_meta(cfg)
    benchmark = BENCHMARKS.create(cfg.env.benchmark)
    meta["benchmark_version"] = str(getattr(benchmark, "version", ""))

    @functools.cache
    def split_tasks() -> list[Task]:
        with progress_bars(progress and progress_enabled()):  # a benchmark's own bars too
            return benchmark.tasks(cfg.env.split)

    grows = _grows_to(split_tasks, cfg.limit, cfg.tasks)  # loads the split for a larger --limit
    if (target / "run.json").exists():
        check_resumable(target, meta, grows)
    wise_judge = make_wise_judge(cfg.env.image_judge, benchmark.variant) if is_wise(
        benchmark) else None
    if wise_judge is not None and cfg.env.text_judge != "offline":
        logger.warning("WISE has no ground truth and no text reward: text judge %r is not used.",
                       cfg.env.text_judge)
    tasks = select_tasks(split_tasks(), cfg.limit, cfg.tasks)
    created = _make_folder(target)
    try:
        with FolderLock(target, "run folder"):
            return _run_in(cfg, target, meta, benchmark, wise_judge, tasks, progress,
                           write_html, adopt, grows)
    except BaseException as exc:
        log = target / "samples.jsonl"
        if created is not None and not (log.is_file() and log.stat().st_size):
            shutil.rmtree(created, ignore_errors=True)
            if isinstance(exc, _Interrupted):
                raise RunError("Interrupted before the first sample finished; nothing was "
                               f"kept ({target} was removed).") from None
        raise


def _make_folder(target: Path) -> Path | None:
    """Create the run folder; returns the outermost folder this call created (None: none)."""
    if target.is_dir():
        return None
    top = target
    while not top.parent.exists() and top.parent != top:
        top = top.parent
    try:
        target.mkdir(parents=True)
    except OSError as exc:
        raise RunError(f"Cannot create the run folder {target} ({exc.strerror}); choose "
                       "another --run-dir or --output-dir.") from None
    return top


def _grows_to(split_tasks: Callable[[], list[Task]], limit: int | None,
              only: str | None = None) -> Callable[[Any], bool]:
    """``grows(old_limit)``: whether every task an old ``--limit`` chose is among ``limit``'s.

    A run folder may be resumed with a larger ``--limit`` (or none) when this holds:
    the samples it has stay valid, and the run plays only the tasks it lacks.
    """

    def grows(old_limit: Any) -> bool:
        if old_limit is not None and (isinstance(old_limit, bool)
                                      or not isinstance(old_limit, int) or old_limit < 1):
            return False
        chosen = {t.id for t in select_tasks(split_tasks(), limit, only)}
        return {t.id for t in select_tasks(split_tasks(), old_limit, only)} <= chosen

    return grows


def _run_in(cfg: EvalConfig, target: Path, meta: dict[str, Any], benchmark: Any,
            wise_judge: Any, tasks: list[Task], progress: bool, write_html: bool,
            adopt: bool, grows: Callable[[Any], bool] | None = None) -> RunOutcome:
    """The run, once its folder exists and is locked."""
    identity = open_identity(target, meta, resume=bool(cfg.resume), adopt=adopt, grows=grows)
    run_id = identity["run_id"]
    try:
        (target / "images").mkdir(exist_ok=True)
        if wise_judge is None:
            (target / "gt").mkdir(exist_ok=True)
    except OSError as exc:
        raise RunError(f"Cannot write into the run folder {target} ({exc.strerror}); choose "
                       "another --run-dir.") from None
    log = SampleLog(target / "samples.jsonl",
                    check=lambda record: sample_problem(record, run_id))
    done = {s["id"]: s for s in log.read()}
    todo = [t for t in tasks if t.id not in done]
    if done:
        logger.info("Resuming %s: %d of %d samples already done", target, len(done), len(tasks))

    failed = _evaluate(cfg, benchmark, todo, target, log, done, progress, wise_judge, run_id)
    for task in tasks:
        gt_copy = target / "gt" / f"{task.id}.png"
        if task.gt_image and not gt_copy.exists():
            shutil.copyfile(task.gt_image, gt_copy)
    samples = [done[t.id] for t in tasks if t.id in done]
    atomic_write_json(target / "results.json", build_results(samples))
    versions = {"benchmark_version": getattr(benchmark, "version", ""),
                "knowgen_version": knowgen.__version__, "git": git_hash()}
    meta = {**meta, "run_id": run_id}
    if wise_judge is not None:
        summary = build_wise_summary(samples, tasks, meta, variant=benchmark.variant,
                                     judge=cfg.env.image_judge, **versions)
    else:
        summary = build_summary(samples, meta, **versions)
    atomic_write_json(target / "summary.json", summary)
    if write_html:
        from knowgen.eval.html_report import write_report

        write_report(target)
    return RunOutcome(target, summary, n_new=len(todo) - len(failed),
                      n_resumed=len(tasks) - len(todo), n_failed=len(failed))


def _evaluate(cfg: EvalConfig, benchmark: Any, todo: list[Task], target: Path,
              log: SampleLog, done: dict[str, dict[str, Any]], progress: bool,
              wise_judge: Any = None, run_id: str | None = None) -> list[str]:
    """Run ``todo`` on the configured executor; returns the ids not written.

    A task is not written when its judge failed (WISE) or, under Ray, when its actor
    died on every attempt; a rerun of the same command plays it again.

    Whichever executor plays the episodes, results come back to this thread, which
    alone writes the run folder: images first, then the sample line.
    """
    failed: list[str] = []
    if not todo:
        return failed
    executor = make_executor(cfg.executor, workers=cfg.workers)
    if executor.in_process:
        factory: Any = LocalEpisodes(cfg, benchmark, target / "images", wise_judge)
        items: list[Any] = todo
    else:
        factory, items = RemoteEpisodes(cfg, cwd=os.getcwd()), [t.id for t in todo]
    bar = tqdm(total=len(todo), desc=f"eval {cfg.policy}", unit="task", disable=not progress)
    stream = executor.map(factory, items)
    try:
        with contextlib.closing(stream):
            for index, result in stream:
                task = todo[index]
                if _keep(result, target, log, run_id):
                    done[task.id] = result.record
                else:
                    failed.append(task.id)
                bar.update(1)
    except BaseException as exc:
        bar.close()  # so that an error starts on a line of its own
        if not isinstance(exc, KeyboardInterrupt):
            raise
        raise _Interrupted(
            f"Interrupted after {len(done)} samples. Resume with: knowgen eval --resume {target}"
        ) from None
    bar.close()
    if failed:
        logger.warning("%d sample(s) could not be judged or were lost with their Ray actor "
                       "(%s); rerun the same command to retry them.", len(failed),
                       ", ".join(sorted(failed)[:20]))
    return failed


def _keep(result: EpisodeResult | TaskLost, target: Path, log: SampleLog,
          run_id: str | None) -> bool:
    """Write one finished task (its images, then its sample line); False: nothing to write."""
    if isinstance(result, TaskLost) or result.record is None:
        return False
    for name, data in result.images.items():
        if Path(name).name != name or name in ("", ".", ".."):
            raise RunError(f"A worker sent an image named {name!r}, which is not a file name.")
        atomic_write(target / "images" / name, lambda fh, data=data: fh.write(data))
    if run_id is not None:
        result.record["run_id"] = run_id
    log.append(result.record)
    return True
