"""Task templates over the offline world: clue resolvers and prompt wording.

A template turns world facts into image requests. Each one knows how to
*propose* clues (a capital, a currency code, a pair of neighbours, ...), how to
*resolve* a clue against the whole world (every entity that matches it), and
how to word the request. Only clues that resolve to exactly one answer are
ever used, so every task has a single right picture.

A clue is a small JSON-able dict; :meth:`Template.resolve` returns every
assignment of entities (one entity id per subject, in layout order) that
satisfies it.
"""

from __future__ import annotations

import hashlib
import itertools
import random
import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from knowgen.world.data import Entity, World

Clue = dict[str, Any]
Answer = tuple[str, ...]

#: Characters a required text may hold (after folding): what OCR reads reliably.
_READABLE = re.compile(r"[A-Z0-9][A-Z0-9 ,.'()&+-]*")
_THIN = set("I1|.,'-")
#: Longest required text, in characters (longer ones get too small to read).
MAX_TEXT = 36


def caption(name: str) -> str:
    """``name`` in capital letters with accents stripped, e.g. ``"Curaçao"`` -> ``"CURACAO"``."""
    decomposed = unicodedata.normalize("NFKD", name)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    plain = plain.encode("ascii", "ignore").decode("ascii")
    return " ".join(plain.upper().split())


def readable(text: str) -> bool:
    """True when ``text`` uses only characters OCR reads back reliably.

    Words made only of thin strokes (``"I"``, ``"III"``) are refused: OCR engines
    take a lone vertical bar for a rule, not a letter.
    """
    words = text.split(" ")
    return bool(_READABLE.fullmatch(text)) and not any(set(w) <= _THIN for w in words)


class WorldFacts:
    """Lookups over one world that the templates share (built once per generation).

    Args:
        world: A loaded world.
    """

    def __init__(self, world: World):
        self.world = world
        self.countries = world.entities_of("country")
        self.brands = world.entities_of("brand")
        self.neighbours: dict[str, set[str]] = defaultdict(set)
        for country in self.countries:
            for other in country.facts.get("borders", []) or []:
                if other in world.entities and other != country.id:
                    self.neighbours[country.id].add(other)
                    self.neighbours[other].add(country.id)
        self._names: dict[tuple[str, str], list[str]] = defaultdict(list)
        for ent in self.countries + self.brands:
            for label in {ent.name.casefold(), *(a.casefold() for a in ent.aliases)}:
                self._names[(ent.kind, label)].append(ent.id)
        self._capitals: dict[str, list[str]] = defaultdict(list)
        self._currencies: dict[str, list[str]] = defaultdict(list)
        for country in self.countries:
            if country.facts.get("capital"):
                self._capitals[str(country.facts["capital"]).casefold()].append(country.id)
            codes = {str(c.get("code", "")).upper() for c in country.facts.get("currencies") or []}
            for code in sorted(codes - {""}):
                self._currencies[code].append(country.id)
        self._hexes: dict[str, list[str]] = defaultdict(list)
        for brand in self.brands:
            self._hexes[str(brand.facts.get("hex", "")).upper()].append(brand.id)
        self._usable: dict[str, bool] = {}

    def named(self, kind: str, name: str) -> list[str]:
        """Ids of the entities of ``kind`` whose name or alias is ``name`` (any case)."""
        return list(self._names.get((kind, name.casefold()), []))

    def with_capital(self, capital: str) -> list[str]:
        """Ids of the countries whose capital is ``capital`` (any case)."""
        return list(self._capitals.get(capital.casefold(), []))

    def paying_with(self, code: str) -> list[str]:
        """Ids of the countries that use the currency with ISO 4217 ``code``."""
        return list(self._currencies.get(code.upper(), []))

    def coloured(self, hex_colour: str) -> list[str]:
        """Ids of the brands whose official colour is ``hex_colour`` (``"#RRGGBB"``, any case)."""
        return list(self._hexes.get(hex_colour.upper(), []))

    def entity(self, entity_id: str) -> Entity:
        """The entity with id ``entity_id``."""
        return self.world.entities[entity_id]

    def usable(self, entity_id: str) -> bool:
        """True when the entity can be required in an image: official image, page, readable name."""
        if entity_id not in self._usable:
            ent = self.world.entities.get(entity_id)
            self._usable[entity_id] = (
                ent is not None
                and ent.image_id in self.world.images
                and ent.page_url in self.world.pages
                and readable(caption(ent.name))
            )
        return self._usable[entity_id]


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


def _short(entity_id: str) -> str:
    return entity_id.split("/", 1)[1]


def _chain(clue: str, entity: Entity) -> tuple[str, ...]:
    return (clue, entity.id, entity.image_id)


class Template:
    """Base of every template. Subclasses set the class attributes and override
    :meth:`propose`, :meth:`resolve` and :meth:`prompt`.

    Attributes:
        name: Template name (prefix of task ids).
        category: KnowGen category of its tasks.
        difficulty: ``"easy"``, ``"medium"`` or ``"hard"``.
        kind: Kind of the required entities.
        names_answer: True when the request names its subjects outright; otherwise clues
            that contain a subject's name (a capital called "Kuwait City") are dropped.
    """

    name = ""
    category = ""
    difficulty = ""
    kind = "country"
    names_answer = False

    def propose(self, facts: WorldFacts) -> list[Candidate]:
        """Candidate clues (not yet checked for uniqueness)."""
        raise NotImplementedError

    def resolve(self, facts: WorldFacts, clue: Clue) -> list[Answer]:
        """Every assignment of world entities that satisfies ``clue``."""
        raise NotImplementedError

    def prompt(self, facts: WorldFacts, cand: Candidate, rng: random.Random) -> str:
        """The request shown to the agent."""
        raise NotImplementedError

    def required_text(self, facts: WorldFacts, cand: Candidate) -> tuple[str, ...]:
        """Text that must be legible in the image (default: the subject's name in capitals)."""
        return (caption(facts.entity(cand.answer[0]).name),)

    def candidates(self, facts: WorldFacts, seed: int) -> list[Candidate]:
        """Checked candidates: exactly one answer, usable entities, one clue per answer.

        When several clues lead to the same answer, one is picked with a seeded RNG.
        """
        groups: dict[Answer, list[Candidate]] = defaultdict(list)
        for cand in self.propose(facts):
            if not all(facts.usable(e) for e in cand.answer):
                continue
            texts = self.required_text(facts, cand)
            if not all(readable(t) and len(t) <= MAX_TEXT for t in texts):
                continue
            if not self.names_answer and _gives_away(facts, cand):
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
        return "-".join([self.name, *(_short(e) for e in cand.answer)])


def clue_name(cand: Candidate) -> str:
    """The name a named clue uses."""
    return str(cand.clue["name"])


class FlagNamed(Template):
    """The flag of a named country, captioned with the name given in quotes."""

    name, category, difficulty = "flag_named", "geography", "easy"
    names_answer = True

    def propose(self, facts):
        return [Candidate((c.id,), {"name": c.name}, _chain(f"name:{c.name}", c))
                for c in facts.countries]

    def resolve(self, facts, clue):
        return [(e,) for e in facts.named("country", clue["name"])]

    def prompt(self, facts, cand, rng):
        name, text = clue_name(cand), self.required_text(facts, cand)[0]
        return rng.choice([
            (f'A clean poster of the national flag of {name}, with the caption "{text}" on a '
             "dark banner underneath it."),
            f'Show the flag of {name}, and beneath it a dark strip with the words "{text}".',
        ])


class FlagPlain(FlagNamed):
    """The waving flag of a named country, with no text at all."""

    name, category, difficulty = "flag_plain", "geography", "easy"

    def required_text(self, facts, cand):
        return ()

    def prompt(self, facts, cand, rng):
        return rng.choice([
            (f"The national flag of {clue_name(cand)} waving in the wind, with no text or "
             "lettering anywhere in the picture."),
            (f"A photo-like picture of the flag of {clue_name(cand)} flying on a pole; do not add "
             "any words."),
        ])


class FlagByCapital(Template):
    """The flag of the country with a given capital, its name on a banner."""

    name, category, difficulty = "flag_by_capital", "geography", "medium"

    def propose(self, facts):
        return [Candidate((c.id,), {"capital": c.facts["capital"]},
                          _chain(f"capital:{c.facts['capital']}", c))
                for c in facts.countries if c.facts.get("capital")]

    def resolve(self, facts, clue):
        return [(e,) for e in facts.with_capital(clue["capital"])]

    def prompt(self, facts, cand, rng):
        return (f"Draw the national flag of the country whose capital city is "
                f"{cand.clue['capital']}. Under the flag, put a dark banner with that country's "
                "name written in capital letters.")


class FlagByCurrency(Template):
    """The flag of the only country using a given currency code."""

    name, category, difficulty = "flag_by_currency", "politics", "medium"

    def propose(self, facts):
        return [Candidate((c.id,), {"currency_code": cur["code"]},
                          _chain(f"currency:{cur['code']}", c))
                for c in facts.countries for cur in c.facts.get("currencies", []) or []
                if cur.get("code")]

    def resolve(self, facts, clue):
        return [(e,) for e in facts.paying_with(clue["currency_code"])]

    def prompt(self, facts, cand, rng):
        return (f"Create an image of the flag of the only country whose money is the currency "
                f"with ISO 4217 code {cand.clue['currency_code']}, with the country's name in "
                "capital letters on a banner beneath the flag.")


class FlagByNeighbours(Template):
    """The flag of the only country bordering all of one or two given countries."""

    name, category, difficulty = "flag_by_neighbours", "geography", "hard"

    def propose(self, facts):
        out = []
        for cid in sorted(facts.neighbours):
            country = facts.entity(cid)
            around = sorted(facts.neighbours[cid])
            for a, b in itertools.combinations(around, 2):
                names = f"{facts.entity(a).name}+{facts.entity(b).name}"
                out.append(Candidate((cid,), {"neighbours_of": [a, b]},
                                     _chain(f"borders:{names}", country)))
            for a in around:  # "the only neighbour of a"
                out.append(Candidate((cid,), {"neighbours_of": [a]},
                                     _chain(f"borders:{facts.entity(a).name}", country)))
        return out

    def resolve(self, facts, clue):
        required = list(clue["neighbours_of"])
        if not required:
            return []
        common = set.intersection(*(facts.neighbours.get(r, set()) for r in required))
        return [(c,) for c in sorted(common - set(required))]

    def prompt(self, facts, cand, rng):
        names = [facts.entity(e).name for e in cand.clue["neighbours_of"]]
        if len(names) == 1:
            where = f"the only country that {names[0]} shares a land border with"
        else:
            where = f"the one country that shares a land border with both {names[0]} and {names[1]}"
        return (f"Show the flag of {where}, with that country's name in capital letters on a "
                "dark banner below the flag.")


class FlagByLanguage(Template):
    """The flag of the only country of a region where a language is official."""

    name, category, difficulty = "flag_by_language", "culture", "hard"

    def propose(self, facts):
        return [Candidate((c.id,), {"language": lang, "region": c.facts["region"]},
                          _chain(f"language:{lang}@{c.facts['region']}", c))
                for c in facts.countries if c.facts.get("region")
                for lang in c.facts.get("languages", []) or []]

    def resolve(self, facts, clue):
        lang, region = clue["language"].casefold(), clue["region"].casefold()
        return [(c.id,) for c in facts.countries
                if str(c.facts.get("region", "")).casefold() == region
                and lang in (str(x).casefold() for x in c.facts.get("languages", []) or [])]

    def prompt(self, facts, cand, rng):
        return (f"Picture the flag of the only country in {cand.clue['region']} where "
                f"{cand.clue['language']} is an official language, and add the country's name "
                "in capital letters on a banner under the flag.")


class LogoNamed(Template):
    """A poster of a named brand's logo, titled in quotes."""

    name, category, difficulty, kind = "logo_named", "posters", "easy", "brand"
    names_answer = True

    def propose(self, facts):
        return [Candidate((b.id,), {"name": b.name}, _chain(f"name:{b.name}", b))
                for b in facts.brands]

    def resolve(self, facts, clue):
        return [(e,) for e in facts.named("brand", clue["name"])]

    def prompt(self, facts, cand, rng):
        text = self.required_text(facts, cand)[0]
        return rng.choice([
            (f"Design a poster featuring the official {clue_name(cand)} logo in its brand colour, "
             f'titled "{text}" on a dark banner below the logo.'),
            (f'A simple poster with the {clue_name(cand)} logo, drawn in its official colour, and '
             f'the title "{text}" underneath.'),
        ])


class LogoByColour(Template):
    """The logo of the brand with a given official colour, its name below."""

    name, category, difficulty, kind = "logo_by_colour", "posters", "medium", "brand"

    def propose(self, facts):
        return [Candidate((b.id,), {"hex": b.facts["hex"].upper()},
                          _chain(f"colour:{b.facts['hex'].upper()}", b))
                for b in facts.brands if b.facts.get("hex")]

    def resolve(self, facts, clue):
        return [(e,) for e in facts.coloured(clue["hex"])]

    def prompt(self, facts, cand, rng):
        return (f"Make a poster of the logo of the brand whose official colour is "
                f"{cand.clue['hex']}. Draw the logo in that colour and write the brand's name in "
                "capital letters on a dark banner beneath it.")


class TwoFlags(Template):
    """Two flags found from their capitals, titled "<A> VS <B>" by the agent."""

    name, category, difficulty = "two_flags", "sports", "hard"

    def propose(self, facts):
        out = []
        for a in sorted(facts.neighbours):
            for b in sorted(facts.neighbours[a]):
                if a < b:
                    pair = (a, b) if _swap_key(a, b) else (b, a)
                    ents = [facts.entity(e) for e in pair]
                    caps = [str(e.facts.get("capital", "")) for e in ents]
                    if all(caps):
                        hops = _chain(f"capital:{caps[0]}", ents[0]) + _chain(f"capital:{caps[1]}", ents[1])
                        out.append(Candidate(pair, {"capitals": caps}, hops))
        return out

    def resolve(self, facts, clue):
        options = [facts.with_capital(cap) for cap in clue["capitals"]]
        return [combo for combo in itertools.product(*options) if len(set(combo)) == len(combo)]

    def required_text(self, facts, cand):
        return (" VS ".join(caption(facts.entity(e).name) for e in cand.answer),)

    def prompt(self, facts, cand, rng):
        first, second = cand.clue["capitals"]
        return (f"A match-day poster: on the left the flag of the country whose capital is "
                f"{first}, on the right the flag of the country whose capital is {second}. Below "
                "them, a title in capital letters giving the left country's name, then the word "
                "VS, then the right country's name.")


class TwoLogos(Template):
    """Two named brands' logos side by side, under a headline given in quotes."""

    name, category, difficulty, kind = "two_logos", "news", "medium", "brand"
    names_answer = True

    def propose(self, facts):
        by_colour: dict[str, list[Entity]] = defaultdict(list)
        for b in facts.brands:
            by_colour[str(b.facts.get("colour_name", ""))].append(b)
        out = []
        for group in by_colour.values():
            for x, y in itertools.combinations(group, 2):
                pair = (x, y) if _swap_key(x.id, y.id) else (y, x)
                hops = _chain(f"name:{pair[0].name}", pair[0]) + _chain(f"name:{pair[1].name}", pair[1])
                out.append(Candidate((pair[0].id, pair[1].id),
                                     {"names": [pair[0].name, pair[1].name]}, hops))
        return out

    def resolve(self, facts, clue):
        options = [facts.named("brand", n) for n in clue["names"]]
        return [combo for combo in itertools.product(*options) if len(set(combo)) == len(combo)]

    def required_text(self, facts, cand):
        return (" AND ".join(caption(facts.entity(e).name) for e in cand.answer),)

    def prompt(self, facts, cand, rng):
        first, second = cand.clue["names"]
        text = self.required_text(facts, cand)[0]
        return (f"A news graphic with the {first} logo on the left and the {second} logo on the "
                f'right, each in its official colours, above the headline "{text}".')


def _clue_strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in _clue_strings(v)]
    return []


def _gives_away(facts: WorldFacts, cand: Candidate) -> bool:
    """True when a string of the clue contains the name of a subject it should hide."""
    names = [caption(facts.entity(e).name) for e in cand.answer]
    return any(n in caption(text) for n in names for text in _clue_strings(cand.clue))


def _swap_key(a: str, b: str) -> bool:
    """A stable, order-independent coin flip that decides which of a pair comes first."""
    lo, hi = sorted((a, b))
    return hashlib.sha256(f"{lo}|{hi}".encode()).digest()[0] % 2 == (0 if a == lo else 1)


#: Every template, in the order tasks are listed.
TEMPLATES: dict[str, Template] = {
    t.name: t
    for t in (
        FlagNamed(), FlagPlain(), FlagByCapital(), FlagByCurrency(), FlagByNeighbours(),
        FlagByLanguage(), LogoNamed(), LogoByColour(), TwoFlags(), TwoLogos(),
    )
}
