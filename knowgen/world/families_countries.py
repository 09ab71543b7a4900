"""Task families about one country: its flag, found by name or through its facts."""

from __future__ import annotations

from knowgen.world.facts import WorldFacts, caption, fold
from knowgen.world.family import Candidate, Template, TextPlan, chain, ref, resolve_ref, written
from knowgen.world.phrasing import Phraser, slot, text_sentence

#: How the flag is asked for: "{ref}" refers to the country.
FLAG_OF = slot("flag", [
    "the flag of {ref}", "the national flag of {ref}", "the flag flown by {ref}",
], [
    "the official state flag of {ref}", "the banner {ref} flies as its national flag",
], key=True)

#: How a clue value leads to the country, one slot per fact. "{v}" is the value.
RELATIONS = {
    "capital": slot("rel.capital", [
        "the country whose capital is {v}", "the country governed from {v}",
        "the nation that has {v} as its capital city", "the country with its capital in {v}",
    ], [
        "the state whose seat of government is {v}",
        "the country whose capital city goes by the name {v}",
    ], key=True),
    "currency_code": slot("rel.currency_code", [
        "the only country that pays with the currency coded {v}",
        "the country whose money has the ISO 4217 code {v}",
        "the one country using {v} as its currency code",
    ], [
        "the nation whose currency trades under the code {v}",
    ], key=True),
    "currency_name": slot("rel.currency_name", [
        "the country whose currency is the {v}", "the only country that uses the {v}",
        "the one country where people pay in the {v}",
    ], [
        "the nation whose shops price their goods in the {v}",
    ], key=True),
    "demonym": slot("rel.demonym", [
        "the country whose people are called {v}", "the country whose citizens are known as {v}",
        "the country whose nationals are described as {v}",
    ], [
        "the nation whose inhabitants go by the demonym {v}",
    ], key=True),
    "calling_code": slot("rel.calling_code", [
        "the country reached with the international calling code {v}",
        "the country whose telephone country code is {v}",
    ], [
        "the nation you dial with the prefix {v}",
    ], key=True),
    "tld": slot("rel.tld", [
        "the country whose internet domain is {v}",
        "the country that owns the top-level domain {v}",
    ], [
        "the nation behind web addresses ending in {v}",
    ], key=True),
    "city": slot("rel.city", [
        "the country where the city of {v} lies", "the country that {v} is in",
        "the country containing the city of {v}",
    ], [
        "the nation that is home to the city {v}",
    ], key=True),
}

NEIGHBOURS_TWO = slot("rel.borders2", [
    "the one country that borders both {a} and {b}",
    "the only nation sharing a land border with {a} as well as with {b}",
], [
    "the country that is a land neighbour of both {a} and {b}",
], key=True)
NEIGHBOUR_ONE = slot("rel.border1", [
    "the only country that {a} shares a land border with", "the sole land neighbour of {a}",
], [
    "the single country touching {a} by land",
], key=True)
LANGUAGE = slot("rel.language", [
    "the only country in {r} where {lang} is an official language",
    "the one country of {r} with {lang} as an official language",
], [
    "the nation of {r} that alone counts {lang} among its official languages",
], key=True)
#: How the capital is asked for as the text to write.
CAPITAL_TEXT = slot("text.capital", [
    "the name of that country's capital city", "the name of its capital",
    "the capital city's name",
], [
    "what that country's capital is called",
], key=True)
#: Literal captions of named-flag tasks: "{name}" is the country's name in capitals.
CAPTIONS = ("{name}", "{name}", "VISIT {name}", "{name} NATIONAL DAY")

COUNTRY_SLOTS = (FLAG_OF, *RELATIONS.values(), NEIGHBOURS_TWO, NEIGHBOUR_ONE, LANGUAGE,
                 CAPITAL_TEXT)


def flag_np(ph: Phraser, referent: str) -> str:
    """ "the flag of <referent>" in one of its phrasings."""
    return ph.say(FLAG_OF, ref=referent)


def referent(facts: WorldFacts, reference: dict[str, str], ph: Phraser) -> str:
    """How a subject reference is put in words ("Peru", "the country whose capital is Lima")."""
    if reference["fact"] == "name":
        return reference["value"]
    return ph.say(RELATIONS[reference["fact"]], v=reference["value"])


class FlagNamed(Template):
    """The flag of a named country, with a caption given in quotes."""

    name, category, difficulty = "flag_named", "geography", "easy"
    names_answer = True

    def propose(self, facts):
        return [Candidate((c.id,), ref("name", c.name), chain(f"name:{c.name}", c.id, c.image_id))
                for c in facts.countries]

    def resolve(self, facts, clue):
        return [(e,) for e in resolve_ref(facts, "country", clue)]

    def subject(self, facts, cand, ph):
        return flag_np(ph, cand.clue["value"])

    def text(self, facts, cand, ph):
        name = facts.entity(cand.answer[0]).name
        form = ph.choice(list(CAPTIONS)).format(name=caption(name))
        literal = form if len(form) <= 36 else caption(name)
        return TextPlan((literal,), False, "literal", text_sentence(ph, "literal", text=literal))


class FlagPlain(FlagNamed):
    """The flag of a named country, with no text at all."""

    name, category, difficulty = "flag_plain", "geography", "easy"

    def text(self, facts, cand, ph):
        return TextPlan((), False, "none", text_sentence(ph, "none"))


class CapitalAsText:
    """Mixin: the text to write is the subject country's capital, derived, not quoted."""

    def possible_texts(self, facts, cand):
        return [str(facts.entity(cand.answer[0]).facts["capital"])]

    def text(self, facts, cand, ph):
        upper = ph.chance(0.5)
        capital = str(facts.entity(cand.answer[0]).facts["capital"])
        return TextPlan((written(capital, upper),), upper, "derived",
                        text_sentence(ph, "derived", what=ph.say(CAPITAL_TEXT), upper=upper))


class FlagWithCapital(CapitalAsText, FlagNamed):
    """The flag of a named country, captioned with its capital, which the agent must find."""

    name, category, difficulty = "flag_with_capital", "politics", "medium"

    def propose(self, facts):
        return [Candidate((c.id,), ref("name", c.name),
                          chain(f"name:{c.name}", c.id, c.image_id) + (f"capital:{c.facts['capital']}",))
                for c in facts.countries if c.facts.get("capital")]


class FlagByFact(Template):
    """The flag of the only country with a given fact (capital, demonym, calling code, ...).

    Args:
        name: Family name.
        fact: The fact that identifies the country.
        category: KnowGen category.
        difficulty: Difficulty label.
        body_only: The fact is written only in page bodies (search snippets never show it).
    """

    def __init__(self, name: str, fact: str | tuple[str, ...], category: str, difficulty: str,
                 body_only: bool = False):
        self.name, self.category, self.difficulty = name, category, difficulty
        self.facts_used = (fact,) if isinstance(fact, str) else fact
        self.body_only = body_only

    def values(self, facts: WorldFacts, fact: str, country) -> list[str]:
        """The values of ``fact`` that ``country`` has."""
        f = country.facts
        if fact == "capital":
            return [str(f["capital"])] if f.get("capital") else []
        if fact == "currency_code":
            return [str(c["code"]) for c in f.get("currencies") or [] if c.get("code")]
        if fact == "currency_name":
            return [str(c["name"]) for c in f.get("currencies") or [] if c.get("name")]
        if fact == "demonym":
            return [str(f["demonym"])] if f.get("demonym") else []
        plural = {"calling_code": "calling_codes", "tld": "tlds", "city": "cities"}[fact]
        return [str(v) for v in f.get(plural) or []]

    def propose(self, facts):
        return [Candidate((c.id,), ref(fact, value),
                          chain(f"{fact}:{value}", c.id, c.image_id))
                for c in facts.countries for fact in self.facts_used
                for value in self.values(facts, fact, c)]

    def resolve(self, facts, clue):
        return [(e,) for e in resolve_ref(facts, "country", clue)]

    def subject(self, facts, cand, ph):
        return flag_np(ph, referent(facts, cand.clue, ph))


class FlagOfCityCapital(CapitalAsText, FlagByFact):
    """Three hops: a city leads to its country, whose flag is drawn and whose capital is written."""

    def __init__(self):
        super().__init__("capital_of_city", "city", "geography", "hard")

    def propose(self, facts):
        out = []
        for cand in super().propose(facts):
            country = facts.entity(cand.answer[0])
            if country.facts.get("capital") and fold(country.facts["capital"]).casefold() != \
                    fold(cand.clue["value"]).casefold():
                out.append(Candidate(cand.answer, cand.clue,
                                     cand.hops + (f"capital:{country.facts['capital']}",)))
        return out


class FlagByNeighbours(Template):
    """The flag of the only country bordering all of one or two given countries."""

    name, category, difficulty = "flag_by_neighbours", "geography", "hard"

    def propose(self, facts):
        import itertools

        out = []
        for cid in sorted(facts.neighbours):
            country = facts.entity(cid)
            around = sorted(facts.neighbours[cid])
            for a, b in itertools.combinations(around, 2):
                names = f"{facts.entity(a).name}+{facts.entity(b).name}"
                out.append(Candidate((cid,), {"neighbours_of": [a, b]},
                                     chain(f"borders:{names}", cid, country.image_id)))
            for a in around:
                out.append(Candidate((cid,), {"neighbours_of": [a]},
                                     chain(f"borders:{facts.entity(a).name}", cid, country.image_id)))
        return out

    def resolve(self, facts, clue):
        required = list(clue.get("neighbours_of") or [])
        if not required or not all(r in facts.world.entities for r in required):
            return []
        common = set.intersection(*(facts.neighbours.get(r, set()) for r in required))
        return [(c,) for c in sorted(common - set(required))]

    def subject(self, facts, cand, ph):
        names = [facts.entity(e).name for e in cand.clue["neighbours_of"]]
        if len(names) == 1:
            return flag_np(ph, ph.say(NEIGHBOUR_ONE, a=names[0]))
        return flag_np(ph, ph.say(NEIGHBOURS_TWO, a=names[0], b=names[1]))


class FlagByLanguage(Template):
    """The flag of the only country of a region (or subregion) where a language is official."""

    name, category, difficulty = "flag_by_language", "culture", "hard"

    def propose(self, facts):
        out = []
        for c in facts.countries:
            for area_kind in ("region", "subregion"):
                area = c.facts.get(area_kind)
                if area:
                    out.extend(Candidate((c.id,), {"language": lang, "area": area,
                                                   "area_kind": area_kind},
                                         chain(f"language:{lang}@{area}", c.id, c.image_id))
                               for lang in c.facts.get("languages") or [])
        return out

    def resolve(self, facts, clue):
        lang = fold(str(clue.get("language", ""))).casefold()
        area = fold(str(clue.get("area", ""))).casefold()
        area_kind = clue.get("area_kind", "region")
        return [(c.id,) for c in facts.countries
                if fold(str(c.facts.get(area_kind, ""))).casefold() == area
                and lang in (fold(str(x)).casefold() for x in c.facts.get("languages") or [])]

    def subject(self, facts, cand, ph):
        return flag_np(ph, ph.say(LANGUAGE, r=cand.clue["area"], lang=cand.clue["language"]))


def country_families() -> list[Template]:
    """The one-country families, in listing order."""
    return [
        FlagNamed(), FlagPlain(), FlagWithCapital(),
        FlagByFact("flag_by_capital", "capital", "geography", "medium"),
        FlagByFact("flag_by_currency", ("currency_code", "currency_name"), "politics", "medium"),
        FlagByFact("flag_by_demonym", "demonym", "culture", "medium"),
        FlagByNeighbours(), FlagByLanguage(),
        FlagByFact("flag_by_calling_code", "calling_code", "engineering", "hard", body_only=True),
        FlagByFact("flag_by_domain", "tld", "engineering", "hard", body_only=True),
        FlagOfCityCapital(),
    ]
