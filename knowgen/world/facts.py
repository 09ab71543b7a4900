"""Lookups over one world that task families share, and the text rules they obey.

:class:`WorldFacts` indexes every fact a clue may name (capitals, currencies,
demonyms, calling codes, internet domains, cities, brand colours, websites,
former names) so that a clue can be *re-resolved against the whole world*: a
family keeps a clue only when exactly one entity (or one assignment of
entities) answers it.

Facts that a world does not hold (an older world without demonyms, say) are
simply empty lookups: the families that need them then propose nothing.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable

from knowgen.world.data import Entity, World

#: Characters a required text may hold (after folding): what OCR reads reliably.
_READABLE = re.compile(r"[A-Z0-9][A-Z0-9 ,.'()&+-]*")
_THIN = set("I1|.,'-")
#: Longest required text, in characters (longer ones get too small to read).
MAX_TEXT = 36


def fold(text: str) -> str:
    """``text`` with accents stripped and other non-ASCII characters dropped, spaces collapsed."""
    text = str(text)
    if text.isascii():
        return " ".join(text.split())
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(plain.encode("ascii", "ignore").decode("ascii").split())


def caption(name: str) -> str:
    """``name`` in capital letters with accents stripped, e.g. ``"Curaçao"`` -> ``"CURACAO"``."""
    return fold(name).upper()


def readable(text: str) -> bool:
    """True when ``text`` uses only characters OCR reads back reliably.

    The test is made on the capitalised form. Words made only of thin strokes
    (``"I"``, ``"III"``) are refused: OCR engines take a lone vertical bar for a
    rule, not a letter.
    """
    upper = caption(text)
    words = upper.split(" ")
    return (bool(_READABLE.fullmatch(upper)) and len(upper) <= MAX_TEXT
            and not any(set(w) <= _THIN for w in words))


def key(text: str) -> str:
    """Comparison key of a fact value: accent-free and case-folded."""
    return fold(text).casefold()


def _index(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for value, entity_id in pairs:
        k = key(value)
        if k and entity_id not in out[k]:
            out[k].append(entity_id)
    return out


class WorldFacts:
    """Lookups over one world that the task families share (built once per generation).

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
            for label in {key(ent.name), *(key(a) for a in ent.aliases)}:
                self._names[(ent.kind, label)].append(ent.id)
        c = self.countries
        self._by: dict[str, dict[str, list[str]]] = {
            "capital": _index((str(x.facts.get("capital") or ""), x.id) for x in c),
            "currency_code": _index((str(cur.get("code", "")), x.id) for x in c
                                    for cur in x.facts.get("currencies") or []),
            "currency_name": _index((str(cur.get("name", "")), x.id) for x in c
                                    for cur in x.facts.get("currencies") or []),
            "demonym": _index((str(x.facts.get("demonym") or ""), x.id) for x in c),
            "calling_code": _index((code, x.id) for x in c
                                   for code in x.facts.get("calling_codes") or []),
            "tld": _index((tld, x.id) for x in c for tld in x.facts.get("tlds") or []),
            "city": _index((city, x.id) for x in c for city in x.facts.get("cities") or []),
            "hex": _index((str(b.facts.get("hex") or ""), b.id) for b in self.brands),
            "website": _index((str(b.facts.get("website") or ""), b.id) for b in self.brands),
            "former_name": _index((n, b.id) for b in self.brands
                                  for n in list(b.facts.get("former_names") or [])
                                  + list(b.facts.get("also_known_as") or [])),
        }
        self._usable: dict[str, bool] = {}

    def named(self, kind: str, name: str) -> list[str]:
        """Ids of the entities of ``kind`` whose name or alias is ``name`` (accents and case ignored)."""
        return list(self._names.get((kind, key(name)), []))

    def having(self, fact: str, value: str) -> list[str]:
        """Ids of the entities whose ``fact`` (``"capital"``, ``"demonym"``, ``"city"``, ...) is ``value``.

        Values compare without accents or case. Facts a world does not hold give ``[]``.
        """
        return list(self._by.get(fact, {}).get(key(value), []))

    def with_capital(self, capital: str) -> list[str]:
        """Ids of the countries whose capital is ``capital`` (any case)."""
        return self.having("capital", capital)

    def entity(self, entity_id: str) -> Entity:
        """The entity with id ``entity_id``."""
        return self.world.entities[entity_id]

    def names_of(self, entity_id: str) -> list[str]:
        """The entity's name and aliases."""
        ent = self.entity(entity_id)
        return [ent.name, *ent.aliases]

    def all_names(self) -> set[str]:
        """Keys of every entity name and alias (to keep clues from giving a subject away)."""
        return {label for (_, label) in self._names}

    def usable(self, entity_id: str) -> bool:
        """True when the entity can be required in an image: official image, page, readable name."""
        if entity_id not in self._usable:
            ent = self.world.entities.get(entity_id)
            self._usable[entity_id] = (
                ent is not None
                and ent.image_id in self.world.images
                and ent.page_url in self.world.pages
                and readable(ent.name)
            )
        return self._usable[entity_id]
