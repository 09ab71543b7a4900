"""The /retrieve server over the real world index, and the RetrieverSearch client."""

from __future__ import annotations

import http.client
import json
import threading

import pytest
from webtools import Reply

from knowgen.errors import ConfigError, ToolError
from knowgen.search.local import LocalBrowser, LocalTextSearch
from knowgen.search.retrieve_server import MAX_BODY_BYTES, make_server
from knowgen.search.retriever import RetrieverSearch, split_contents
from knowgen.world.data import load_world


@pytest.fixture(scope="module")
def server():
    srv = make_server("127.0.0.1", 0)
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def raw_request(server, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def test_round_trip_returns_world_pages(server):
    client = RetrieverSearch(server.url)
    local = LocalTextSearch()
    world = load_world()
    for query in ("capital Ouagadougou", "flag of Japan red disc", "currency West African CFA"):
        hits = client.search(query, top_k=4)
        expected = local.search(query, top_k=4)
        assert [h.url for h in hits] == [h.url for h in expected]
        assert [h.score for h in hits] == [h.score for h in expected]
        for hit in hits:
            page = world.pages[hit.url]
            assert hit.title == page.title
            assert hit.snippet.strip(" …") and hit.snippet.strip(" …")[:40] in " ".join(
                page.text.split())
    top = client.search("capital Ouagadougou", top_k=1)[0]
    assert "Ouagadougou" in top.title and "Ouagadougou" in top.snippet
    assert "Burkina Faso" in LocalBrowser().browse(top.url, "capital").text


def test_topk_setting_overrides_the_call_and_bare_url_gets_the_path(server):
    base = f"http://127.0.0.1:{server.server_address[1]}"
    client = RetrieverSearch(base, topk=2)
    assert client.url == server.url
    assert len(client.search("flag", top_k=9)) == 2
    assert client.search("   ") == []


def test_server_contract_and_health(server):
    status, body = raw_request(server, "POST", "/retrieve", json.dumps(
        {"queries": ["capital Ouagadougou", "logo"], "topk": 2, "return_scores": True}),
        {"Content-Type": "application/json"})
    assert status == 200 and len(body["result"]) == 2
    item = body["result"][0][0]
    assert set(item) == {"document", "score"} and isinstance(item["score"], float)
    assert item["document"]["contents"].split("\n", 1)[0] == item["document"]["title"]
    status, body = raw_request(server, "POST", "/retrieve",
                               json.dumps({"queries": ["capital Ouagadougou"]}))
    assert status == 200 and len(body["result"][0]) == 3 and "contents" in body["result"][0][0]
    status, body = raw_request(server, "GET", "/health")
    assert status == 200 and body["status"] == "ok"
    assert body["pages"] == len(load_world().pages)


@pytest.mark.parametrize("payload,fragment", [
    (b"not json", "not valid JSON"), (b"[1, 2]", "JSON object"), (b"{}", "'queries'"),
    (json.dumps({"queries": "one"}).encode(), "'queries'"),
    (json.dumps({"queries": []}).encode(), "'queries'"),
    (json.dumps({"queries": ["ok", 3]}).encode(), "queries[1] must be a string"),
    (json.dumps({"queries": ["x" * 3000]}).encode(), "longer than"),
    (json.dumps({"queries": ["q"] * 300}).encode(), "At most"),
    (json.dumps({"queries": ["q"], "topk": 0}).encode(), "'topk'"),
    (json.dumps({"queries": ["q"], "topk": "3"}).encode(), "'topk'"),
    (json.dumps({"queries": ["q"], "topk": True}).encode(), "'topk'"),
    (json.dumps({"queries": ["q"], "topk": 999}).encode(), "'topk'"),
    (json.dumps({"queries": ["q"], "return_scores": "yes"}).encode(), "return_scores"),
    (b"\xff\xfe\x00", "not valid JSON"),
])
def test_bad_requests_get_400_with_a_json_error(server, payload, fragment):
    status, body = raw_request(server, "POST", "/retrieve", payload)
    assert status == 400 and fragment in body["error"]


def test_other_http_errors(server):
    assert raw_request(server, "GET", "/retrieve")[0] == 405
    assert raw_request(server, "GET", "/nope")[0] == 404
    assert raw_request(server, "POST", "/nope", b"{}")[0] == 404
    status, body = raw_request(server, "POST", "/retrieve", b"{}",
                               {"Content-Length": str(MAX_BODY_BYTES + 1)})
    assert status == 413 and "larger" in body["error"]


def test_client_reads_search_r1_documents_and_reports_errors(web):
    docs = [{"document": {"id": "4021", "contents": '"Ouagadougou"\nOuagadougou is the capital '
                          "of Burkina Faso.\nIt lies on the central plateau."}, "score": 81.5},
            {"document": {"id": "77", "contents": "Plain title\nBody"}, "score": "bad"},
            "junk"]
    web.route("/retrieve", lambda req: Reply(200, {"result": [docs[: req.json()["topk"]]]}))
    client = RetrieverSearch(web.url("/retrieve"), max_retries=0)
    hits = client.search("capital of Burkina Faso", top_k=3)
    assert [(h.title, h.url, h.score) for h in hits] == [
        ("Ouagadougou", "retriever://4021", 81.5), ("Plain title", "retriever://77", 0.0)]
    assert hits[0].snippet == "Ouagadougou is the capital of Burkina Faso."
    assert web.hits("/retrieve")[0].json() == {"queries": ["capital of Burkina Faso"],
                                               "topk": 3, "return_scores": True}
    web.route("/retrieve", Reply(200, {"results": []}))
    with pytest.raises(ToolError, match="'result' list"):
        client.search("x")
    web.route("/retrieve", Reply(500, "boom"))
    with pytest.raises(ToolError, match="HTTP 500"):
        client.search("x")
    with pytest.raises(ConfigError):
        RetrieverSearch("localhost:8000")
    with pytest.raises(ToolError, match="Could not connect"):
        RetrieverSearch("http://127.0.0.1:9/retrieve", max_retries=0).search("x")


def test_split_contents():
    assert split_contents('"Title"\ntext here') == ("Title", "text here")
    assert split_contents("Title only") == ("Title only", "")
    assert split_contents('"quoted" word\nx') == ('"quoted" word', "x")


def test_busy_port_is_a_config_error(server):
    with pytest.raises(ConfigError, match="Cannot listen"):
        make_server("127.0.0.1", server.server_address[1])
