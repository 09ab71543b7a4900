"""Task families with several subjects, and look-alike traps."""

from __future__ import annotations

import hashlib
import itertools
from collections import defaultdict

from knowgen.world.facts import WorldFacts, caption
from knowgen.world.families_brands import IN_COLOUR, NAMED_LOGO
from knowgen.world.families_countries import RELATIONS, flag_np, referent
from knowgen.world.family import (
    Candidate,
    Template,
    TextPlan,
    chain,
    product_answers,
    ref,
    resolve_ref,
    swap_key,
    written,
)
from knowgen.world.phrasing import slot, text_sentence

#: Two subjects in layout order.
PAIR = slot("pair", [
    "{a} on the left and {b} on the right", "{a} beside {b}, in that order",
    "{a} next to {b}, with the first on the left",
], [
    "first {a}, then {b} to its right",
], key=True)
#: Three subjects in layout order.
TRIO = slot("trio", [
    "three flags side by side: {a}, {b} and {c}, in that order",
    "a row of three flags, from left to right {a}, {b} and {c}",
], [
    "{a}, {b} and {c} lined up left to right",
], key=True)
#: The "A VS B" title of a match poster: asked for without giving the names.
VERSUS = slot("versus", [
    "a title giving the left country's name, then the word VS, then the right country's name",
    "the two countries' names joined by VS, left one first",
], [
    "a matchup title: left country, the word VS, right country",
], key=True)
TRAP_FLAG = slot("trap.flag", [
    "the flag of {name} that is actually in use, not one of the proposed designs that were never adopted",
    "the real, adopted flag of {name} rather than a proposed alternative design",
], [
    "the genuine national flag of {name}; steer clear of redesigns that were proposed but never adopted",
], key=True)
TRAP_LOGO = slot("trap.logo", [
    "the {name} logo in its real brand colour, not the black monochrome version",
    "the proper colour {name} logo rather than a monochrome variant",
], [
    "the {name} logo as the brand itself shows it, never a black-and-white variant",
], key=True)
#: Literal titles of three-flag tasks.
EVENT_TITLES = ("FRIENDSHIP SUMMIT", "TRADE FORUM", "YOUTH GAMES", "CULTURE WEEK",
                "REGIONAL CUP", "PEACE TALKS")

MULTI_SLOTS = (PAIR, TRIO, VERSUS, TRAP_FLAG, TRAP_LOGO)


def _rank(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256("|".join(parts).encode()).digest()[:4], "big")


class TwoFlags(Template):
    """Two neighbouring countries' flags found from their capitals, titled "<A> VS <B>"."""

    name, category, difficulty = "two_flags", "sports", "hard"

    def propose(self, facts):
        out = []
        for a in sorted(facts.neighbours):
            for b in sorted(facts.neighbours[a]):
                if a < b:
                    pair = (a, b) if swap_key(a, b) else (b, a)
                    ents = [facts.entity(e) for e in pair]
                    caps = [str(e.facts.get("capital") or "") for e in ents]
                    if all(caps):
                        hops = (chain(f"capital:{caps[0]}", pair[0], ents[0].image_id)
                                + chain(f"capital:{caps[1]}", pair[1], ents[1].image_id))
                        out.append(Candidate(pair, {"subjects": [ref("capital", caps[0]),
                                                                 ref("capital", caps[1])]}, hops))
        return out

    def resolve(self, facts, clue):
        return product_answers([resolve_ref(facts, "country", r) for r in clue.get("subjects", [])])

    def possible_texts(self, facts, cand):
        return [" VS ".join(facts.entity(e).name for e in cand.answer)]

    def subject(self, facts, cand, ph):
        a, b = (flag_np(ph, referent(facts, r, ph)) for r in cand.clue["subjects"])
        return ph.say(PAIR, a=a, b=b)

    def text(self, facts, cand, ph):
        upper = ph.chance(0.6)
        names = [written(facts.entity(e).name, upper) for e in cand.answer]
        required = (" VS ".join(names),)
        return TextPlan(required, upper, "derived",
                        text_sentence(ph, "derived", what=ph.say(VERSUS), upper=upper))


class ThreeFlags(Template):
    """Three mutually neighbouring countries, each found through one of its facts."""

    name, category, difficulty = "three_flags", "history", "hard"
    facts_for_refs = ("capital", "demonym", "currency_name")

    def _ref(self, facts: WorldFacts, entity_id: str, salt: str):
        ent = facts.entity(entity_id)
        options = []
        for fact in self.facts_for_refs:
            if fact == "capital" and ent.facts.get("capital"):
                options.append(ref("capital", str(ent.facts["capital"])))
            elif fact == "demonym" and ent.facts.get("demonym"):
                options.append(ref("demonym", str(ent.facts["demonym"])))
            elif fact == "currency_name":
                options.extend(ref("currency_name", str(c["name"]))
                               for c in ent.facts.get("currencies") or [] if c.get("name"))
        unique = [r for r in options if resolve_ref(facts, "country", r) == [entity_id]]
        return unique[_rank(salt, entity_id) % len(unique)] if unique else None

    def propose(self, facts):
        out = []
        for a in sorted(facts.neighbours):
            for b, c in itertools.combinations(sorted(facts.neighbours[a]), 2):
                if a < b < c and c in facts.neighbours[b]:
                    trio = sorted((a, b, c), key=lambda e: _rank("order", a, b, c, e))
                    refs = [self._ref(facts, e, f"{a}{b}{c}") for e in trio]
                    if all(refs):
                        hops = tuple(h for e, r in zip(trio, refs) for h in
                                     chain(f"{r['fact']}:{r['value']}", e, facts.entity(e).image_id))
                        out.append(Candidate(tuple(trio), {"subjects": refs}, hops))
        return out

    def resolve(self, facts, clue):
        return product_answers([resolve_ref(facts, "country", r) for r in clue.get("subjects", [])])

    def possible_texts(self, facts, cand):
        return list(EVENT_TITLES)

    def subject(self, facts, cand, ph):
        a, b, c = (referent(facts, r, ph) for r in cand.clue["subjects"])
        return ph.say(TRIO, a=f"the flag of {a}", b=f"the flag of {b}", c=f"the flag of {c}")

    def text(self, facts, cand, ph):
        title = ph.choice(list(EVENT_TITLES))
        return TextPlan((title,), False, "literal", text_sentence(ph, "literal", text=title))


class TwoLogos(Template):
    """Two named brands' logos side by side, under a headline given in quotes."""

    name, category, difficulty, kind = "two_logos", "news", "medium", "brand"
    names_answer = True
    partners = 2

    def propose(self, facts):
        by_colour: dict[str, list[str]] = defaultdict(list)
        for b in facts.brands:
            by_colour[str(b.facts.get("colour_name", ""))].append(b.id)
        out = []
        for colour, group in sorted(by_colour.items()):
            order = sorted(group, key=lambda e: _rank("logos", e))
            for i, x in enumerate(order):
                for y in order[i + 1:i + 1 + self.partners]:
                    pair = (x, y) if swap_key(x, y) else (y, x)
                    ents = [facts.entity(e) for e in pair]
                    hops = (chain(f"name:{ents[0].name}", pair[0], ents[0].image_id)
                            + chain(f"name:{ents[1].name}", pair[1], ents[1].image_id))
                    out.append(Candidate(pair, {"subjects": [ref("name", ents[0].name),
                                                             ref("name", ents[1].name)]}, hops))
        return out

    def resolve(self, facts, clue):
        return product_answers([resolve_ref(facts, "brand", r) for r in clue.get("subjects", [])])

    def possible_texts(self, facts, cand):
        return [" AND ".join(facts.entity(e).name for e in cand.answer)]

    def subject(self, facts, cand, ph):
        a, b = (ph.say(NAMED_LOGO, name=r["value"]) for r in cand.clue["subjects"])
        return ph.say(PAIR, a=a, b=b) + ph.say(IN_COLOUR).replace(" its ", " their ")

    def text(self, facts, cand, ph):
        headline = " AND ".join(caption(facts.entity(e).name) for e in cand.answer)
        return TextPlan((headline,), False, "literal", text_sentence(ph, "literal", text=headline))


class FlagTrap(Template):
    """A named flag whose request words pull a naive image search towards the look-alike."""

    name, category, difficulty = "flag_trap", "history", "medium"
    names_answer = True

    def propose(self, facts):
        return [Candidate((c.id,), ref("name", c.name), chain(f"name:{c.name}", c.id, c.image_id))
                for c in facts.countries
                if f"lookalike/{c.image_id}" in facts.world.images]

    def resolve(self, facts, clue):
        return [(e,) for e in resolve_ref(facts, self.kind, clue)]

    def subject(self, facts, cand, ph):
        return ph.say(TRAP_FLAG, name=cand.clue["value"])

    def text(self, facts, cand, ph):
        literal = caption(facts.entity(cand.answer[0]).name)
        return TextPlan((literal,), False, "literal", text_sentence(ph, "literal", text=literal))


class LogoTrap(FlagTrap):
    """A named logo whose request words pull a naive image search towards the monochrome copy."""

    name, category, difficulty, kind = "logo_trap", "posters", "medium", "brand"

    def propose(self, facts):
        return [Candidate((b.id,), ref("name", b.name), chain(f"name:{b.name}", b.id, b.image_id))
                for b in facts.brands
                if f"lookalike/{b.image_id}" in facts.world.images]

    def subject(self, facts, cand, ph):
        return ph.say(TRAP_LOGO, name=cand.clue["value"])


def multi_families() -> list[Template]:
    """The several-subject and trap families, in listing order."""
    return [TwoFlags(), ThreeFlags(), TwoLogos(), FlagTrap(), LogoTrap()]


__all__ = ["RELATIONS", "multi_families"]
