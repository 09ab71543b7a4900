"""Task families about one brand: its logo, found by name or through its facts."""

from __future__ import annotations

from knowgen.world.facts import WorldFacts, caption, key
from knowgen.world.family import Candidate, Template, TextPlan, chain, ref, resolve_ref
from knowgen.world.phrasing import Phraser, slot, text_sentence

#: How the logo is asked for: "{ref}" refers to the brand.
LOGO_OF = slot("logo", [
    "the logo of {ref}", "the official logo of {ref}", "the brand mark of {ref}",
], [
    "the emblem that {ref} uses as its logo", "the signature logo belonging to {ref}",
], key=True)
#: Logos asked for by a named brand: "{name}" is its name.
NAMED_LOGO = slot("logo.named", [
    "the {name} logo", "the official {name} logo", "the logo of {name}",
], [
    "{name}'s brand mark", "the emblem {name} is known by",
], key=True)
#: The colour clause of named-logo requests.
IN_COLOUR = slot("colour", [
    " in its brand colour", " drawn in its official colour", "",
], [
    " in the colour the brand itself uses",
])

RELATIONS = {
    "hex": slot("rel.hex", [
        "the brand whose official colour is {v}", "the company whose brand colour is the hex code {v}",
        "the brand that uses {v} as its colour",
    ], [
        "the label whose signature shade is {v}",
    ], key=True),
    "former_name": slot("rel.former_name", [
        "the brand also known as {v}", "the company that is also called {v}",
    ], [
        "the brand that some people still call {v}",
    ], key=True),
    "website": slot("rel.website", [
        "the brand whose website is {v}", "the company behind the site {v}",
    ], [
        "the brand you will find online at {v}",
    ], key=True),
}
#: Literal titles of named-logo tasks: "{name}" is the brand's name in capitals.
TITLES = ("{name}", "{name}", "NOW WITH {name}", "POWERED BY {name}")

BRAND_SLOTS = (LOGO_OF, NAMED_LOGO, IN_COLOUR, *RELATIONS.values())


class LogoNamed(Template):
    """A poster of a named brand's logo, titled in quotes."""

    name, category, difficulty, kind = "logo_named", "posters", "easy", "brand"
    names_answer = True

    def propose(self, facts):
        return [Candidate((b.id,), ref("name", b.name), chain(f"name:{b.name}", b.id, b.image_id))
                for b in facts.brands]

    def resolve(self, facts, clue):
        return [(e,) for e in resolve_ref(facts, "brand", clue)]

    def subject(self, facts, cand, ph):
        return ph.say(NAMED_LOGO, name=cand.clue["value"]) + ph.say(IN_COLOUR)

    def text(self, facts, cand, ph):
        name = facts.entity(cand.answer[0]).name
        literal = ph.choice(list(TITLES)).format(name=caption(name))
        literal = literal if len(literal) <= 36 else caption(name)
        return TextPlan((literal,), False, "literal", text_sentence(ph, "literal", text=literal))


class LogoByFact(Template):
    """The logo of the only brand with a given fact (colour, another name, website).

    Args:
        name: Family name.
        fact: The fact that identifies the brand.
        category: KnowGen category.
        difficulty: Difficulty label.
        body_only: The fact is written only in page bodies.
    """

    kind = "brand"

    def __init__(self, name: str, fact: str, category: str, difficulty: str,
                 body_only: bool = False):
        self.name, self.category, self.difficulty = name, category, difficulty
        self.fact = fact
        self.body_only = body_only

    def values(self, brand) -> list[str]:
        """The values of the family's fact that ``brand`` has."""
        f = brand.facts
        if self.fact == "hex":
            return [str(f["hex"]).upper()] if f.get("hex") else []
        if self.fact == "website":
            return [str(f["website"])] if f.get("website") else []
        return [str(n) for n in list(f.get("former_names") or []) + list(f.get("also_known_as") or [])]

    def hidden_names(self, facts: WorldFacts, entity_id: str) -> list[str]:
        """An other-name clue is itself an alias: only the brand's remaining names are hidden."""
        if self.fact != "former_name":
            return facts.names_of(entity_id)
        told = {key(v) for v in self.values(facts.entity(entity_id))}
        return [n for n in facts.names_of(entity_id) if key(n) not in told]

    def propose(self, facts: WorldFacts):
        return [Candidate((b.id,), ref(self.fact, v), chain(f"{self.fact}:{v}", b.id, b.image_id))
                for b in facts.brands for v in self.values(b)]

    def resolve(self, facts, clue):
        return [(e,) for e in resolve_ref(facts, "brand", clue)]

    def subject(self, facts, cand, ph: Phraser):
        who = ph.say(RELATIONS[self.fact], v=cand.clue["value"])
        return ph.say(LOGO_OF, ref=who) + ph.say(IN_COLOUR)


def brand_families() -> list[Template]:
    """The one-brand families, in listing order."""
    return [
        LogoNamed(),
        LogoByFact("logo_by_colour", "hex", "posters", "medium"),
        LogoByFact("logo_by_other_name", "former_name", "news", "medium"),
        LogoByFact("logo_by_website", "website", "news", "hard", body_only=True),
    ]
