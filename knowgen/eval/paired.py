"""Paired comparison of two runs over the same tasks: the K-Score difference and its spread.

Two agents scored on the same 40 tasks differ by a few points as soon as two or three
tasks flip, so a difference alone does not say whether one agent is better. This module
pairs the runs task by task and resamples the tasks (a paired bootstrap, within each
KnowGen group so that both groups stay in every resample), recomputing both K-Scores
each time with the official aggregation. The 2.5th and 97.5th percentiles of the
differences give a 95% interval; an interval that holds 0 means the runs are not
separated on these tasks.

Example:
    >>> result = paired_comparison("runs/sft", "runs/grpo")
    >>> result.delta, result.low, result.high
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from knowgen.errors import RunError
from knowgen.eval.results import sample_scores
from knowgen.eval.rundir import read_samples
from knowgen.eval.scoring import SampleScore, aggregate_knowgen, group_of
from knowgen.types import task_family

#: A task whose overall score moved by less than this counts as unchanged.
SAME = 0.005


@dataclass(frozen=True)
class TaskScore:
    """One evaluated task of a run: its judged dimensions and its overall score (0-1)."""

    score: SampleScore
    overall: float


@dataclass(frozen=True)
class PairedResult:
    """``other`` against ``base`` on the tasks both evaluated.

    Attributes:
        n_tasks: Tasks evaluated in both runs (the pairs).
        k_base: K-Score of ``base`` on those tasks.
        k_other: K-Score of ``other`` on those tasks.
        delta: ``k_other - k_base``.
        low: 2.5th percentile of the resampled differences.
        high: 97.5th percentile of the resampled differences.
        better: Tasks whose overall score rose by ``SAME`` or more.
        worse: Tasks whose overall score fell by ``SAME`` or more.
        resamples: Bootstrap resamples drawn.
    """

    n_tasks: int
    k_base: float
    k_other: float
    delta: float
    low: float
    high: float
    better: int
    worse: int
    resamples: int

    @property
    def separated(self) -> bool:
        """Whether the 95% interval leaves out 0."""
        return self.low > 0 or self.high < 0


def run_scores(run_dir: str | Path) -> dict[str, TaskScore]:
    """The evaluated tasks of a finished run folder, by task id.

    Reads the samples a resume of the run would keep (:func:`knowgen.eval.rundir.read_samples`)
    for the tasks its ``results.json`` lists.

    Raises:
        RunError: when the folder's ``run.json``, ``results.json`` or ``samples.jsonl``
            is missing or cannot be read, or when a line of ``samples.jsonl`` is one a
            resume would set aside.
    """
    folder = Path(run_dir)
    try:
        _, samples, problems = read_samples(folder)
        listed = {str(item["id"]) for item in
                  json.loads((folder / "results.json").read_text(encoding="utf-8"))}
    except (RunError, OSError, UnicodeDecodeError, ValueError, TypeError, KeyError,
            AttributeError) as exc:
        raise RunError(f"Cannot pair the tasks of {run_dir} ({exc}); pass folders of finished "
                       f"'knowgen eval' runs (finish one with 'knowgen eval --resume "
                       f"{run_dir}').") from None
    if problems:
        raise RunError(f"{folder / 'samples.jsonl'} {problems[0]}"
                       f"{f' (and {len(problems) - 1} more)' if len(problems) > 1 else ''}; "
                       f"'knowgen eval --resume {run_dir}' sets such lines aside "
                       "(samples.quarantine.jsonl) and plays their tasks again.")
    records = {i: r for i, r in samples.items() if i in listed}
    try:  # scored as the run's summary was
        return {s.id: TaskScore(s, float(records[s.id]["image_judgement"]["overall"]))
                for s in sample_scores(list(records.values()))}
    except (KeyError, TypeError, ValueError) as exc:
        raise RunError(f"A sample of {run_dir} lacks what its score needs ({exc!r}); "
                       f"rerun 'knowgen eval --resume {run_dir}' after moving it aside.") from None


def k_interval(run_dir: str | Path, resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """A 95% interval for the K-Score of one run: its tasks resampled within each group.

    Raises:
        RunError: for an unreadable folder, fewer than 100 resamples, or no scored task.
    """
    _check_resamples(resamples)
    return _interval(run_scores(run_dir), str(run_dir), resamples, seed)


def _interval(scores: dict[str, TaskScore], name: str, resamples: int,
              seed: int) -> tuple[float, float]:
    strata = _strata(scores, sorted(i for i in scores if group_of(scores[i].score.category)))
    if not strata:
        raise RunError(f"{name} has no evaluated task of a KnowGen group to resample.")
    rng = random.Random(seed)
    ks = sorted(_k(scores, _draw(rng, strata)) for _ in range(resamples))
    return round(_percentile(ks, 0.025), 2), round(_percentile(ks, 0.975), 2)


def paired_comparison(base_dir: str | Path, other_dir: str | Path, resamples: int = 2000,
                      seed: int = 0) -> PairedResult:
    """Compare ``other_dir`` with ``base_dir`` on the tasks both runs evaluated.

    Args:
        base_dir: The run compared against.
        other_dir: The run compared.
        resamples: Bootstrap resamples (at least 100).
        seed: Seed of the resampling, so the interval is the same on every call.

    Raises:
        RunError: for unreadable folders, fewer than 100 resamples, or when the runs
            share no task of a KnowGen group.
    """
    _check_resamples(resamples)
    return _paired(run_scores(base_dir), run_scores(other_dir), str(base_dir), str(other_dir),
                   resamples, seed)


def compare_runs(run_dirs: Sequence[str | Path], resamples: int = 2000, seed: int = 0,
                 scores: Sequence[dict[str, TaskScore]] | None = None
                 ) -> tuple[tuple[float, float], list[tuple[str | Path, PairedResult,
                                                        tuple[float, float]]]]:
    """The first run's K interval, and each later run's comparison with it and own interval.

    Each folder is read once, or not at all when ``scores`` gives each run's
    :func:`run_scores` already read. Raises ``RunError`` as :func:`paired_comparison` does.
    """
    _check_resamples(resamples)
    if scores is None:
        scores = [run_scores(d) for d in run_dirs]
    elif len(scores) != len(run_dirs):
        raise ValueError(f"{len(run_dirs)} run folders but {len(scores)} score sets.")
    first = _interval(scores[0], str(run_dirs[0]), resamples, seed)
    return first, [(d, _paired(scores[0], s, str(run_dirs[0]), str(d), resamples, seed),
                    _interval(s, str(d), resamples, seed))
                   for d, s in zip(run_dirs[1:], scores[1:], strict=True)]


def family_means(scores: dict[str, TaskScore]) -> dict[str, tuple[int, float]]:
    """Each task family's count of evaluated tasks and mean overall score (0-1)."""
    by_family: dict[str, list[float]] = {}
    for task_id, task in scores.items():
        by_family.setdefault(task_family(task_id), []).append(task.overall)
    return {name: (len(values), sum(values) / len(values)) for name, values in by_family.items()}


def _check_resamples(resamples: int) -> None:
    if resamples < 100:
        raise RunError(f"--resamples must be at least 100, got {resamples}.")


def _paired(base: dict[str, TaskScore], other: dict[str, TaskScore], base_name: str,
            other_name: str, resamples: int, seed: int) -> PairedResult:
    ids = sorted(i for i in set(base) & set(other) if group_of(base[i].score.category))
    if not ids:
        raise RunError(f"{base_name} and {other_name} share no evaluated task; compare runs of "
                       "the same benchmark and split.")
    strata = _strata(base, ids)
    rng = random.Random(seed)
    deltas = []
    for _ in range(resamples):
        drawn = _draw(rng, strata)
        deltas.append(_k(other, drawn) - _k(base, drawn))
    deltas.sort()
    moves = [other[i].overall - base[i].overall for i in ids]
    k_base, k_other = _k(base, ids), _k(other, ids)
    return PairedResult(
        n_tasks=len(ids), k_base=k_base, k_other=k_other, delta=round(k_other - k_base, 2),
        low=round(_percentile(deltas, 0.025), 2), high=round(_percentile(deltas, 0.975), 2),
        better=sum(m >= SAME for m in moves), worse=sum(m <= -SAME for m in moves),
        resamples=resamples)


def _strata(scores: dict[str, TaskScore], ids: Sequence[str]) -> list[list[str]]:
    """``ids`` by KnowGen group, so that every resample keeps each group's size."""
    by_group: dict[str, list[str]] = {}
    for i in ids:
        by_group.setdefault(str(group_of(scores[i].score.category)), []).append(i)
    return list(by_group.values())


def _draw(rng: random.Random, strata: list[list[str]]) -> list[str]:
    return [rng.choice(members) for members in strata for _ in members]


def _k(scores: dict[str, TaskScore], ids: Sequence[str]) -> float:
    return aggregate_knowgen(scores[i].score for i in ids).k_score


def _percentile(sorted_values: list[float], q: float) -> float:
    """The ``q`` quantile of ``sorted_values``, interpolated between neighbours."""
    at = q * (len(sorted_values) - 1)
    lo = int(at)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (at - lo)
