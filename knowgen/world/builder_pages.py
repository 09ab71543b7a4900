"""Encyclopedia-like pages of the world: entity articles, city pages and distractors.

Each fact goes into its own paragraph, worded in one of several ways. A page
has a *lead* (its first ``lead`` paragraphs) and a *body* (the rest): search
snippets quote only the lead, so a fact written only in the body can be read
only by browsing the page. Within the lead and within the body the paragraphs
come in an order that differs from entity to entity (chosen by a hash of the
entity id).

Country pages: name, region, aliases, capital, currency, languages, demonym and
land neighbours in the lead; calling codes, internet domain, notable cities,
population, area and flag colours in the body. Brand pages: name and colour in
the lead; other and former names, website and notes on the logo in the body.
"""

from __future__ import annotations

import random
import urllib.parse
from collections.abc import Sequence
from typing import Any

from knowgen.world.builder_sources import stable_hash
from knowgen.world.data import PAGE_HOST


def page_url(title: str) -> str:
    """The encyclopedia URL of a page titled ``title``."""
    return PAGE_HOST + "/wiki/" + urllib.parse.quote(title.replace(" ", "_"))


def make_page(title: str, paragraphs: Sequence[str], entity_id: str = "", kind: str = "entity",
              url: str | None = None, lead: int | None = None) -> dict[str, Any]:
    """A page record as written to ``pages.jsonl``.

    Args:
        title: Page title.
        paragraphs: Its paragraphs (empty ones are dropped).
        entity_id: The entity the page is the article of ("" for other pages).
        kind: ``"entity"``, ``"city"`` or ``"distractor"``.
        url: Its URL (default: from the title).
        lead: How many of the first paragraphs form the lead (default: all).
    """
    kept = [p.strip() for p in paragraphs if p.strip()]
    lead = len(kept) if lead is None else min(lead, len(kept))
    return {"url": url or page_url(title), "title": title, "text": "\n\n".join(kept),
            "entity_id": entity_id, "kind": kind, "lead": lead}


def pick(key: str, options: Sequence[str]) -> str:
    """One of ``options``, chosen by a stable hash of ``key``."""
    return options[stable_hash(key) % len(options)]


def join_names(names: Sequence[str], conj: str = "and") -> str:
    """``["a", "b", "c"]`` -> ``"a, b and c"``."""
    names = list(names)
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + f" {conj} " + names[-1]


def _number(value: float) -> str:
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def arrange(entity_id: str, opening: str, blocks: list[str], body: Sequence[str] = ()
            ) -> tuple[list[str], int]:
    """The opening paragraph, ``blocks`` and then ``body``, each group in an entity-specific order.

    Sometimes two neighbouring paragraphs of a group share one paragraph, so pages
    differ in length as well as order.

    Returns:
        The paragraphs and the size of the lead (the opening and ``blocks``).
    """
    rng = random.Random(stable_hash("order|" + entity_id))

    def shuffled(group: Sequence[str]) -> list[str]:
        group = [b for b in group if b]
        rng.shuffle(group)
        if len(group) >= 5 and rng.random() < 0.4:
            i = rng.randrange(len(group) - 1)
            group[i:i + 2] = [group[i] + " " + group[i + 1]]
        return group

    lead = [opening, *shuffled(blocks)]
    return lead + shuffled(body), len(lead)


# ----------------------------------------------------------------------------- countries


def _country_opening(e: dict[str, Any]) -> str:
    name, f = e["name"], e["facts"]
    region = "the Americas" if f["region"] == "Americas" else f["region"]
    if f["subregion"] and region:
        where = f"{f['subregion']}, a part of {region}"
    else:
        where = f["subregion"] or region or "the world"
    text = pick(e["id"] + "|open", [
        f"{name} is a country or territory of {where}.",
        (f"{name} lies in {where}. This article gives an overview of its government, "
         "people, money and national symbols."),
        f"Located in {where}, {name} is one of the places described in this encyclopedia.",
    ])
    aliases = [a for a in e["aliases"] if a != name][:3]
    if aliases:
        text += f" It is also referred to as {join_names(aliases, 'or')}."
    return text


def _country_capital(e: dict[str, Any]) -> str:
    name, cap = e["name"], e["facts"]["capital"]
    return pick(e["id"] + "|capital", [
        f"The capital of {name} is {cap}.",
        (f"{cap} serves as the capital city of {name}, and most national institutions "
         "have their seat there."),
        f"{name} is governed from {cap}, its capital and seat of government.",
        f"The capital city of {name} is {cap}, where the government meets.",
    ])


def _country_currency(e: dict[str, Any]) -> str:
    name, currencies = e["name"], e["facts"]["currencies"]
    if not currencies:
        return f"The sources used here record no currency for {name}."
    if len(currencies) == 1:
        c = currencies[0]
        return pick(e["id"] + "|money", [
            f"The official currency of {name} is the {c['name']} ({c['code']}).",
            (f"In {name}, prices are given in the {c['name']}, whose ISO 4217 code is "
             f"{c['code']}."),
            f"People in {name} pay with the {c['name']} (currency code {c['code']}).",
        ])
    listed = join_names([f"the {c['name']} ({c['code']})" for c in currencies])
    return pick(e["id"] + "|money", [
        f"Several currencies are in use in {name}: {listed}.",
        f"{name} uses more than one currency, namely {listed}.",
    ])


def _country_people(e: dict[str, Any]) -> str:
    name, f = e["name"], e["facts"]
    langs = f["languages"]
    if not langs:
        text = f"No official language of {name} is recorded in the sources used here."
    elif len(langs) == 1:
        text = pick(e["id"] + "|lang", [
            f"The official language of {name} is {langs[0]}.",
            f"{langs[0]} is the official language of {name}.",
        ])
    else:
        text = pick(e["id"] + "|lang", [
            f"{name} has several official languages: {join_names(langs)}.",
            f"{join_names(langs)} are the official languages of {name}.",
        ])
    if f.get("demonym"):
        text += " " + pick(e["id"] + "|demonym", [
            f"Its people are called {f['demonym']}.",
            f"The demonym for the people of {name} is {f['demonym']}.",
            f"A person from {name} is described as {f['demonym']}.",
            f"{f['demonym']} is the word for the people of {name} and for what comes from there.",
        ])
    return text


def _country_size(e: dict[str, Any]) -> str:
    f = e["facts"]
    parts = []
    if f["population"]:
        parts.append(pick(e["id"] + "|pop", [
            f"Its population is about {_number(f['population'])} people.",
            f"Roughly {_number(f['population'])} people live in {e['name']}.",
        ]))
    if f["area"]:
        parts.append(f"It covers an area of about {_number(f['area'])} square kilometres.")
    return " ".join(parts)


def _country_phone(e: dict[str, Any]) -> str:
    name, codes = e["name"], e["facts"].get("calling_codes") or []
    if len(codes) == 1:
        return pick(e["id"] + "|phone", [
            f"The international calling code of {name} is {codes[0]}.",
            f"To phone {name} from abroad, callers dial {codes[0]} before the local number.",
            (f"Telephone numbers in {name} take the country code {codes[0]} when dialled from "
            "another country."),
        ])
    if codes:
        return pick(e["id"] + "|phone", [
            f"{name} has more than one international calling code: {join_names(codes)}.",
            f"Calls to {name} from abroad use the codes {join_names(codes)}.",
        ])
    return ""


def _country_domain(e: dict[str, Any]) -> str:
    name, tlds = e["name"], e["facts"].get("tlds") or []
    if not tlds:
        return ""
    listed = join_names(tlds)
    return pick(e["id"] + "|tld", [
        f"The internet country code domain of {name} is {listed}.",
        f"Websites registered in {name} often end in {listed}, its country code top-level domain.",
        f"On the internet, {name} is identified by the top-level domain {listed}.",
    ])


def _country_cities(e: dict[str, Any]) -> str:
    name, cities = e["name"], e["facts"].get("cities") or []
    if len(cities) == 1:
        return pick(e["id"] + "|cities", [
            f"Another large city of {name}, besides the capital, is {cities[0]}.",
            f"Apart from the capital, {cities[0]} is one of the biggest towns of {name}.",
        ])
    if cities:
        listed = join_names(cities)
        return pick(e["id"] + "|cities", [
            f"Besides the capital, the largest cities of {name} include {listed}.",
            f"Other important cities of {name} are {listed}.",
            f"Among the most populous towns of {name}, outside the capital, are {listed}.",
        ])
    return ""


def _country_land(e: dict[str, Any], names: dict[str, str], border_codes: list[str] | None
                  ) -> str:
    name, f = e["name"], e["facts"]
    neighbours = sorted(names[b] for b in f["borders"])
    if len(neighbours) == 1:
        text = pick(e["id"] + "|land", [
            f"{name} shares a land border with one country only: {neighbours[0]}.",
            f"The only land neighbour of {name} is {neighbours[0]}.",
        ])
    elif neighbours:
        text = pick(e["id"] + "|land", [
            f"{name} shares land borders with {join_names(neighbours)}.",
            f"On land, {name} borders {join_names(neighbours)}.",
            f"The land neighbours of {name} are {join_names(neighbours)}.",
        ])
    elif border_codes:
        text = f"{name} has land borders, but none of its neighbours has an article here."
    elif border_codes is None:
        text = f"The sources used here record no land borders for {name}."
    else:
        text = pick(e["id"] + "|land", [
            f"{name} has no land border with any other country.",
            f"{name} shares no land borders; it is bounded by the sea.",
        ])
    return text


def _country_flag(e: dict[str, Any]) -> str:
    name, colours = e["name"], e["facts"]["flag_colours"]
    listed = join_names(colours)
    return pick(e["id"] + "|flag", [
        f"The flag of {name} is mainly {listed}.",
        f"The national flag of {name} uses the colours {listed}.",
        f"The flag of {name} shows the colours {listed}.",
    ])


def country_page(e: dict[str, Any], names: dict[str, str], border_codes: list[str] | None
                 ) -> dict[str, Any]:
    """The encyclopedia page of a country entity.

    Args:
        e: The entity record (with facts).
        names: Entity id -> name, to name neighbours.
        border_codes: The land borders as the sources list them (None: not recorded).
    """
    lead = [_country_capital(e), _country_currency(e), _country_people(e),
            _country_land(e, names, border_codes)]
    body = [_country_phone(e), _country_domain(e), _country_cities(e), _country_size(e),
            _country_flag(e)]
    paragraphs, n_lead = arrange(e["id"], _country_opening(e), lead, body)
    return make_page(e["name"], paragraphs, e["id"], url=e["page_url"], lead=n_lead)


# ----------------------------------------------------------------------------- brands


def brand_page(e: dict[str, Any], aka: Sequence[str], old: Sequence[str],
               localised: Sequence[str], fill_word: str = "black") -> dict[str, Any]:
    """The encyclopedia page of a brand entity (name and colour in the lead).

    ``fill_word`` names the colour of its monochrome look-alike.
    """
    name, f = e["name"], e["facts"]
    opening = pick(e["id"] + "|open", [
        (f"{name} is a brand whose logo is part of Simple Icons, a free collection of "
         "brand icons."),
        (f"{name} is an organisation or product brand. Its logo is one of the icons "
         "collected by the Simple Icons project."),
        f"The Simple Icons collection includes the logo of {name}, a well-known brand.",
    ])
    other = list(aka) + list(localised)
    if other:
        opening += f" {name} is also known as {join_names(other, 'or')}."
    shade = f"a shade of {f['colour_name']}" if f["colour_name"] else ""
    colour = pick(e["id"] + "|colour", [
        f"The official brand colour of {name} is {f['hex']}" + (f", {shade}." if shade else "."),
        f"{name} uses {f['hex']} as its official colour"
        + (f"; it is a {f['colour_name']} tone." if shade else "."),
        f"The brand colour of {name} is given as the hex code {f['hex']}"
        + (f" ({f['colour_name']})." if shade else "."),
    ])
    former = ""
    if old:
        former = pick(e["id"] + "|old", [
            f"{name} was formerly called {join_names(list(old), 'or')}.",
            f"Before its current name, the brand was known as {join_names(list(old), 'or')}.",
        ])
    elif not other:
        former = f"No other names of {name} are recorded in the icon collection."
    website = ""
    if f.get("website"):
        website = pick(e["id"] + "|web", [
            f"The website of {name} is at {f['website']}.",
            f"{name} publishes its brand material on the web domain {f['website']}.",
            f"More about {name} can be found online at {f['website']}.",
        ])
    logo = pick(e["id"] + "|logo", [
        (f"The {name} logo is a single-colour mark. Only the version drawn in the official "
         "brand colour counts as the official logo; monochrome copies are not the official "
         "design."),
        (f"In its official form the logo of {name} is drawn in one flat colour on a light "
         f"background. {fill_word.capitalize()} or white copies appear in some places but are variants."),
    ])
    usage = pick(e["id"] + "|use", [
        (f"Icons such as the {name} logo are used on websites, in documentation and in "
         "software to link to the brand."),
        (f"Developers and designers often place the {name} icon next to links and buttons "
         "that lead to the brand."),
    ])
    paragraphs, n_lead = arrange(e["id"], opening, [colour], [former, website, logo, usage])
    return make_page(name, paragraphs, e["id"], url=e["page_url"], lead=n_lead)


def city_title(city: str, country: str) -> str:
    """The title of the page of a notable city: ``"<city> (city in <country>)"``."""
    return f"{city} (city in {country})"


def notable_city_page(city: dict[str, Any], country: dict[str, Any]) -> dict[str, Any]:
    """The page of a notable (non-capital) city; its one-paragraph lead names its country."""
    name, where = city["name"], country["name"]
    key = f"{country['id']}|city|{name}"
    sub = country["facts"].get("subregion") or country["facts"].get("region") or ""
    lead = pick(key, [
        f"{name} is a city in {where}.",
        f"{name} is one of the larger cities of {where}.",
        f"The city of {name} lies in {where}" + (f", in {sub}." if sub else "."),
        f"{name} is an urban centre of {where}.",
        f"Located in {where}, {name} is among the country's most populous places.",
    ])
    body = []
    if city.get("population"):
        body.append(pick(key + "|pop", [
            f"About {_number(city['population'])} people live in {name}, according to GeoNames.",
            f"GeoNames records a population of about {_number(city['population'])} for {name}.",
        ]))
    body.append(f"This page is about the city; {where} has its own article.")
    return make_page(city_title(name, where), [lead, *body], kind="city", lead=1)


# ----------------------------------------------------------------------------- distractors


def city_pages(countries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One page per capital city, titled ``"<Capital> (city)"``."""
    by_capital: dict[str, list[dict[str, Any]]] = {}
    for e in countries:
        by_capital.setdefault(e["facts"]["capital"], []).append(e)
    pages = []
    for capital in sorted(by_capital):
        shared = len(by_capital[capital]) > 1
        for e in by_capital[capital]:
            title = f"{capital} (city, {e['name']})" if shared else f"{capital} (city)"
            pages.append(make_page(title, [
                pick(e["id"] + "|city", [
                    f"{capital} is a city. It is the capital of {e['name']}.",
                    f"{capital} is the capital city of {e['name']}.",
                ]),
                (f"As the capital, {capital} is home to the government of {e['name']}. "
                 "This page is about the city; the country has its own article."),
            ], kind="distractor"))
    return pages


def subregion_pages(countries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One list page per subregion, naming its countries."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for e in countries:
        sub = e["facts"]["subregion"] or e["facts"]["region"]
        if sub:
            groups.setdefault(sub, []).append(e)
    pages = []
    for sub in sorted(groups):
        names = sorted(e["name"] for e in groups[sub])
        pages.append(make_page(f"Countries of {sub}", [
            (f"This list names the countries and territories of {sub} that have an article "
             "in this encyclopedia."),
            join_names(names) + ".",
        ], kind="distractor"))
    return pages


def colour_pages(brands: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One list page per brand colour name, naming its brands."""
    groups: dict[str, list[str]] = {}
    for e in brands:
        if e["facts"]["colour_name"]:  # a brand with an unclear colour has no colour name
            groups.setdefault(e["facts"]["colour_name"], []).append(e["name"])
    return [make_page(f"Brands with {colour} logos", [
        (f"The brands below have official logo colours that are shades of {colour}. "
         "The exact colour of each brand is given on its own page."),
        join_names(sorted(groups[colour])) + ".",
    ], kind="distractor") for colour in sorted(groups)]


def flag_variant_page(e: dict[str, Any]) -> dict[str, Any]:
    """The page illustrated by the never-adopted recoloured flag of country ``e``."""
    name = e["name"]
    return make_page(f"Proposed flags of {name}", [
        (f"Over the years several alternative designs have been suggested for the flag of "
         f"{name}."),
        ("The recoloured design shown on this page was one such proposal. It was never "
         f"adopted and is not the official flag of {name}."),
        f"For the flag actually in use, see the article on {name}.",
    ], kind="distractor")


def logo_variant_page(e: dict[str, Any], fill_word: str = "black") -> dict[str, Any]:
    """The page illustrated by the monochrome look-alike logo of brand ``e`` (drawn in ``fill_word``)."""
    name = e["name"]
    return make_page(f"{name} logo variants", [
        f"This page collects unofficial variants of the {name} logo.",
        (f"The monochrome version shown here draws the mark in {fill_word} instead of the brand "
         f"colour. It is not the official design of {name}."),
    ], kind="distractor")
