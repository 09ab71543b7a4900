"""Encyclopedia-like pages of the world: entity articles and distractor pages.

Each fact goes into its own paragraph, worded in one of several ways, and the
paragraphs after the opening one come in an order that differs from entity to
entity (chosen by a hash of the entity id), so that a search snippet does not
always hold the answer and reading the page matters.
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
              url: str | None = None) -> dict[str, str]:
    """A page record as written to ``pages.jsonl``."""
    text = "\n\n".join(p.strip() for p in paragraphs if p.strip())
    return {"url": url or page_url(title), "title": title, "text": text,
            "entity_id": entity_id, "kind": kind}


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


def arrange(entity_id: str, opening: str, blocks: list[str]) -> list[str]:
    """The opening paragraph, then ``blocks`` in an entity-specific order.

    Sometimes two neighbouring blocks share one paragraph, so pages differ in
    length as well as order.
    """
    rng = random.Random(stable_hash("order|" + entity_id))
    blocks = [b for b in blocks if b]
    rng.shuffle(blocks)
    if len(blocks) >= 5 and rng.random() < 0.4:
        i = rng.randrange(len(blocks) - 1)
        blocks[i:i + 2] = [blocks[i] + " " + blocks[i + 1]]
    return [opening, *blocks]


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
    if f["population"]:
        text += " " + pick(e["id"] + "|pop", [
            f"Its population is about {_number(f['population'])} people.",
            f"Roughly {_number(f['population'])} people live there.",
        ])
    return text


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
    if f["area"]:
        text += f" It covers an area of about {_number(f['area'])} square kilometres."
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
                 ) -> dict[str, str]:
    """The encyclopedia page of a country entity.

    Args:
        e: The entity record (with facts).
        names: Entity id -> name, to name neighbours.
        border_codes: The land borders as the sources list them (None: not recorded).
    """
    blocks = [_country_capital(e), _country_currency(e), _country_people(e),
              _country_land(e, names, border_codes), _country_flag(e)]
    return make_page(e["name"], arrange(e["id"], _country_opening(e), blocks), e["id"],
                     url=e["page_url"])


# ----------------------------------------------------------------------------- brands


def brand_page(e: dict[str, Any], aka: Sequence[str], old: Sequence[str],
               localised: Sequence[str]) -> dict[str, str]:
    """The encyclopedia page of a brand entity."""
    name, f = e["name"], e["facts"]
    opening = pick(e["id"] + "|open", [
        (f"{name} is a brand whose logo is part of Simple Icons, a free collection of "
         "brand icons."),
        (f"{name} is an organisation or product brand. Its logo is one of the icons "
         "collected by the Simple Icons project."),
        f"The Simple Icons collection includes the logo of {name}, a well-known brand.",
    ])
    colour = pick(e["id"] + "|colour", [
        f"The official brand colour of {name} is {f['hex']}, a shade of {f['colour_name']}.",
        f"{name} uses {f['hex']} as its official colour; it is a {f['colour_name']} tone.",
        (f"The brand colour of {name} is given as the hex code {f['hex']} "
         f"({f['colour_name']})."),
    ])
    other = list(aka) + list(localised)
    if other or old:
        names_text = f"{name} is also known as {join_names(other, 'or')}." if other else ""
        if old:
            names_text += f" It was formerly called {join_names(list(old), 'or')}."
    else:
        names_text = f"No other names of {name} are recorded in the icon collection."
    logo = pick(e["id"] + "|logo", [
        (f"The {name} logo is a single-colour mark. Only the version drawn in the official "
         "brand colour counts as the official logo; monochrome copies are not the official "
         "design."),
        (f"In its official form the logo of {name} is drawn in one flat colour on a light "
         "background. Black or white copies appear in some places but are variants."),
    ])
    usage = pick(e["id"] + "|use", [
        (f"Icons such as the {name} logo are used on websites, in documentation and in "
         "software to link to the brand."),
        (f"Developers and designers often place the {name} icon next to links and buttons "
         "that lead to the brand."),
    ])
    blocks = [colour, names_text.strip(), logo, usage]
    return make_page(name, arrange(e["id"], opening, blocks), e["id"], url=e["page_url"])


# ----------------------------------------------------------------------------- distractors


def city_pages(countries: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
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


def subregion_pages(countries: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
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


def colour_pages(brands: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    """One list page per brand colour name, naming its brands."""
    groups: dict[str, list[str]] = {}
    for e in brands:
        groups.setdefault(e["facts"]["colour_name"], []).append(e["name"])
    return [make_page(f"Brands with {colour} logos", [
        (f"The brands below have official logo colours that are shades of {colour}. "
         "The exact colour of each brand is given on its own page."),
        join_names(sorted(groups[colour])) + ".",
    ], kind="distractor") for colour in sorted(groups)]


def flag_variant_page(e: dict[str, Any]) -> dict[str, str]:
    """The page illustrated by the never-adopted recoloured flag of country ``e``."""
    name = e["name"]
    return make_page(f"Proposed flags of {name}", [
        (f"Over the years several alternative designs have been suggested for the flag of "
         f"{name}."),
        ("The recoloured design shown on this page was one such proposal. It was never "
         f"adopted and is not the official flag of {name}."),
        f"For the flag actually in use, see the article on {name}.",
    ], kind="distractor")


def logo_variant_page(e: dict[str, Any]) -> dict[str, str]:
    """The page illustrated by the monochrome look-alike logo of brand ``e``."""
    name = e["name"]
    return make_page(f"{name} logo variants", [
        f"This page collects unofficial variants of the {name} logo.",
        (f"The monochrome version shown here draws the mark in black instead of the brand "
         f"colour. It is not the official design of {name}."),
    ], kind="distractor")
