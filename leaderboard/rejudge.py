"""Spot checks: re-judge a seeded random share of a submission's samples.

The board's own judge scores the chosen samples again; when the submitted
per-sample overall scores and the board's disagree on average by more than
the tolerance, the entry is flagged (and shown flagged on the site).
"""

from __future__ import annotations

import logging
import math
import random
from typing import Any

from PIL import Image

from knowgen.errors import KnowgenError
from knowgen.leaderboard.scoring import sample_overall
from knowgen.registry import IMAGE_JUDGES

logger = logging.getLogger(__name__)

#: Default largest mean absolute difference of per-sample overall scores.
DEFAULT_TOLERANCE = 0.15


def choose(ids: list[str], fraction: float, seed: int) -> list[str]:
    """A seeded random ``fraction`` of ``ids`` (at least one when ``fraction`` > 0), sorted.

    Raises:
        ValueError: when ``fraction`` lies outside [0, 1].
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"rejudge_fraction must lie in [0, 1], got {fraction}")
    if fraction == 0.0 or not ids:
        return []
    k = min(len(ids), max(1, math.ceil(fraction * len(ids))))
    return sorted(random.Random(seed).sample(sorted(ids), k))


def rejudge(sub: Any, judge: Any, fraction: float, seed: int = 0,
            tolerance: float = DEFAULT_TOLERANCE) -> dict[str, Any]:
    """Re-judge a share of ``sub``'s evaluated samples with ``judge``.

    Args:
        sub: A :class:`knowgen.leaderboard.checks.LoadedSubmission` that passed validation.
        judge: An image-judge spec string (``"offline"``, ``"openai:model=gpt-4.1"``) or object.
        fraction: Share of the evaluated samples to re-judge, in [0, 1].
        seed: Seed of the random choice.
        tolerance: Largest accepted mean absolute difference of the per-sample overall.

    Returns:
        What was checked: the judge, the chosen samples with both scores, the mean
        absolute difference and whether the entry is flagged.
    """
    samples = {s.id: s for s in sub.samples
               if s.success and s.image_judgement is not None and s.id in sub.images}
    chosen = choose(list(samples), fraction, seed)
    name = judge if isinstance(judge, str) else type(judge).__name__
    scorer = IMAGE_JUDGES.create(judge) if isinstance(judge, str) else judge
    rows, diffs = [], []
    for sid in chosen:
        submitted = sample_overall(samples[sid].image_judgement.model_dump())
        try:
            with Image.open(sub.images[sid]) as im:
                image = im.convert("RGB")
            verdict = scorer.score(sub.tasks[sid], image)
        except KnowgenError as exc:
            logger.warning("re-judging %s failed: %s", sid, exc)
            rows.append({"id": sid, "submitted": submitted, "rejudged": None, "error": str(exc)})
            continue
        diffs.append(abs(verdict.overall - submitted))
        rows.append({"id": sid, "submitted": submitted, "rejudged": verdict.overall})
    mean_abs = round(sum(diffs) / len(diffs), 4) if diffs else None
    failed = sum(1 for r in rows if r["rejudged"] is None)
    flagged = bool(chosen) and (mean_abs is None or mean_abs > tolerance or failed > 0)
    return {"judge": name, "fraction": fraction, "seed": seed, "tolerance": tolerance,
            "n": len(chosen), "n_failed": failed, "mean_abs_diff": mean_abs,
            "flagged": flagged, "samples": rows}
