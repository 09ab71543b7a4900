"""The http and jina browsers against local pages built from real world pages."""

from __future__ import annotations

import html
import logging

import pytest
from webtools import Reply, mapping_resolver, world_image

from knowgen.errors import ConfigError, ToolError
from knowgen.search.base import Browser
from knowgen.search.browse_http import (
    HttpBrowser,
    JinaBrowser,
    parse_reader_text,
    select_passages,
    split_paragraphs,
)
from knowgen.world.data import load_world

BOILERPLATE = ["Main menu Home About Contact Donate", "Accept all cookies to continue",
               "Privacy policy Terms of use Copyright 2025"]


@pytest.fixture(scope="module")
def page():
    return load_world().pages["https://encyclopedia.world.invalid/wiki/Burkina_Faso"]


def paragraphs_of(page):
    return [p.strip() for p in page.text.split("\n\n") if p.strip()]


def as_html(page, charset="utf-8"):
    body = "".join(f"<p>{html.escape(p)}</p>\n" for p in paragraphs_of(page))
    return (f'<!doctype html><html><head><meta charset="{charset}"><title>{page.title} - '
            f"Test Encyclopedia</title></head><body>"
            f'<nav><ul><li><a href="/">{BOILERPLATE[0]}</a></li></ul></nav>'
            f'<div class="cookie-banner">{BOILERPLATE[1]}</div>'
            f"<main><article><h1>{page.title}</h1>\n{body}</article></main>"
            f"<footer><p>{BOILERPLATE[2]}</p></footer></body></html>")


@pytest.fixture
def browser(web):
    return HttpBrowser(allow_hosts=[web.url()], max_paragraphs=2, backoff_base=0)


def test_http_browser_extracts_the_article_without_boilerplate(web, browser, page):
    web.route("/wiki/Burkina_Faso", Reply(200, as_html(page)))
    web.route("/old", Reply(301, "", {"Location": "/wiki/Burkina_Faso"}))
    assert isinstance(browser, Browser)
    result = browser.browse(web.url("/old"))
    assert result.url == web.url("/wiki/Burkina_Faso")
    assert result.title == "Burkina Faso"
    for para in paragraphs_of(page):
        assert para in result.text
    for junk in BOILERPLATE:
        assert junk not in result.text


def test_http_browser_focuses_on_the_query(web, browser, page):
    web.route("/wiki/Burkina_Faso", Reply(200, as_html(page)))
    result = browser.browse(web.url("/wiki/Burkina_Faso"), query="currency code")
    chosen = result.text.split("\n\n")
    assert len(chosen) == 2
    assert any("currency code XOF" in p for p in chosen)
    order = [paragraphs_of(page).index(p) for p in chosen if p in paragraphs_of(page)]
    assert order == sorted(order)


def test_http_browser_decodes_declared_charsets_and_plain_text(web, browser):
    text = "Côte d'Ivoire is the former name used by this page for Ivory Coast, a country."
    latin = f"<html><body><article><p>{text}</p><p>{text}</p></article></body></html>"
    web.route("/latin", Reply(200, latin.encode("iso-8859-1"),
                              {"Content-Type": "text/html; charset=iso-8859-1"}))
    web.route("/notes.txt", Reply(200, "First paragraph about flags of the world.\n"
                                  "Second paragraph about logos and brands.",
                                  {"Content-Type": "text/plain; charset=utf-8"}))
    assert "Côte d'Ivoire" in browser.browse(web.url("/latin")).text
    notes = browser.browse(web.url("/notes.txt"), "logos")
    assert notes.title == "notes.txt" and "logos and brands" in notes.text


def test_http_browser_refusals_and_failures(web, browser, loopback_only):
    web.route("/jump", Reply(302, "", {"Location": "http://wiki.corp.test/private"}))
    web.route("/flag.png", Reply(200, world_image(), {"Content-Type": "image/png"}))
    web.route("/doc.pdf", Reply(200, b"%PDF-1.4", {"Content-Type": "application/pdf"}))
    web.route("/empty", Reply(200, "<html><body></body></html>"))
    web.route("/down", Reply(503, "busy"))
    guarded = HttpBrowser(allow_hosts=[web.url()], backoff_base=0,
                          resolver=mapping_resolver({"wiki.corp.test": ["172.20.1.5"]}))
    with pytest.raises(ToolError, match="private"):
        guarded.browse(web.url("/jump"))
    with pytest.raises(ToolError, match="metadata"):
        guarded.browse("http://169.254.169.254/latest/meta-data/")
    with pytest.raises(ToolError, match="is an image"):
        browser.browse(web.url("/flag.png"))
    with pytest.raises(ToolError, match="not a web page"):
        browser.browse(web.url("/doc.pdf"))
    with pytest.raises(ToolError, match="no readable text"):
        browser.browse(web.url("/empty"))
    with pytest.raises(ToolError, match="HTTP 503"):
        browser.browse(web.url("/down"))
    with pytest.raises(ToolError, match="No URL"):
        browser.browse("")
    assert {addr[0] for addr in loopback_only} == {"127.0.0.1"}


def test_http_browser_reads_the_start_of_a_long_page(web, page):
    long_page = as_html(page) + "<!--" + "x" * 50_000 + "-->"
    web.route("/long", Reply(200, long_page))
    small = HttpBrowser(max_bytes=len(as_html(page)) + 10, allow_hosts=[web.url()])
    assert "Ouagadougou" in small.browse(web.url("/long")).text


def fake_chat(web, reply, seen):
    def answer(req):
        seen.append(req.json())
        return reply
    web.route("/v1/chat/completions", answer)


def test_summarizer_answers_and_falls_back(web, page, caplog):
    web.route("/wiki/Burkina_Faso", Reply(200, as_html(page)))
    seen: list[dict] = []
    fake_chat(web, Reply(200, {"choices": [{"message": {"content": " The currency is XOF. "}}]}),
              seen)
    settings = {"model": "tiny", "base_url": web.url("/v1"), "api_key_env": "",
                "max_retries": 0}
    summarizing = HttpBrowser(allow_hosts=[web.url()], summarizer=settings)
    result = summarizing.browse(web.url("/wiki/Burkina_Faso"), "currency")
    assert result.text == "The currency is XOF."
    user = seen[0]["messages"][1]["content"]
    assert "Query: currency" in user and "West African CFA Franc" in user
    assert seen[0]["model"] == "tiny" and seen[0]["temperature"] == 0
    fake_chat(web, Reply(500, "down"), seen)
    with caplog.at_level(logging.WARNING):
        fallback = summarizing.browse(web.url("/wiki/Burkina_Faso"), "currency")
    assert "currency code XOF" in fallback.text and "returning passages" in caplog.text
    with pytest.raises(ConfigError):
        HttpBrowser(summarizer="not a client")


READER = ("Title: Burkina Faso\n\nURL Source: https://en.example/wiki/Burkina_Faso\n\n"
          "Published Time: 2024-01-01\n\nMarkdown Content:\n")


def reader_text(page):
    return READER + "# Burkina Faso\n\n![flag](https://en.example/flag.png)\n\n" + page.text


def test_jina_reader(web, page, monkeypatch):
    monkeypatch.setenv("JINA_TEST_KEY", "jina-secret-1")
    target = "https://en.example/wiki/Burkina_Faso"
    web.route("/" + target, Reply(200, reader_text(page),
                                  {"Content-Type": "text/plain; charset=utf-8"}))
    calls: list[str] = []
    jina = JinaBrowser(endpoint=web.url(""), api_key_env="JINA_TEST_KEY", max_paragraphs=1,
                       resolver=mapping_resolver({}, calls))
    result = jina.browse(target, "capital")
    assert result.title == "Burkina Faso" and result.url == target
    assert result.text == "The capital of Burkina Faso is Ouagadougou."
    req = web.hits("/" + target)[0]
    assert req.headers["authorization"] == "Bearer jina-secret-1"
    assert calls == []  # the target is fetched by the reader, never resolved here
    whole = jina.browse(target)
    assert "![flag]" not in whole.text and "Ouagadougou" in whole.text
    assert "jina-secret-1" not in repr(jina)


def test_jina_refusals_and_errors(web, monkeypatch):
    monkeypatch.delenv("JINA_API_KEY", raising=False)
    web.route("/https://en.example/gone", Reply(422, {"code": 422, "message": "no"}))
    jina = JinaBrowser(endpoint=web.url(""), max_retries=0)
    for url in ("http://10.1.1.1/admin", "http://localhost:8080/", "file:///etc/passwd",
                "http://169.254.169.254/latest/"):
        with pytest.raises(ToolError):
            jina.browse(url)
    with pytest.raises(ToolError, match="could not read that page"):
        jina.browse("https://en.example/gone")
    assert all("authorization" not in r.headers for r in web.requests)
    assert [r.path for r in web.requests] == ["/https://en.example/gone"]


def test_reader_text_and_passage_helpers():
    assert parse_reader_text(READER + "Body text") == (
        "Burkina Faso", "https://en.example/wiki/Burkina_Faso", "Body text")
    assert parse_reader_text("just text") == ("", "", "just text")
    paras = split_paragraphs("History\nThe country was founded long ago, as the record shows.\n"
                             "\nEconomy\nIt grows cotton and mines gold in several regions.")
    assert paras == ["History The country was founded long ago, as the record shows.",
                     "Economy It grows cotton and mines gold in several regions."]
    assert select_passages(paras, "gold mines", 1) == [paras[1]]
    assert select_passages(paras, "unrelated words", 1) == [paras[0]]
