"""Real Serper and Jina calls; they run only when the API keys are in the environment."""

from __future__ import annotations

import os

import pytest
from PIL import Image

from knowgen.search.browse_http import JinaBrowser
from knowgen.search.serper import SerperSearch

needs_serper = pytest.mark.skipif(not os.environ.get("SERPER_API_KEY"),
                                  reason="SERPER_API_KEY is not set")
needs_jina = pytest.mark.skipif(not os.environ.get("JINA_API_KEY"),
                                reason="JINA_API_KEY is not set")


@pytest.mark.api
@needs_serper
def test_serper_live_text_and_images(tmp_path):
    serper = SerperSearch(image_cache_dir=str(tmp_path))
    hits = serper.search("capital of Burkina Faso", top_k=3)
    assert hits and any("Ouagadougou" in h.title + h.snippet for h in hits)
    images = serper.search_images("flag of Burkina Faso", top_k=2)
    assert 1 <= len(images) <= 2
    for hit in images:
        with Image.open(hit.local_path) as img:
            assert img.mode == "RGB" and max(img.size) <= 1024


@pytest.mark.api
@needs_jina
def test_jina_live_reader():
    page = JinaBrowser().browse("https://en.wikipedia.org/wiki/Burkina_Faso", "capital")
    assert "Burkina" in page.title and "Ouagadougou" in page.text
