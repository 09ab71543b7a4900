"""The official evaluator's judged-output file, ``results_eval.json``: written and read back.

The file is the input results array with three fields added to every item, then
the three summary items::

    [{...the results item..., "eval_success": true,
      "scores": {"rationale", "faithfulness", "visual_correctness", "text_accuracy",
                 "aesthetics", "overall", "text_accuracy_na"},
      "error": null},
     {...an item not judged..., "eval_success": false, "scores": null, "error": "not_evaluated"},
     {...an item whose judging failed..., "eval_success": false, "scores": null,
      "error": "<what went wrong>"},
     {"summary_type": "science_and_knowledge", "avg_scores": {...}, "count": N},
     {"summary_type": "pop_culture_and_news", ...}, {"summary_type": "overall_avg", ...}]

``text_accuracy`` is 0.5 when ``text_accuracy_na`` is true. The official
evaluator's resume skips every item whose ``scores`` is an object, so a file
written here can be continued there, and :func:`scored_items` takes the scored
items of a file written there (or here) so that ``knowgen judge`` continues it.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from knowgen.eval.rundir import atomic_write_json
from knowgen.types import ImageJudgement

logger = logging.getLogger(__name__)

FILE_NAME = "results_eval.json"
#: The error text of an item that was not judged (``success`` false, an image missing).
NOT_EVALUATED = "not_evaluated"
_SCORE_KEYS = ("faithfulness", "visual_correctness", "text_accuracy", "aesthetics")


def judged_item(item: dict[str, Any], rec: dict[str, Any]) -> dict[str, Any]:
    """One output item: the results item with ``eval_success``, ``scores`` and ``error``.

    Args:
        item: The results item as read (all its fields are kept).
        rec: Its ``judged.jsonl`` record (``status`` scored, not_evaluated or error).
    """
    out = dict(item)
    out.pop("not_evaluated_reason", None)
    if rec["status"] == "scored":
        j = rec["judgement"]
        na = bool(j.get("text_accuracy_na"))
        out["eval_success"] = True
        out["scores"] = {
            "rationale": j.get("rationale", ""),
            "faithfulness": j["faithfulness"],
            "visual_correctness": j["visual_correctness"],
            "text_accuracy": 0.5 if na else j["text_accuracy"],
            "aesthetics": j["aesthetics"],
            "overall": j["overall"],
            "text_accuracy_na": na,
        }
        out["error"] = None
    elif rec["status"] == "error":
        err = rec.get("error") or {}
        out["eval_success"], out["scores"] = False, None
        out["error"] = f"{err.get('type', 'Error')}: {err.get('message', '')}"
    else:
        out["eval_success"], out["scores"] = False, None
        out["error"] = NOT_EVALUATED
        out["not_evaluated_reason"] = rec.get("reason", "")
    return out


def write(path: Path, items: list[dict[str, Any]], recs: list[dict[str, Any]],
          summary_items: list[dict[str, Any]]) -> None:
    """Write the judged output (atomically): one item per results item, then the summaries."""
    atomic_write_json(path, [judged_item(it, r) for it, r in zip(items, recs)] + summary_items)


def _usable_scores(scores: Any) -> bool:
    if not isinstance(scores, dict):
        return False
    return all(isinstance(scores.get(k), (int, float)) and not isinstance(scores.get(k), bool)
               for k in _SCORE_KEYS)


def judgement_of(scores: dict[str, Any], source: Path) -> dict[str, Any]:
    """A judged-output ``scores`` object as a judgement record (``ImageJudgement.to_dict`` keys)."""
    na = bool(scores.get("text_accuracy_na"))
    verdict = ImageJudgement(
        faithfulness=float(scores["faithfulness"]),
        visual_correctness=float(scores["visual_correctness"]),
        text_accuracy=0.5 if na else float(scores["text_accuracy"]),
        text_accuracy_na=na,
        aesthetics=float(scores["aesthetics"]),
        rationale=str(scores.get("rationale", "")),
        evidence={"imported_from": str(source)},
    )
    return verdict.to_dict()


def scored_items(data: Any, source: Path) -> dict[str, dict[str, Any]]:
    """The judgements of the items a judged output holds as scored, keyed by id.

    An item counts as scored when ``eval_success`` is true and ``scores`` holds the
    four dimensions as numbers; every other item is judged again (as the official
    evaluator's resume does).
    """
    if not isinstance(data, list):
        return {}
    found = {}
    for item in data:
        if (isinstance(item, dict) and "id" in item and item.get("eval_success") is True
                and _usable_scores(item.get("scores"))):
            found[str(item["id"])] = judgement_of(item["scores"], source)
    return found


def read_scored(path: Path) -> dict[str, dict[str, Any]]:
    """The scored items of the judged-output file at ``path`` (see :func:`scored_items`).

    A file that cannot be read as JSON is moved aside to ``<name>.damaged-<time>``
    (with a warning) and nothing is taken from it.
    """
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}")
        path.replace(aside)
        logger.warning("%s is not readable JSON (%s); moved it to %s and judge without it.",
                       path, exc, aside)
        return {}
    return scored_items(data, path)
