"""Score tables for the terminal (rich)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from rich.table import Table

from knowgen.errors import RunError

logger = logging.getLogger(__name__)

_GROUP_LABELS = {
    "science_and_knowledge": "science",
    "pop_culture_and_news": "pop culture",
}


def load_summary(run_dir: str | Path) -> dict[str, Any]:
    """Read ``summary.json`` of a run folder.

    Raises:
        RunError: when the folder has no readable summary.
    """
    folder = Path(run_dir)
    path = folder / "summary.json"
    if not folder.exists():
        raise RunError(f"{run_dir} does not exist; pass run folders written by 'knowgen eval' "
                       "(e.g. runs/world__direct__0__*).")
    if not folder.is_dir():
        raise RunError(f"{run_dir} is a file, not a run folder; pass the folder that holds "
                       "its summary.json.")
    if not path.is_file():
        if (folder / "run.json").is_file():
            raise RunError(f"{run_dir} has no summary.json: its run did not finish. Finish it "
                           f"with 'knowgen eval --resume {run_dir}', or leave it out.")
        raise RunError(f"{run_dir} is not a knowgen run folder (it has no summary.json); pass "
                       "folders written by 'knowgen eval'.")
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise RunError(f"{path} cannot be read ({exc}); rerun 'knowgen eval --resume "
                       f"{run_dir}' to write it again.") from None
    if not isinstance(data, dict):
        raise RunError(f"{path} does not hold a run summary; rerun 'knowgen eval --resume "
                       f"{run_dir}' to write it again.")
    return data


def run_label(summary: dict[str, Any]) -> str:
    """``benchmark/split`` of a run (the benchmark's name without its arguments)."""
    return f"{summary['benchmark'].split(':')[0]}/{summary['split']}"


def comparison_table(summaries: list[dict[str, Any]], title: str = "knowgen results") -> Table:
    """One row per run: what ran, K-Score, the two groups, the four dimensions, answer score, reward."""
    table = Table(title=title, caption=(
        "run: policy · benchmark/split · seed; tasks: judged / in the run; K-Score and groups x100; "
        "F faithfulness, V visual correctness, T text accuracy (text in the image), "
        "A aesthetics (0-1); answer: text-judge score of the agent's answer (0-1); "
        "R: mean reward"))
    table.add_column("run", justify="left", overflow="fold", ratio=1)  # a long policy folds
    for col in ("tasks", "K-Score", "science", "pop", "F", "V", "T", "A", "answer", "R",
                "turns"):
        table.add_column(col, justify="right", no_wrap=True, min_width=len(col))
    for s in summaries:
        groups = s["scores"]["groups"]
        overall = s["scores"]["overall_avg"]["avg_scores"]
        table.add_row(
            f"{s['policy']} · {run_label(s)} · {s.get('seed', '?')}",
            f"{s['n_evaluated']}/{s.get('n_samples', s['n_evaluated'])}",
            f"{s['k_score']:.2f}",
            *(f"{100 * groups[g]['avg_scores']['overall']:.2f}" for g in _GROUP_LABELS),
            *(f"{overall[d]:.2f}" for d in
              ("faithfulness", "visual_correctness", "text_accuracy", "aesthetics")),
            f"{s['mean_text_score']:.2f}",
            f"{s['mean_reward']:.2f}",
            f"{s['mean_turns']:.1f}",
        )
    return table


def _task_ids(run_dir: str | Path) -> frozenset[str] | None:
    """The task ids of a run folder (from ``results.json``), or ``None`` when unreadable."""
    try:
        items = json.loads((Path(run_dir) / "results.json").read_text(encoding="utf-8"))
        return frozenset(str(i["id"]) for i in items if isinstance(i, dict) and "id" in i)
    except (OSError, ValueError, TypeError):
        return None


def task_set_warning(run_dirs: list[str | Path], summaries: list[dict[str, Any]]) -> str | None:
    """A warning when the runs did not all cover the same tasks (``None`` when they did).

    Runs of different benchmarks or splits, or with different task ids (e.g. one run
    with ``--limit 20`` and one over the whole split), are not comparable row by row.
    """
    labels = {run_label(s) for s in summaries}
    if len(labels) > 1:
        return (f"these runs are on different benchmarks or splits ({', '.join(sorted(labels))}); "
                "their scores are not comparable.")
    sets = {str(d): _task_ids(d) for d in run_dirs}
    known = {d: ids for d, ids in sets.items() if ids is not None}
    if len(set(known.values())) > 1:
        sizes = ", ".join(f"{Path(d).name}: {len(ids)}" for d, ids in known.items())
        return (f"these runs cover different task sets ({sizes} tasks); compare runs over the "
                "same tasks (same --split and --limit) for a fair comparison.")
    return None


def category_table(summary: dict[str, Any]) -> Table:
    """Per-category breakdown of one run (overall x100, the dimensions 0-1)."""
    table = Table(title=f"{summary['policy']} on {run_label(summary)} by category",
                  caption="overall x100; faithful, visual, text acc. (text in the image), "
                  "aesthetic: 0-1")
    for col in ("category", "n", "overall", "faithful", "visual", "text acc.", "aesthetic"):
        table.add_column(col, justify="left" if col == "category" else "right")
    for cat, item in summary["scores"]["categories"].items():
        a = item["avg_scores"]
        table.add_row(cat, str(item["count"]), f"{100 * a['overall']:.2f}",
                      *(f"{a[d]:.3f}" for d in
                        ("faithfulness", "visual_correctness", "text_accuracy", "aesthetics")))
    return table


def paired_table(base_dir: str | Path, base_interval: tuple[float, float],
                 results: list[tuple[str | Path, Any, tuple[float, float]]]) -> Table:
    """Each run's K-Score interval, and each later run against ``base_dir`` task by task.

    ``results``: ``(run folder, PairedResult, its K interval)`` per later run
    (:mod:`knowgen.eval.paired`).
    """
    table = Table(title="the same tasks, resampled", caption=(
        "K 95%: interval of the run's K-Score; delta: K-Score minus the first run's on the "
        "tasks both evaluated, with its paired interval; better/worse: tasks whose overall "
        "score moved by 0.005 or more; an interval of delta holding 0: not separated"))
    table.add_column("run", justify="left", overflow="fold", ratio=1)
    for col in ("K 95%", "tasks", "delta", "delta 95%", "better", "worse"):
        table.add_column(col, justify="right", no_wrap=True, min_width=len(col))

    def span(low: float, high: float, sign: str = "") -> str:
        return f"[{low:{sign}.2f}, {high:{sign}.2f}]"

    table.add_row(f"{base_dir} (first)", span(*base_interval), "", "", "", "", "")
    for run_dir, r, interval in results:
        table.add_row(str(run_dir), span(*interval), str(r.n_tasks), f"{r.delta:+.2f}",
                      span(r.low, r.high, "+"), str(r.better), str(r.worse))
    return table


def family_table(run_dirs: list[str | Path], scores: list[dict[str, Any]]) -> Table:
    """Mean overall score per task family, one column per run, weakest family first.

    ``scores``: each run's :func:`knowgen.eval.paired.run_scores`. A later run's cell also
    gives its difference from the first run on the tasks of that family both evaluated.
    """
    from knowgen.eval.paired import family_means
    from knowgen.types import task_family

    table = Table(title="by task family (mean overall score, 0-1)", caption=(
        "family: the part of a task id before its first '-' (the offline world's template); "
        "tasks: the first run's; a later run's cell: its mean on its own tasks of that family, "
        "then its difference from the first run on the tasks both evaluated"))
    table.add_column("family", justify="left", overflow="fold", ratio=1)
    table.add_column("tasks", justify="right", no_wrap=True)
    for run_dir in run_dirs:
        table.add_column(str(run_dir), justify="right", overflow="fold")
    means = [family_means(s) for s in scores]
    families = sorted(set().union(*means), key=lambda f: (means[0].get(f, (0, 2.0))[1], f))
    for family in families:
        row = [family, str(means[0].get(family, (0, 0))[0])]
        for k, run in enumerate(means):
            if family not in run:
                row.append("-")
                continue
            cell = f"{run[family][1]:.2f}"
            if k:
                both = [i for i in scores[k] if task_family(i) == family and i in scores[0]]
                if both:
                    delta = sum(scores[k][i].overall - scores[0][i].overall for i in both)
                    cell += f" ({delta / len(both):+.2f})"
            row.append(cell)
        table.add_row(*row)
    return table
