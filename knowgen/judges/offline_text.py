"""The offline text judge: would this answer let a perfect generator draw the GT?

Rule (deterministic; world tasks only). One check per requirement of the task:

1. for each required entity, one of the chosen references **is its official
   picture** (``ResolvedReference.image_id == entity.image_id``; a look-alike or
   another entity's picture does not count);
2. for each required text, the generation prompt **quotes it**: some string in
   quotation marks (``"..."``, ``'...'``, ``“...”``, ``‘...’``, ``«...»``, ``„...“``,
   ``「...」``) equals it after :func:`knowgen.judges.textnorm.normalize`. When the
   request asks for the text in capital letters (``facts.text_case == "upper"``) the
   quote must also be drawn so: written in capitals (at least
   :data:`~knowgen.judges.textnorm.UPPER_SHARE` of its letters) or followed by "in
   capital letters" (:func:`knowgen.quoting.asks_capitals`), as the image judge reads
   a caption in the wrong case as only half right;
3. for each required entity, the generation prompt **names it**: its name or
   one of its world aliases appears as whole words (accents and case ignored).

The score is the share of checks passed, rounded down to a multiple of 0.25,
so it is one of {0, 0.25, 0.5, 0.75, 1} and only a complete answer scores 1.
"""

from __future__ import annotations

import logging
import math
import re
from typing import Any

from knowgen.errors import DataError
from knowgen.judges.textnorm import mostly_capitals, normalize, words
from knowgen.quoting import asks_capitals
from knowgen.types import Answer, ResolvedReference, Task, TextJudgement
from knowgen.world.data import load_world

logger = logging.getLogger(__name__)

_QUOTE_RES = (
    re.compile(r'"([^"]+)"'),
    re.compile(r"“([^”]+)”"),
    re.compile(r"„([^“”]+)[“”]"),
    re.compile(r"«\s*([^»]+?)\s*»"),
    re.compile(r"「([^」]+)」"),
    re.compile(r"‘(.+?)’(?!\w)"),
    re.compile(r"(?<!\w)'(.+?)'(?!\w)"),
)


def quoted_strings(text: str) -> list[str]:
    """Every string found between quotation marks in ``text`` (all quote styles)."""
    return [quote for quote, _ in drawn_quotes(text)]


def drawn_quotes(text: str) -> list[tuple[str, bool]]:
    """Every quoted string of ``text`` (all quote styles) with whether a generator would
    draw it in capital letters: written in capitals, or followed by "in capital letters"."""
    found: list[tuple[str, bool]] = []
    for pattern in _QUOTE_RES:
        for m in pattern.finditer(text):
            found.append((m.group(1), mostly_capitals(m.group(1)) or asks_capitals(text, m.end())))
    return found


def names_in(prompt_words: list[str], name: str) -> bool:
    """True when the words of ``name`` appear consecutively in ``prompt_words``."""
    target = words(name)
    n = len(target)
    if not n:
        return False
    return any(prompt_words[i:i + n] == target for i in range(len(prompt_words) - n + 1))


class OfflineTextJudge:
    """Scores an answer by checking references, quoted texts and named entities.

    See the module docstring for the exact rule.

    Args:
        data_dir: World folder whose aliases count as names (default: the shipped world).
    """

    def __init__(self, data_dir: str | None = None):
        self.data_dir = data_dir

    def score(self, task: Task, answer: Answer, references: list[ResolvedReference]
              ) -> TextJudgement:
        """Return the share of passed checks, rounded down to a multiple of 0.25.

        Raises:
            DataError: when the task has no hidden facts (not a world task).
        """
        facts = task.facts
        if facts is None:
            raise DataError(
                f"Task {task.id!r} has no facts: the offline text judge needs world tasks "
                "(benchmark 'world'). Use an API judge (e.g. --text-judge openai) otherwise."
            )
        prompt = answer.gen_prompt or ""
        chosen = {r.image_id for r in references if r.image_id}
        upper = facts.text_case == "upper"
        quotes = {normalize(q) for q, capitals in drawn_quotes(prompt) if capitals or not upper}
        prompt_words = words(prompt)
        checks: list[dict[str, Any]] = []
        for ent in facts.entities:
            checks.append({"check": "reference", "entity_id": ent.entity_id,
                           "passed": ent.image_id in chosen})
        for text in facts.required_text:
            checks.append({"check": "quoted_text", "text": text, "upper": upper,
                           "passed": bool(normalize(text)) and normalize(text) in quotes})
        for ent in facts.entities:
            names = self._names(ent.entity_id, ent.name)
            checks.append({"check": "named", "entity_id": ent.entity_id,
                           "passed": any(names_in(prompt_words, n) for n in names)})
        if not checks:
            return TextJudgement(1.0, "Nothing is required.", {"checks": []})
        passed = sum(c["passed"] for c in checks)
        score = math.floor(4 * passed / len(checks)) / 4
        failed = [_describe(c) for c in checks if not c["passed"]]
        rationale = f"{passed}/{len(checks)} checks passed"
        rationale += (": missing " + "; ".join(failed) + ".") if failed else "."
        return TextJudgement(score, rationale, {"checks": checks, "passed": passed,
                                                "total": len(checks)})

    def _names(self, entity_id: str, name: str) -> list[str]:
        try:
            entity = load_world(self.data_dir).entities.get(entity_id)
        except DataError:
            logger.warning("World not readable; judging names of %s without aliases", entity_id)
            entity = None
        return [name, *(entity.aliases if entity else ())]


def _describe(check: dict[str, Any]) -> str:
    if check["check"] == "reference":
        return f"official picture of {check['entity_id']} among the references"
    if check["check"] == "quoted_text":
        case = " in capital letters" if check.get("upper") else ""
        return f"quoted text {check['text']!r}{case}"
    return f"name of {check['entity_id']} in the prompt"
