"""Serper and SearXNG backends against local servers speaking their wire formats."""

from __future__ import annotations

import logging

import pytest
from PIL import Image
from webtools import Reply, world_image

from knowgen.errors import ConfigError, ToolError
from knowgen.search.base import ImageSearch, TextSearch
from knowgen.search.searxng import SearxngSearch
from knowgen.search.serper import SerperSearch

KEY = "test-serper-key-4f9a"


def fake_serper(web, organic=None, images=None):
    """Serve Serper's /search and /images; answer 403 for a wrong key."""
    def handler(kind, items):
        def answer(req):
            if req.headers.get("x-api-key") != KEY:
                return Reply(403, {"message": "Unauthorized."})
            body = req.json()
            return Reply(200, {"searchParameters": body, kind: items[: body["num"]]})
        return answer

    web.route("/search", handler("organic", organic or []))
    web.route("/images", handler("images", images or []))


@pytest.fixture
def serper_key(monkeypatch):
    monkeypatch.setenv("SERPER_API_KEY", KEY)


def make_serper(web, tmp_path, **kw):
    return SerperSearch(endpoint=web.url(""), image_cache_dir=str(tmp_path / "img"),
                        allow_hosts=[web.url()], backoff_base=0, **kw)


def test_serper_missing_key_names_the_variable(monkeypatch):
    monkeypatch.delenv("SERPER_API_KEY", raising=False)
    monkeypatch.delenv("MY_SERPER", raising=False)
    with pytest.raises(ConfigError, match="SERPER_API_KEY"):
        SerperSearch()
    with pytest.raises(ConfigError, match="MY_SERPER"):
        SerperSearch(api_key_env="MY_SERPER")


def test_serper_text_search(web, tmp_path, serper_key, caplog):
    organic = [{"title": f"Result {i}", "link": f"https://site{i}.example/page",
                "snippet": f"Snippet {i} about Ouagadougou", "position": i + 1} for i in range(8)]
    organic.insert(2, {"title": "no link"})
    fake_serper(web, organic=organic)
    caplog.set_level(logging.DEBUG)
    serper = make_serper(web, tmp_path, gl="bf", hl="fr")
    assert isinstance(serper, TextSearch) and isinstance(serper, ImageSearch)
    hits = serper.search("capital of Burkina Faso", top_k=3)
    assert [h.url for h in hits] == [f"https://site{i}.example/page" for i in range(3)]
    assert hits[0].snippet == "Snippet 0 about Ouagadougou" and hits[0].score > hits[1].score
    req = web.hits("/search")[0]
    assert req.method == "POST" and req.headers["content-type"] == "application/json"
    assert req.json() == {"q": "capital of Burkina Faso", "num": 10, "gl": "bf", "hl": "fr"}
    assert serper.search("   ") == [] and serper.search("x", top_k=0) == []
    assert len(web.hits("/search")) == 1  # nothing sent for an empty query
    assert KEY not in caplog.text and KEY not in repr(serper)


def test_serper_empty_results_and_failures(web, tmp_path, serper_key, monkeypatch):
    fake_serper(web)
    serper = make_serper(web, tmp_path, max_retries=2)
    assert serper.search("zzzz nothing") == []
    web.route("/search", Reply(429, {"message": "Too many requests"}))
    with pytest.raises(ToolError, match="rate limiting"):
        serper.search("flag")
    assert len(web.hits("/search")) == 1 + 3
    web.route("/search", Reply(200, "<html>maintenance</html>"))
    with pytest.raises(ToolError, match="unreadable answer"):
        serper.search("flag")
    fake_serper(web)
    monkeypatch.setenv("SERPER_API_KEY", "wrong-key")
    with pytest.raises(ToolError, match="HTTP 403: the Serper API key was refused"):
        make_serper(web, tmp_path).search("flag")
    web.route("/search", Reply(200, {"organic": "not a list"}))
    with pytest.raises(ToolError, match="malformed"):
        serper.search("flag")


def test_serper_image_search_downloads_top_results(web, tmp_path, serper_key):
    web.route("/img/bf.png", Reply(200, world_image("flag-bf.png"), {"Content-Type": "image/png"}))
    web.route("/img/fr.png", Reply(200, world_image("flag-fr.png"), {"Content-Type": "image/png"}))
    web.route("/thumb/ml.png", Reply(200, world_image("flag-ml.png"),
                                     {"Content-Type": "image/png"}))
    web.route("/img/page.html", Reply(200, "<html>a page</html>"))
    images = [
        {"title": "Flag of Burkina Faso", "imageUrl": web.url("/img/bf.png"),
         "link": "https://en.example/Burkina_Faso", "thumbnailUrl": web.url("/thumb/none.png")},
        {"title": "Not an image", "imageUrl": web.url("/img/page.html"), "link": "https://x/"},
        {"title": "Metadata trap", "imageUrl": "http://169.254.169.254/latest/meta-data/"},
        {"title": "Flag of Mali", "imageUrl": web.url("/img/missing.png"),
         "thumbnailUrl": web.url("/thumb/ml.png"), "link": "https://en.example/Mali"},
        {"title": "Flag of France", "imageUrl": web.url("/img/fr.png")},
    ]
    fake_serper(web, images=images)
    serper = make_serper(web, tmp_path)
    hits = serper.search_images("flag", top_k=3)
    assert [h.title for h in hits] == ["Flag of Burkina Faso", "Flag of Mali", "Flag of France"]
    assert hits[0].page_url == "https://en.example/Burkina_Faso"
    assert hits[1].url == web.url("/thumb/ml.png")
    for hit in hits:
        with Image.open(hit.local_path) as img:
            assert img.format == "PNG" and img.mode == "RGB"
    assert web.hits("/images")[0].json()["num"] == 10
    direct = serper.fetch_image(web.url("/img/fr.png"))
    assert direct.local_path == hits[2].local_path
    with pytest.raises(ToolError, match="metadata"):
        serper.fetch_image("http://169.254.169.254/latest/meta-data/")


def test_serper_image_search_with_nothing_usable(web, tmp_path, serper_key):
    fake_serper(web, images=[{"title": "page", "imageUrl": web.url("/nothing.html")}])
    serper = make_serper(web, tmp_path)
    with pytest.raises(ToolError, match="none could be downloaded"):
        serper.search_images("flag")
    fake_serper(web, images=[])
    assert serper.search_images("flag") == []


def fake_searxng(web, results, unresponsive=None):
    def answer(req):
        if req.query.get("format") != ["json"]:
            return Reply(403, "Forbidden")
        items = [r for r in results if ("img_src" in r) == (req.query.get("categories") ==
                                                             ["images"])]
        return Reply(200, {"query": req.query["q"][0], "results": items,
                           "unresponsive_engines": unresponsive or []})
    web.route("/searx/search", answer)


def test_searxng_text_and_images(web, tmp_path):
    results = [
        {"title": "Burkina Faso - Wikipedia", "url": "https://en.example/wiki/Burkina_Faso",
         "content": "Capital: Ouagadougou", "score": 3.5, "engine": "wikipedia"},
        {"title": "No URL", "content": "dropped"},
        {"title": "Ouagadougou", "url": "https://en.example/wiki/Ouagadougou", "content": "City",
         "score": "1.25"},
        {"title": "Flag", "url": web.url("/gallery/bf"), "img_src": "/files/bf.png", "score": 2},
        {"title": "Data", "url": "https://x/", "img_src": "data:image/png;base64,AAAA"},
        {"title": "Private", "url": "https://x/", "img_src": "http://192.168.1.20/cam.png"},
        {"title": "Logo", "url": "https://x/", "img_src": web.url("/files/logo.png")},
    ]
    fake_searxng(web, results)
    web.route("/files/bf.png", Reply(200, world_image("flag-bf.png"),
                                     {"Content-Type": "image/png"}))
    web.route("/files/logo.png", Reply(200, world_image("logo-accenture.png"),
                                       {"Content-Type": "image/png"}))
    searx = SearxngSearch(web.url("/searx"), language="en", safesearch=1,
                          image_cache_dir=str(tmp_path), allow_hosts=[web.url()])
    hits = searx.search("Burkina Faso capital", top_k=5)
    assert [h.title for h in hits] == ["Burkina Faso - Wikipedia", "Ouagadougou"]
    assert hits[0].snippet == "Capital: Ouagadougou" and hits[1].score == 1.25
    query = web.hits("/searx/search")[0].query
    assert query == {"q": ["Burkina Faso capital"], "format": ["json"], "language": ["en"],
                     "safesearch": ["1"]}
    images = searx.search_images("flag", top_k=5)
    assert [h.title for h in images] == ["Flag", "Logo"]
    assert images[0].url == web.url("/files/bf.png")  # relative img_src resolved on its page
    assert web.hits("/searx/search")[1].query["categories"] == ["images"]


def test_searxng_failures(web, tmp_path):
    fake_searxng(web, [], unresponsive=[["google", "timeout"], ["bing", "CAPTCHA"]])
    searx = SearxngSearch(web.url("/searx"), max_retries=0, image_cache_dir=str(tmp_path))
    with pytest.raises(ToolError, match="google: timeout, bing: CAPTCHA"):
        searx.search("anything")
    fake_searxng(web, [])
    assert searx.search("anything") == []
    web.route("/searx/search", Reply(403, "Forbidden"))
    with pytest.raises(ToolError, match="search.formats"):
        searx.search("anything")
    web.route("/searx/search", Reply(502, "Bad gateway"))
    with pytest.raises(ToolError, match="server error \\(HTTP 502\\); try again later"):
        searx.search("anything")
    with pytest.raises(ConfigError, match="base_url"):
        SearxngSearch("searx.local")
    with pytest.raises(ConfigError, match="safesearch"):
        SearxngSearch(web.url(), safesearch=5)
