"""Turn finished ``knowgen eval`` run folders into submissions and a board.

Maintainers seed a board (and tests build one) from runs on the offline world::

    knowgen eval --policy direct --limit 20 --run-dir runs/direct --benchmark world:cache_dir=/tmp/kg
    knowgen eval --policy oracle --limit 20 --run-dir runs/oracle --benchmark world:cache_dir=/tmp/kg
    python -m knowgen.leaderboard seed runs/direct runs/oracle --board board --site site

:func:`submission_meta` derives ``submission.yaml`` from a run's ``run.json`` and
``summary.json``; :func:`write_submission` writes a submission folder or archive;
:func:`seed_board` adds runs to a board and optionally builds the site.
"""

from __future__ import annotations

import json
import logging
import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from knowgen.errors import DataError, KnowgenError
from knowgen.leaderboard.benchmarks import IDENTITY_ARGS, BenchmarkSpecs
from knowgen.leaderboard.board import DuplicateEntry, add
from knowgen.leaderboard.schema import FORMAT_VERSION, SubmissionMeta
from knowgen.registry import parse_spec

logger = logging.getLogger(__name__)

#: Files of a run folder that go into a submission (besides the images).
RUN_FILES = ("results.json", "samples.jsonl", "summary.json")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"Cannot read {path} ({exc}); is this a finished knowgen run "
                        "folder?") from exc


def submission_meta(run_dir: str | Path, **fields: Any) -> dict[str, Any]:
    """``submission.yaml`` content for a finished run; ``fields`` override what is derived.

    Raises:
        DataError: when the run folder lacks ``run.json`` or ``summary.json``.
    """
    run = Path(run_dir)
    info, summary = _read_json(run / "run.json"), _read_json(run / "summary.json")
    bench, bench_args = parse_spec(str(info["benchmark"]))
    config = info.get("config", {})
    judge, judge_args = parse_spec(str(config.get("image_judge", "offline")))
    policy = parse_spec(str(info["policy"]))[0]
    generator = parse_spec(str(config.get("generator", "compositor")))[0]
    meta: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "system": f"{policy} + {generator}",
        "agent": policy,
        "generator": generator,
        "judge": {"name": judge, "model": str(judge_args.get("model", judge))},
        "benchmark": {"name": bench, "version": str(summary["benchmark_version"]),
                      "split": str(info["split"]), "limit": info.get("limit"),
                      "args": {k: v for k, v in bench_args.items()
                               if k in IDENTITY_ARGS.get(bench, ())}},
        "date": str(summary.get("written_at", ""))[:10],
        "contact": "knowgen maintainers",
    }
    meta.update(fields)
    SubmissionMeta.model_validate(meta)
    return meta


def _members(run: Path) -> list[tuple[Path, str]]:
    """(file, name in the submission) for every file a submission of ``run`` holds."""
    out = [(run / name, name) for name in RUN_FILES if (run / name).is_file()]
    for item in _read_json(run / "results.json"):
        rel = item.get("output_path")
        if item.get("success") and rel:
            out.append((run / rel, rel))
    return out


def write_submission(run_dir: str | Path, dest: str | Path,
                     meta: Mapping[str, Any] | None = None) -> Path:
    """Write a submission of ``run_dir`` to ``dest``: a folder, or a ``.zip`` / ``.tar.gz``.

    Args:
        run_dir: A finished run folder.
        dest: Where to write; its name decides the form.
        meta: ``submission.yaml`` content (default: :func:`submission_meta`).

    Returns:
        ``dest``.
    """
    run, out = Path(run_dir), Path(dest)
    text = yaml.safe_dump(dict(meta or submission_meta(run)), sort_keys=False)
    members = _members(run)
    name = out.name.lower()
    out.parent.mkdir(parents=True, exist_ok=True)
    if name.endswith(".zip"):
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("submission.yaml", text)
            for src, arc in members:
                zf.write(src, arc)
    elif name.endswith((".tar.gz", ".tgz")):
        with tarfile.open(out, "w:gz") as tf:
            staged = Path(tempfile.mkdtemp(prefix=".meta-", dir=out.parent))
            try:
                (staged / "submission.yaml").write_text(text, encoding="utf-8")
                tf.add(staged / "submission.yaml", "submission.yaml")
            finally:
                shutil.rmtree(staged, ignore_errors=True)
            for src, arc in members:
                tf.add(src, arc)
    else:
        out.mkdir(parents=True, exist_ok=True)
        (out / "submission.yaml").write_text(text, encoding="utf-8")
        for src, arc in members:
            (out / arc).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, out / arc)
    return out


def seed_board(run_dirs: Iterable[str | Path], board_dir: str | Path,
               site_dir: str | Path | None = None, benchmarks: BenchmarkSpecs | None = None,
               rejudge_fraction: float = 0.0, judge: Any = None,
               outcome: SeedOutcome | None = None) -> list[dict[str, Any]]:
    """Add every run in ``run_dirs`` to the board, then build the site when ``site_dir`` is set.

    Each run's own benchmark spec (its ``cache_dir`` included) is used unless
    ``benchmarks`` names one. Submissions are staged inside the board folder.
    Seeding can be rerun: a run whose results are on the board already is
    skipped, and a run that cannot be added does not stop the others (the
    site is still built from what the board holds).

    Args:
        run_dirs: Finished run folders.
        board_dir: The board folder (created when missing).
        site_dir: Also build the site here.
        benchmarks: Benchmark spec per name.
        rejudge_fraction: See :func:`knowgen.leaderboard.add`.
        judge: See :func:`knowgen.leaderboard.add`.
        outcome: Filled with what was added, skipped and refused, when given.

    Returns:
        The entries added by this call.

    Raises:
        DataError: after every run was tried, when one or more could not be added
            (the message names each and why).
    """
    board = Path(board_dir)
    board.mkdir(parents=True, exist_ok=True)
    done = outcome if outcome is not None else SeedOutcome()
    for run in map(Path, run_dirs):
        try:
            spec = str(_read_json(run / "run.json")["benchmark"])
            specs = dict(benchmarks or {})
            specs.setdefault(parse_spec(spec)[0], spec)
            staged = Path(tempfile.mkdtemp(prefix=".seed-", dir=board))
            try:
                sub = write_submission(run, staged / "submission")
                done.added.append(add(sub, board, rejudge_fraction=rejudge_fraction,
                                      judge=judge, benchmarks=specs))
            finally:
                shutil.rmtree(staged, ignore_errors=True)
        except DuplicateEntry as exc:
            logger.info("%s is on the board already as %s; skipped.", run, exc.entry_id)
            done.skipped.append((str(run), exc.entry_id))
        except (KnowgenError, OSError, KeyError, TypeError) as exc:
            logger.warning("Cannot add %s: %s", run, _one_line(exc))
            done.failed.append((str(run), _one_line(exc)))
    if site_dir is not None:
        from knowgen.leaderboard.site import build

        build(board, site_dir)
    if done.failed:
        listed = "; ".join(f"{run}: {why}" for run, why in done.failed)
        raise DataError(f"{len(done.failed)} of {len(done.failed) + len(done.added) + len(done.skipped)} "
                        f"run(s) could not be added ({listed}). Fix or leave them out and run "
                        "the same command again: runs already on the board are skipped.")
    return done.added


@dataclass
class SeedOutcome:
    """What :func:`seed_board` did with each run."""

    added: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """``(run folder, entry id)`` of runs already on the board."""
    failed: list[tuple[str, str]] = field(default_factory=list)
    """``(run folder, reason)`` of runs that could not be added."""


def _one_line(exc: BaseException) -> str:
    text = str(exc) if not isinstance(exc, KeyError) else f"run.json lacks {exc}"
    return " ".join(text.split())[:500]
