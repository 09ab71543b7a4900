"""The registry entries of the web backends resolve and build from spec strings."""

from __future__ import annotations

import pytest

from knowgen.registry import Registry
from knowgen.search.base import Browser, ImageSearch, TextSearch

# The entries knowgen.registry holds for the web backends.
TEXT = {"serper": "knowgen.search.serper:SerperSearch",
        "searxng": "knowgen.search.searxng:SearxngSearch",
        "retriever": "knowgen.search.retriever:RetrieverSearch"}
IMAGES = {"serper": "knowgen.search.serper:SerperSearch",
          "searxng": "knowgen.search.searxng:SearxngSearch"}
BROWSE = {"http": "knowgen.search.browse_http:HttpBrowser",
          "jina": "knowgen.search.browse_http:JinaBrowser"}


@pytest.fixture(autouse=True)
def serper_key(monkeypatch):
    monkeypatch.setenv("SERPER_API_KEY", "spec-test-key")


@pytest.mark.parametrize("spec", ["serper", "serper:gl=us,hl=en,max_retries=1",
                                  "searxng:base_url=http://127.0.0.1:8888,safesearch=1",
                                  "retriever:url=http://127.0.0.1:8000/retrieve,topk=3"])
def test_text_search_specs(spec):
    backend = Registry("text search", TEXT).create(spec)
    assert isinstance(backend, TextSearch)


@pytest.mark.parametrize("spec", ["serper:max_image_side=512", "searxng"])
def test_image_search_specs(spec, tmp_path):
    backend = Registry("image search", IMAGES).create(spec, image_cache_dir=str(tmp_path))
    assert isinstance(backend, ImageSearch)
    assert backend.images.max_side == (512 if spec.startswith("serper") else 1024)


@pytest.mark.parametrize("spec", [
    "http", "http:max_paragraphs=3,max_bytes=100000", "jina",
    'http:summarizer={"model": "m", "base_url": "http://127.0.0.1:9/v1", "api_key_env": ""}',
])
def test_browser_specs(spec):
    assert isinstance(Registry("browser", BROWSE).create(spec), Browser)


def test_bad_arguments_are_config_errors():
    from knowgen.errors import ConfigError

    with pytest.raises(ConfigError):
        Registry("text search", TEXT).create("retriever:topk=0")
    with pytest.raises(ConfigError):
        Registry("browser", BROWSE).create("http:colour=blue")
