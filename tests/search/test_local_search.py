"""Local search, image search and browse over the real shipped world and a tiny one."""

import json
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from knowgen.errors import ToolError
from knowgen.registry import BROWSERS, IMAGE_SEARCH, TEXT_SEARCH
from knowgen.search.analysis import query_terms
from knowgen.search.base import Browser, ImageSearch, TextSearch
from knowgen.search.index import get_index, url_key
from knowgen.search.local import LocalBrowser, LocalImageSearch, LocalTextSearch
from knowgen.world.data import MEDIA_HOST, PAGE_HOST, load_world

ODD_QUERIES = [
    'he said: "foo" (bar) [baz]', "AND OR NOT", "title:france", "-x +y ~2 ^3 *", "a:b:c",
    "((((", "]]]", "\\", "'", '"', "#", "#zzzzzz", "日本の国旗", "Ελλάδα", "🙂 flag",
    "x" * 5000, " \t\n ", "IN [a b]", "field:[1 TO 2]", "/regex.*/", "null", "0x00",
]


@pytest.fixture(scope="module")
def world():
    return load_world()


@pytest.fixture(scope="module")
def text_search():
    return LocalTextSearch()


@pytest.fixture(scope="module")
def image_search():
    return LocalImageSearch()


def test_registered_and_protocols():
    assert isinstance(TEXT_SEARCH.create("local"), TextSearch)
    assert isinstance(IMAGE_SEARCH.create("local"), ImageSearch)
    assert isinstance(BROWSERS.create("local"), Browser)


def test_index_is_built_once_per_world():
    assert get_index() is get_index(None)
    assert get_index() is get_index(str(load_world().data_dir))


@pytest.mark.parametrize("query", ODD_QUERIES)
def test_odd_queries_never_raise(text_search, image_search, query):
    for hit in text_search.search(query, 5):
        assert hit.url.startswith(PAGE_HOST) and len(hit.snippet) <= 245
    for hit in image_search.search_images(query, 5):
        assert Path(hit.local_path).is_file()


def test_empty_query_and_top_k_bounds(text_search, image_search):
    assert text_search.search("") == [] and text_search.search("   ") == []
    assert image_search.search_images("") == []
    assert text_search.search("capital", 0) == []
    assert len(text_search.search("capital", "3")) == 3
    assert len(text_search.search("capital", 10_000)) <= 50


def test_capital_query_finds_country_and_snippet_holds_answer(world, text_search):
    country = world.entities["country/bf"]
    hits = text_search.search(f"capital {country.facts['capital']}")
    urls = [h.url for h in hits]
    assert country.page_url in urls
    hit = hits[urls.index(country.page_url)]
    assert country.facts["capital"] in hit.snippet
    assert hit.title == country.name and hit.score > 0


def test_hex_colour_is_searchable_with_and_without_hash(world, text_search):
    shared = Counter(b.facts["hex"] for b in world.entities_of("brand"))
    brands = [b for b in world.entities_of("brand") if shared[b.facts["hex"]] == 1][:40]
    assert len(brands) == 40  # a hex several brands share names none of them
    for brand in brands:
        hex_code = brand.facts["hex"]
        for query in (hex_code, hex_code.lstrip("#").lower(), f"official colour {hex_code} brand"):
            urls = [h.url for h in text_search.search(query, 3)]
            assert brand.page_url in urls, (query, brand.name)


@pytest.mark.parametrize("fact, queries", [
    ("tlds", ("{} domain", "the country behind the web domain {}", "sites ending in {}.")),
    ("calling_codes", ("{} calling code", "{} phone number",
                       "the country whose telephone country code is {}")),
])
def test_every_signed_code_finds_its_country_even_where_the_bare_word_is_common(
        world, text_search, fact, queries):
    # As bare words ".in", ".it", ".is" are stop words, ".ar" and ".co" name brands and
    # cities, "66" is in "Cloud 66": only the code with its sign finds the country.
    shared = Counter(t for c in world.entities_of("country") for t in c.facts.get(fact, []))
    pairs = [(c, t) for c in world.entities_of("country") for t in c.facts.get(fact, [])
             if shared[t] == 1]
    assert len(pairs) > 200
    for query in queries:
        missed = [t for c, t in pairs
                  if c.page_url not in [h.url for h in text_search.search(query.format(t), 3)]]
        assert len(missed) <= len(pairs) // 100, (query, missed)


def test_signed_codes_are_terms_of_their_own():
    assert query_terms("web addresses ending in .in") == [
        ("web", 1.0), ("address", 1.0), ("ending", 1.0), (".in", 1.0)]
    assert query_terms("dial (+66)") == [("dial", 1.0), ("+66", 1.0), ("66", 1.0)]
    # host names and sums are words as before
    assert query_terms("sponsor.example.com 2+2") == [
        ("sponsor", 1.0), ("example", 1.0), ("com", 1.0), ("2", 1.0)]


def test_query_terms_weigh_hex_and_drop_stop_words():
    assert query_terms("the flag of #F90") == [("flag", 1.0), ("ff9900", 3.0)]
    assert query_terms("The of") == [("the", 1.0), ("of", 1.0)]
    assert query_terms("Côte d'Ivoire colors") == [("cote", 1.0), ("d", 1.0), ("ivoire", 1.0),
                                                   ("colour", 1.0)]


def test_world_hit_rates(world, text_search, image_search):
    """Scripted-agent style queries over every entity of the world find the right page or image."""
    capital, flags, hexes, logos = [], [], [], []
    for country in world.entities_of("country"):
        cap = country.facts.get("capital")
        if cap:
            hits = text_search.search(f"capital {cap}", 5)
            capital.append(any(h.url == country.page_url or country.name in h.snippet
                               for h in hits))
        ids = [h.image_id for h in image_search.search_images(f"flag of {country.name}", 5)]
        flags.append(country.image_id in ids)
    shared = Counter(b.facts["hex"] for b in world.entities_of("brand"))
    for brand in world.entities_of("brand"):
        if shared[brand.facts["hex"]] == 1:  # a hex several brands share names none of them
            hexes.append(brand.page_url in [h.url for h in text_search.search(brand.facts["hex"], 3)])
        ids = [h.image_id for h in image_search.search_images(f"{brand.name} logo", 5)]
        logos.append(brand.image_id in ids)
    for name, results in [("capital", capital), ("flag", flags), ("hex", hexes), ("logo", logos)]:
        assert results, name
        assert sum(results) / len(results) >= 0.98, (name, sum(results), len(results))


def test_image_search_hits_are_world_images(world, image_search):
    hits = image_search.search_images("flag of Burkina Faso", 5)
    assert hits[0].image_id == "flag/bf"
    assert "lookalike/flag/bf" in [h.image_id for h in hits]
    for hit in hits:
        img = world.images[hit.image_id]
        assert hit.url == img.url and hit.page_url == img.page_url
        assert Path(hit.local_path).is_absolute()
        with Image.open(hit.local_path) as im:
            assert im.size[0] > 0


def test_fetch_image(world, image_search):
    img = world.images["logo/" + world.entities_of("brand")[0].facts["slug"]]
    hit = image_search.fetch_image(img.url)
    assert hit.image_id == img.id and Path(hit.local_path).is_file()
    assert image_search.fetch_image(img.url.replace("https://", "http://")).image_id == img.id
    with pytest.raises(ToolError, match="only world image URLs"):
        image_search.fetch_image("https://example.com/flag.png")
    with pytest.raises(ToolError, match="image_search"):
        image_search.fetch_image(MEDIA_HOST + "/no-such-file.png")
    with pytest.raises(ToolError, match="browse"):
        image_search.fetch_image(world.entities["country/fr"].page_url)
    with pytest.raises(ToolError):
        image_search.fetch_image("")


def test_browse_whole_and_focused(world):
    browser = LocalBrowser()
    page = world.pages[world.entities["country/bf"].page_url]
    whole = browser.browse(page.url)
    assert whole.title == page.title and whole.text == page.text
    focused = browser.browse(page.url, query="currency")
    paragraphs = focused.text.split("\n\n")
    all_paragraphs = page.text.split("\n\n")
    assert len(paragraphs) == 3
    assert [all_paragraphs.index(p) for p in paragraphs] == sorted(
        all_paragraphs.index(p) for p in paragraphs)
    assert any("XOF" in p for p in paragraphs)
    assert browser.browse(page.url.lower() + "/", "ouagadougou").url == page.url


def test_browse_errors_give_hints(world):
    browser = LocalBrowser()
    with pytest.raises(ToolError, match="search result"):
        browser.browse(PAGE_HOST + "/wiki/Atlantis")
    with pytest.raises(ToolError, match="offline"):
        browser.browse("https://en.wikipedia.org/wiki/France")
    with pytest.raises(ToolError, match="is an image"):
        browser.browse(world.images["flag/fr"].url)


def test_url_key_is_forgiving():
    assert url_key("HTTPS://www.Encyclopedia.world.invalid/wiki/Burkina%20Faso/#x") == url_key(
        "encyclopedia.world.invalid/wiki/Burkina_Faso")


@pytest.fixture()
def tiny_world(tmp_path):
    """A two-entity world written from scratch, to pin the format end to end."""
    (tmp_path / "images").mkdir()
    Image.new("RGB", (24, 16), (200, 30, 30)).save(tmp_path / "images" / "flag-zz.png")
    Image.new("RGB", (24, 24), (255, 153, 0)).save(tmp_path / "images" / "logo-acme.png")
    entities = [
        {"id": "country/zz", "kind": "country", "name": "Zédland", "aliases": ["Zed"],
         "facts": {"capital": "Qrrt"}, "image_id": "flag/zz",
         "page_url": PAGE_HOST + "/wiki/Zedland"},
        {"id": "brand/acme", "kind": "brand", "name": "Acme", "aliases": [],
         "facts": {"hex": "#FF9900"}, "image_id": "logo/acme",
         "page_url": PAGE_HOST + "/wiki/Acme"},
    ]
    images = [
        {"id": "flag/zz", "file": "flag-zz.png", "url": MEDIA_HOST + "/flag-zz.png",
         "title": "Flag of Zédland", "page_url": PAGE_HOST + "/wiki/Zedland",
         "entity_id": "country/zz", "official": True, "kind": "flag"},
        {"id": "logo/acme", "file": "logo-acme.png", "url": MEDIA_HOST + "/logo-acme.png",
         "title": "Acme logo", "page_url": PAGE_HOST + "/wiki/Acme",
         "entity_id": "brand/acme", "official": True, "kind": "logo"},
    ]
    pages = [
        {"url": PAGE_HOST + "/wiki/Zedland", "title": "Zédland",
         "text": "Zédland is small.\n\nIts capital is Qrrt.\n\nIt has a red flag.\n\nNo money.",
         "entity_id": "country/zz", "kind": "entity"},
        {"url": PAGE_HOST + "/wiki/Acme", "title": "Acme",
         "text": "Acme makes things.\n\nIts colour is #FF9900.", "entity_id": "brand/acme",
         "kind": "entity"},
    ]
    (tmp_path / "world.json").write_text(json.dumps(
        {"version": "t", "entities": entities, "images": images}), encoding="utf-8")
    (tmp_path / "pages.jsonl").write_text(
        "\n".join(json.dumps(p) for p in pages) + "\n", encoding="utf-8")
    return str(tmp_path)


def test_custom_world_folder(tiny_world):
    search = LocalTextSearch(data_dir=tiny_world)
    assert next(h.title for h in search.search("zedland", 5)) == "Zédland"
    assert search.search("#ff9900")[0].title == "Acme"
    assert search.search("ZÉDLAND capital city")[0].title == "Zédland"
    assert search.search("capital?")[0].snippet == "Its capital is Qrrt."
    images = LocalImageSearch(data_dir=tiny_world)
    assert images.search_images("Zed flag")[0].image_id == "flag/zz"
    assert images.search_images("logo FF9900")[0].image_id == "logo/acme"
    page = LocalBrowser(data_dir=tiny_world).browse(PAGE_HOST + "/wiki/Zedland", "flag")
    assert page.text.split("\n\n") == ["Zédland is small.", "Its capital is Qrrt.",
                                       "It has a red flag."]


def test_every_page_and_image_is_indexed(world):
    """The index holds exactly the world's pages and images, each reachable by URL and by search."""
    from knowgen.search.index import get_index

    index = get_index()
    searcher = index._index.searcher()
    assert searcher.num_docs == len(world.pages) + len(world.images)
    for page in world.pages.values():
        assert index.page(page.url) == page
    for image in world.images.values():
        assert index.image(image.url) == image
    # every entity page and official image is found by its own name
    for entity in world.entities.values():
        pages = [p.url for p, _ in index.search_pages(entity.name, top_k=10)]
        assert entity.page_url in pages, entity.id
        images = [i.id for i, _ in index.search_images(entity.name, top_k=10)]
        assert entity.image_id in images, entity.id
