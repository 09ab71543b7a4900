"""The lead rule: search snippets quote only a page's lead paragraphs; browse shows all.

Checked on small worlds written from scratch (old format without ``lead``, and
the version-2 format with it) and on the shipped world.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from knowgen.errors import DataError
from knowgen.search.index import WorldIndex
from knowgen.search.local import LocalBrowser, LocalTextSearch
from knowgen.world.data import MEDIA_HOST, PAGE_HOST, load_world

BODY_WORD = "Quillborough"


def _write_world(root: Path, lead: int | None, version: str = "2") -> Path:
    (root / "images").mkdir(parents=True)
    Image.new("RGB", (24, 16), (200, 30, 30)).save(root / "images" / "flag-zz.png")
    url = PAGE_HOST + "/wiki/Zedland"
    world = {
        "version": version,
        "entities": [{"id": "country/zz", "kind": "country", "name": "Zedland", "aliases": [],
                      "facts": {"capital": "Qrrt"}, "image_id": "flag/zz", "page_url": url}],
        "images": [{"id": "flag/zz", "file": "flag-zz.png", "url": MEDIA_HOST + "/flag-zz.png",
                    "title": "Flag of Zedland", "page_url": url, "entity_id": "country/zz",
                    "official": True, "kind": "flag"}],
    }
    page = {"url": url, "title": "Zedland", "entity_id": "country/zz", "kind": "entity",
            "text": ("Zedland is a small country.\n\nIts capital is Qrrt.\n\n"
                     f"Its second city is {BODY_WORD}, on the coast.")}
    if lead is not None:
        page["lead"] = lead
    (root / "world.json").write_text(json.dumps(world), encoding="utf-8")
    (root / "pages.jsonl").write_text(json.dumps(page) + "\n", encoding="utf-8")
    return root


def test_body_fact_ranks_the_page_but_only_browse_shows_it(tmp_path):
    root = _write_world(tmp_path / "w", lead=2)
    hits = LocalTextSearch(root).search(f"second city {BODY_WORD}")
    assert [h.title for h in hits] == ["Zedland"]  # the whole page is indexed
    assert BODY_WORD not in hits[0].snippet
    assert hits[0].snippet in ("Zedland is a small country.", "Its capital is Qrrt.")
    assert BODY_WORD in LocalBrowser(root).browse(hits[0].url).text
    assert BODY_WORD in LocalBrowser(root).browse(hits[0].url, query=BODY_WORD).text


def test_old_pages_without_lead_load_and_every_paragraph_is_lead(tmp_path):
    root = _write_world(tmp_path / "old", lead=None, version="1")
    world = load_world(root)
    page = next(iter(world.pages.values()))
    assert world.version == "1" and page.lead is None and len(page.paragraphs()) == 3
    hits = LocalTextSearch(root).search(BODY_WORD)
    assert BODY_WORD in hits[0].snippet


@pytest.mark.parametrize("bad", [0, -1, "2", True, 1.5])
def test_a_malformed_lead_is_a_clear_error(tmp_path, bad):
    root = _write_world(tmp_path / "bad", lead=1)
    page = json.loads((root / "pages.jsonl").read_text(encoding="utf-8"))
    page["lead"] = bad
    (root / "pages.jsonl").write_text(json.dumps(page) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="lead"):
        load_world(root)


def test_an_unknown_page_key_is_a_clear_error(tmp_path):
    root = _write_world(tmp_path / "odd", lead=1)
    page = json.loads((root / "pages.jsonl").read_text(encoding="utf-8"))
    page["leed"] = 1
    (root / "pages.jsonl").write_text(json.dumps(page) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="unknown page keys"):
        load_world(root)


def test_a_lead_longer_than_the_page_means_the_whole_page(tmp_path):
    root = _write_world(tmp_path / "long", lead=9)
    hits = LocalTextSearch(root).search(BODY_WORD)
    assert BODY_WORD in hits[0].snippet


# ----------------------------------------------------------------------------- shipped world


@pytest.fixture(scope="module")
def index():
    return WorldIndex(load_world())


def _lead_and_body(page):
    paragraphs = page.paragraphs()
    return "\n\n".join(paragraphs[:page.lead]), "\n\n".join(paragraphs[page.lead:])


def test_shipped_snippets_never_quote_the_body(index):
    world = index.world
    checked = 0
    for e in world.entities_of("country")[::7]:
        codes = e.facts["calling_codes"]
        if not codes:
            continue
        page = world.pages[e.page_url]
        lead, body = _lead_and_body(page)
        assert codes[0] in body and codes[0] not in lead, e.id
        query = f"{e.name} international calling code {codes[0]}"
        ranked = [p.url for p, _ in index.search_pages(query, 5)]
        assert page.url in ranked, e.id  # the body fact still finds the page
        snippet = index.snippet(page, query)
        assert codes[0] not in snippet, (e.id, snippet)
        assert snippet.strip("…")[:40] in " ".join(lead.split()), (e.id, snippet)
        checked += 1
    assert checked >= 25


def test_shipped_pages_have_a_lead(index):
    for page in index.world.pages.values():
        assert page.lead is not None and 1 <= page.lead <= len(page.paragraphs()), page.url
