"""Score tables for the terminal (rich)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.table import Table

from knowgen.errors import RunError

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


def comparison_table(summaries: list[dict[str, Any]], title: str = "knowgen results") -> Table:
    """One row per run: K-Score, the two groups, the four dimensions, text judge, reward."""
    splits = sorted({f"{s['benchmark'].split(':')[0]}/{s['split']}" for s in summaries})
    table = Table(title=f"{title} ({', '.join(splits)})", caption=(
        "K-Score and groups x100; F faithfulness, V visual correctness, T text accuracy, "
        "A aesthetics (0-1); text: text-judge score; R: mean reward"))
    for col in ("policy", "n", "K-Score", "science", "pop", "F", "V", "T", "A", "text", "R",
                "turns"):
        table.add_column(col, justify="left" if col == "policy" else "right")
    for s in summaries:
        groups = s["scores"]["groups"]
        overall = s["scores"]["overall_avg"]["avg_scores"]
        table.add_row(
            s["policy"],
            str(s["n_evaluated"]),
            f"{s['k_score']:.2f}",
            *(f"{100 * groups[g]['avg_scores']['overall']:.2f}" for g in _GROUP_LABELS),
            *(f"{overall[d]:.2f}" for d in
              ("faithfulness", "visual_correctness", "text_accuracy", "aesthetics")),
            f"{s['mean_text_score']:.2f}",
            f"{s['mean_reward']:.2f}",
            f"{s['mean_turns']:.1f}",
        )
    return table


def category_table(summary: dict[str, Any]) -> Table:
    """Per-category breakdown of one run."""
    table = Table(title=f"{summary['policy']} on {summary['benchmark']}/{summary['split']} by category")
    for col in ("category", "n", "overall", "faithful", "visual", "text", "aesthetic"):
        table.add_column(col, justify="left" if col == "category" else "right")
    for cat, item in summary["scores"]["categories"].items():
        a = item["avg_scores"]
        table.add_row(cat, str(item["count"]), f"{100 * a['overall']:.2f}",
                      *(f"{a[d]:.3f}" for d in
                        ("faithfulness", "visual_correctness", "text_accuracy", "aesthetics")))
    return table
