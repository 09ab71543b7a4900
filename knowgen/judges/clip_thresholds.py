"""Thresholds that put the clip judge's similarities on KnowGen's {0, 0.5, 1} scale.

A similarity ``s`` becomes a level by two cut points ``(half, full)``: 0 below
``half``, 0.5 from ``half``, 1 from ``full``. The cut points are fitted on
judged samples whose reference levels are known (:func:`fit_cut_points`): the
pair that reproduces the most reference levels exactly. A thresholds file
records them per calibrated dimension with the model they were fitted for and
the agreement reached (:class:`Thresholds`).

Example:
    >>> fit_cut_points([0.1, 0.2, 0.5, 0.6, 0.9], [0, 0, 0.5, 0.5, 1])
    (0.35, 0.75)
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from knowgen.errors import ConfigError, DataError
from knowgen.fileio import atomic_write_text

#: Version of the thresholds file layout.
SCHEMA_VERSION = 1
#: The dimensions whose levels come from fitted similarity thresholds.
CALIBRATED = ("visual_correctness", "faithfulness")
LEVELS = (0.0, 0.5, 1.0)


def to_level(value: float, cut_points: Sequence[float]) -> float:
    """``value`` on the {0, 0.5, 1} scale: 0 below ``half``, 0.5 from it, 1 from ``full``."""
    half, full = cut_points
    return 1.0 if value >= full else (0.5 if value >= half else 0.0)


def fit_cut_points(raw: Sequence[float], reference: Sequence[float]) -> tuple[float, float]:
    """The cut points ``(half, full)`` that reproduce the most ``reference`` levels.

    Candidates are the midpoints between neighbouring distinct raw values (plus one
    below and one above all of them); among equally good pairs the widest middle
    band wins, then the lowest. Ties in the data are thus broken the same way on
    every run.

    Args:
        raw: A similarity per sample.
        reference: The reference level of each sample, each 0, 0.5 or 1.

    Raises:
        DataError: when the lists differ in length, are empty, or a level is off-scale.
    """
    x = np.asarray(raw, dtype=np.float64)
    y = np.asarray(reference, dtype=np.float64)
    if x.shape != y.shape or x.size == 0:
        raise DataError(f"Cannot fit thresholds on {x.size} similarities and {y.size} levels.")
    if not np.all(np.isin(y, LEVELS)):
        raise DataError("Reference levels must each be 0, 0.5 or 1.")
    if not np.all(np.isfinite(x)):
        raise DataError("A similarity to fit thresholds on is not a finite number.")
    values = np.unique(x)
    cuts = np.concatenate([[values[0] - 1e-3], (values[:-1] + values[1:]) / 2, [values[-1] + 1e-3]])
    below = x[None, :] < cuts[:, None]  # (cut, sample)
    zeros_below = (below & (y == 0.0)).sum(axis=1)  # right zeros when half is this cut
    halves_below = (below & (y == 0.5)).sum(axis=1)
    ones_above = ((~below) & (y == 1.0)).sum(axis=1)  # right ones when full is this cut
    # hits[i, j] with half = cuts[i], full = cuts[j] (only i <= j counts)
    hits = zeros_below[:, None] + (halves_below[None, :] - halves_below[:, None]) + ones_above[None, :]
    i_idx, j_idx = np.triu_indices(len(cuts))
    scores = hits[i_idx, j_idx]
    top = scores == scores.max()
    width = cuts[j_idx] - cuts[i_idx]
    # widest middle band among the best, then the lowest half
    order = np.lexsort((cuts[i_idx][top], -width[top]))
    k = np.flatnonzero(top)[order[0]]
    best_pair = (float(cuts[i_idx[k]]), float(cuts[j_idx[k]]))
    return round(best_pair[0], 6), round(best_pair[1], 6)


def spearman(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Spearman's rank correlation (average ranks for ties); ``None`` when undefined."""
    x, y = _ranks(np.asarray(a, dtype=np.float64)), _ranks(np.asarray(b, dtype=np.float64))
    if x.size < 2 or x.std() == 0 or y.std() == 0:
        return None
    return round(float(np.corrcoef(x, y)[0, 1]), 4)


def _ranks(values: np.ndarray) -> np.ndarray:
    order = values.argsort(kind="mergesort")
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.arange(values.size, dtype=np.float64)
    for v in np.unique(values):  # ties share their mean rank
        tied = values == v
        ranks[tied] = ranks[tied].mean()
    return ranks


def agreement(levels: Sequence[float], reference: Sequence[float],
              raw: Sequence[float] | None = None) -> dict[str, Any]:
    """How well ``levels`` reproduce ``reference``.

    Returns:
        ``n``, ``exact`` (share of equal levels), ``spearman`` (of the levels, or of
        ``raw`` when given: how well the similarity ranks the samples, whatever the
        cut points) and ``confusion`` (``"reference->judged": count``).
    """
    pairs = list(zip(levels, reference))
    confusion: dict[str, int] = {}
    for got, want in pairs:
        key = f"{want:g}->{got:g}"
        confusion[key] = confusion.get(key, 0) + 1
    exact = sum(g == w for g, w in pairs) / len(pairs) if pairs else math.nan
    return {"n": len(pairs), "exact": round(exact, 4),
            "spearman": spearman(raw if raw is not None else levels, reference),
            "confusion": dict(sorted(confusion.items()))}


@dataclass
class Thresholds:
    """Fitted cut points of the clip judge, with what they were fitted for and on.

    Attributes:
        model: The open_clip model name.
        pretrained: The weights key (a tag, a file's name and size, or ``random``).
        cut_points: ``{dimension: [half, full]}`` for each of :data:`CALIBRATED`.
        fitted_on: A description of the samples (source and count).
        agreement: Agreement per dimension on those samples (see :func:`agreement`).
    """

    model: str
    pretrained: str
    cut_points: dict[str, list[float]]
    fitted_on: dict[str, Any] = field(default_factory=dict)
    agreement: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, "model": self.model,
                "pretrained": self.pretrained, "cut_points": self.cut_points,
                "fitted_on": self.fitted_on, "agreement": self.agreement}

    def save(self, path: str | Path) -> Path:
        """Write the thresholds file atomically; returns its path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Thresholds:
        """Read and validate a thresholds file.

        Raises:
            DataError: when the file is missing, not JSON, or lacks valid cut points.
        """
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError(f"Thresholds file {path} does not exist.") from None
        except (OSError, ValueError) as exc:
            raise DataError(f"Cannot read thresholds file {path}: {exc}") from exc
        if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
            raise DataError(f"{path} is not a clip thresholds file of schema version "
                            f"{SCHEMA_VERSION}; write a new one with 'knowgen judge calibrate'.")
        cuts = data.get("cut_points")
        if not isinstance(cuts, dict):
            raise DataError(f"{path} has no cut_points object.")
        for dim in CALIBRATED:
            pair = cuts.get(dim)
            if (not isinstance(pair, list) or len(pair) != 2
                    or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in pair)
                    or pair[0] > pair[1]):
                raise DataError(f"{path}: cut_points.{dim} must be [half, full] with half <= full.")
        return cls(model=str(data.get("model", "")), pretrained=str(data.get("pretrained", "")),
                   cut_points={d: [float(v) for v in cuts[d]] for d in CALIBRATED},
                   fitted_on=data.get("fitted_on") or {}, agreement=data.get("agreement") or {})

    def check_model(self, model: str, pretrained: str, path: str | Path) -> None:
        """Refuse thresholds fitted for another model or other weights.

        Raises:
            ConfigError: on a mismatch.
        """
        if (self.model, self.pretrained) != (model, pretrained):
            raise ConfigError(
                f"Thresholds file {path} was fitted for {self.model}/{self.pretrained}, not "
                f"{model}/{pretrained}: similarities of different models are not comparable. "
                "Fit thresholds for this model with 'knowgen judge calibrate'."
            )
