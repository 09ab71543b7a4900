"""The base of every task family: clues, their resolution, and the request they yield.

A family turns world facts into image requests. It knows how to *propose*
clues (a capital, a currency, a pair of neighbours, a city, ...), how to
*resolve* a clue against the whole world (every assignment of entities that
satisfies it), what text the picture must carry, and how to word the request
with the grammar of :mod:`knowgen.world.phrasing`. Only clues that resolve to
exactly one answer are used, so every task has a single right picture.

A clue is a small JSON-able dict; a subject *reference* inside a clue is
``{"fact": F, "value": V}`` where ``F`` is ``"name"`` (the subject is named) or
a fact that :meth:`knowgen.world.facts.WorldFacts.having` looks up
(``"capital"``, ``"demonym"``, ``"currency_name"``, ...).
"""

from __future__ import annotations

import hashlib
import itertools
import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from knowgen.world.facts import WorldFacts, caption, fold, key, readable
from knowgen.world.phrasing import Phraser, Slot, compose, text_sentence

Clue = dict[str, Any]
Answer = tuple[str, ...]


@dataclass(frozen=True)
class Candidate:
    """A clue with exactly one answer.

    Attributes:
        answer: Entity ids of the subjects, in layout order.
        clue: The clue (JSON-able).
        hops: The readable reasoning chain.
    """

    answer: Answer
    clue: Clue
    hops: tuple[str, ...]


@dataclass(frozen=True)
class TextPlan:
    """What the picture must say, and the sentence of the request that says so.

    Attributes:
        required: The strings that must be legible, in order.
        upper: The request asks for capital letters.
        style: ``"literal"`` (quoted in the request), ``"derived"`` (to be worked
            out) or ``"none"``.
        sentence: The request's sentence about the text.
    """

    required: tuple[str, ...]
    upper: bool
    style: str
    sentence: str


def ref(fact: str, value: str) -> dict[str, str]:
    """A subject reference of a clue."""
    return {"fact": fact, "value": value}


def resolve_ref(facts: WorldFacts, kind: str, reference: dict[str, str]) -> list[str]:
    """Ids of the entities of ``kind`` that a subject reference can mean."""
    if reference.get("fact") == "name":
        return facts.named(kind, str(reference.get("value", "")))
    ids = facts.having(str(reference.get("fact", "")), str(reference.get("value", "")))
    return [e for e in ids if facts.entity(e).kind == kind]


def written(name: str, upper: bool) -> str:
    """A name as the picture must show it: capitals when asked for, else as spelled (ASCII)."""
    return caption(name) if upper else fold(name)


def short(entity_id: str) -> str:
    """The part of an entity id after its kind (``"country/fr"`` -> ``"fr"``)."""
    return entity_id.split("/", 1)[1]


def chain(clue: str, entity_id: str, image_id: str) -> tuple[str, ...]:
    """Hops from a clue to an entity and its picture."""
    return (clue, entity_id, image_id)


def swap_key(a: str, b: str) -> bool:
    """A stable, order-independent coin flip that decides which of a pair comes first."""
    lo, hi = sorted((a, b))
    return hashlib.sha256(f"{lo}|{hi}".encode()).digest()[0] % 2 == (0 if a == lo else 1)


class Template:
    """Base of every task family. Subclasses set the class attributes and override
    :meth:`propose`, :meth:`resolve`, :meth:`subject` and :meth:`text`.

    Attributes:
        name: Family name (prefix of task ids).
        category: KnowGen category of its tasks.
        difficulty: ``"easy"``, ``"medium"`` or ``"hard"``.
        kind: Kind of the required entities (``"country"`` or ``"brand"``).
        names_answer: True when the request names its subjects outright; otherwise clues
            that contain a subject's name (a capital called "Kuwait City") are dropped.
        slots: The family's own grammar slots (the shared ones are in
            :mod:`knowgen.world.phrasing`).
        body_only: The clue's fact is stated only in page bodies, never in a
            search snippet, so an agent must browse to confirm it.
    """

    name = ""
    category = ""
    difficulty = ""
    kind = "country"
    names_answer = False
    slots: tuple[Slot, ...] = ()
    body_only = False

    # -- clues ---------------------------------------------------------------
    def propose(self, facts: WorldFacts) -> list[Candidate]:
        """Candidate clues (not yet checked for uniqueness)."""
        raise NotImplementedError

    def resolve(self, facts: WorldFacts, clue: Clue) -> list[Answer]:
        """Every assignment of world entities that satisfies ``clue``."""
        raise NotImplementedError

    def possible_texts(self, facts: WorldFacts, cand: Candidate) -> list[str]:
        """Every string the picture may have to show for ``cand`` (checked for legibility)."""
        return [facts.entity(e).name for e in cand.answer]

    def hidden_names(self, facts: WorldFacts, entity_id: str) -> list[str]:
        """Names of a subject that its clue must not contain (default: name and aliases)."""
        return facts.names_of(entity_id)

    # -- wording -------------------------------------------------------------
    def subject(self, facts: WorldFacts, cand: Candidate, ph: Phraser) -> str:
        """The noun phrase of what must be shown."""
        raise NotImplementedError

    def text(self, facts: WorldFacts, cand: Candidate, ph: Phraser) -> TextPlan:
        """What must be written (default: the subject's name, to be worked out)."""
        upper = ph.chance(0.6)
        what = ph.choice(self.name_phrases())
        required = (written(facts.entity(cand.answer[0]).name, upper),)
        return TextPlan(required, upper, "derived",
                        text_sentence(ph, "derived", what=what, upper=upper))

    def name_phrases(self) -> list[str]:
        """Noun phrases that ask for the subject's name."""
        if self.kind == "brand":
            return ["the brand's name", "the name of that brand", "the company's name"]
        return ["that country's name", "the name of the country", "the country's name"]

    def request(self, facts: WorldFacts, cand: Candidate, ph: Phraser) -> tuple[str, TextPlan]:
        """The request shown to the agent, and its text plan."""
        subject = self.subject(facts, cand, ph)
        plan = self.text(facts, cand, ph)
        return compose(ph, subject, plan.sentence), plan

    # -- checking --------------------------------------------------------------
    def candidates(self, facts: WorldFacts, seed: int) -> list[Candidate]:
        """Checked candidates: exactly one answer, usable entities, one clue per answer.

        When several clues lead to the same answer, one is picked with a seeded RNG.
        """
        groups: dict[Answer, list[Candidate]] = defaultdict(list)
        names = None if self.names_answer else facts
        for cand in self.propose(facts):
            if not all(facts.usable(e) for e in cand.answer):
                continue
            if not all(readable(t) for t in self.possible_texts(facts, cand)):
                continue
            if names is not None and gives_away(names, cand, self.hidden_names):
                continue
            if self.resolve(facts, cand.clue) == [cand.answer]:
                groups[cand.answer].append(cand)
        chosen = []
        for answer in sorted(groups):
            options = groups[answer]
            rng = random.Random(f"{seed}|{self.name}|{'|'.join(answer)}")
            chosen.append(options[rng.randrange(len(options))])
        return chosen

    def task_id(self, cand: Candidate) -> str:
        """Readable, stable id, e.g. ``flag_by_capital-bf`` or ``two_flags-fr-es``."""
        return "-".join([self.name, *(short(e) for e in cand.answer)])


#: Clue keys whose values name a kind of fact, not a fact.
_LABEL_KEYS = frozenset({"fact", "area_kind"})


def clue_strings(value: Any) -> list[str]:
    """Every fact string inside a clue (not the labels saying which fact it is)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        value = [v for k, v in value.items() if k not in _LABEL_KEYS]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in clue_strings(v)]
    return []


def gives_away(facts: WorldFacts, cand: Candidate,
               hidden: Callable[[WorldFacts, str], list[str]] | None = None) -> bool:
    """True when a string of the clue contains a name of a subject it should hide.

    ``hidden(facts, entity_id)`` lists those names (default: name and aliases).
    """
    hidden = hidden or (lambda f, e: f.names_of(e))
    names = {key(n) for e in cand.answer for n in hidden(facts, e)}
    texts = [key(t) for t in clue_strings(cand.clue)]
    return any(n and (f" {n} " in f" {t} ") for n in names for t in texts)


def product_answers(options: list[list[str]]) -> list[Answer]:
    """Assignments of distinct entities, one from each list of options."""
    return [combo for combo in itertools.product(*options) if len(set(combo)) == len(combo)]
