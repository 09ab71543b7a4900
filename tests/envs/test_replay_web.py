"""Record an episode against a local server speaking Serper's wire format, then replay it offline.

The server on 127.0.0.1 answers ``POST /search`` and ``POST /images`` the way
Serper does (``organic`` and ``images`` lists, API key in ``X-API-KEY``), with
results taken from the shipped world (its pages, its real flag and logo PNGs,
served by the same server). The episode is recorded with
``tool_cache_mode="record"``, the server is shut down, the API key removed and
every socket connection forbidden, and the same scripted actions are replayed
with ``tool_cache_mode="replay"``.
"""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import pytest
from PIL import Image

from knowgen.envs.protocol import format_answer, format_tool_call
from knowgen.envs.searchgen import SearchGenEnv
from knowgen.registry import IMAGE_SEARCH, TEXT_SEARCH
from knowgen.types import Answer, ReferenceImage
from knowgen.world.data import load_world

KEY = "replay-web-key-31b7"
BROKEN_QUERY = "a query whose images are all gone"
TIMING_WORDS = ("time", "elapsed", "duration", "seconds")


class SerperLikeServer:
    """Serper's ``/search`` and ``/images`` over the offline world, plus the image files.

    Args:
        world: The loaded world (images are served from its data folder).
    """

    def __init__(self, world: Any):
        self.world = world
        self.text = TEXT_SEARCH.create("local")
        self.images = IMAGE_SEARCH.create("local")
        self.paths: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                outer.paths.append(self.path)
                if self.headers.get("X-API-KEY") != KEY:
                    self._send(403, json.dumps({"message": "Unauthorized."}).encode(),
                               "application/json")
                    return
                payload = outer.answer(self.path, body)
                status = 404 if payload is None else 200
                self._send(status, json.dumps(payload or {}).encode(), "application/json")

            def do_GET(self) -> None:
                outer.paths.append(self.path)
                data = outer.image_bytes(self.path)
                if data is None:
                    self._send(404, b"not found", "text/plain")
                else:
                    self._send(200, data, "image/png")

            def _send(self, status: int, data: bytes, ctype: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    def answer(self, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        query, num = str(body["q"]), int(body["num"])
        params = {"q": query, "num": num, "type": path.strip("/")}
        if path == "/search":
            organic = [{"title": h.title, "link": h.url, "snippet": h.snippet, "position": i + 1}
                       for i, h in enumerate(self.text.search(query, top_k=num))]
            return {"searchParameters": params, "organic": organic}
        if path == "/images":
            if query == BROKEN_QUERY:
                images = [{"title": f"Gone {i}", "imageUrl": f"{self.url}/img/gone-{i}.png",
                           "link": "https://example.org/gone"} for i in range(3)]
            else:
                images = [{"title": h.title, "imageUrl": self.image_url(h.local_path),
                           "thumbnailUrl": self.image_url(h.local_path), "link": h.page_url,
                           "position": i + 1}
                          for i, h in enumerate(self.images.search_images(query, top_k=num))]
            return {"searchParameters": params, "images": images}
        return None

    def image_url(self, local_path: str) -> str:
        return f"{self.url}/img/{quote(Path(local_path).name)}"

    def image_bytes(self, path: str) -> bytes | None:
        parts = urlsplit(path).path.split("/")
        if len(parts) != 3 or parts[1] != "img":
            return None
        name = unquote(parts[2])
        file = next((self.world.image_path(i) for i in self.world.images
                     if self.world.image_path(i).name == name), None)
        return None if file is None else Path(file).read_bytes()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def world():
    return load_world()


@pytest.fixture(scope="module")
def bench_spec(tmp_path_factory):
    return f"world:cache_dir={tmp_path_factory.mktemp('world_cache')}"


def _flag_task_index(env: SearchGenEnv, world: Any) -> int:
    """The first task whose first required entity is a country (its flag is a world image)."""
    for i, task in enumerate(env.tasks):
        entity = world.entities[task.facts.entities[0].entity_id]
        if entity.kind == "country" and entity.image_id:
            return i
    raise AssertionError("the world test split has no country task")


def _episode(env: SearchGenEnv, world: Any, image_query: str | None = None,
             tool_steps: int = 5) -> list[tuple]:
    """A scripted episode: search, image search, failing image search, fetch, browse, answer.

    With ``tool_steps`` < 5 only the first tool calls are made and no answer is given.
    """
    steps = []
    obs, info = env.reset(options={"task_index": _flag_task_index(env, world)})
    steps.append((obs, 0.0, False, False, info))
    entity = world.entities[env.task.facts.entities[0].entity_id]
    image = world.images[entity.image_id]
    server_url = env.config.search.split("endpoint=", 1)[1].split(",", 1)[0]
    actions = [
        format_tool_call("search", {"queries": [entity.name, f"capital of {entity.name}"]}),
        format_tool_call("image_search", {"query": image_query or image.title, "top_k": 3}),
        format_tool_call("image_search", {"query": BROKEN_QUERY}),
        format_tool_call("fetch_image", {"url": f"{server_url}/img/"
                                                f"{quote(world.image_path(image.id).name)}"}),
        format_tool_call("browse", {"url": entity.page_url, "query": "flag colours"}),
    ]
    for action in actions[:tool_steps]:
        steps.append(env.step(action))
    if tool_steps < len(actions):
        return steps
    texts = " ".join(f'"{t}"' for t in env.task.facts.required_text)
    first_ids = steps[2][4]["image_ids"][:1]
    answer = Answer(f"The flag shown in the first reference image, with {texts} below it",
                    tuple(ReferenceImage(i, "the flag") for i in first_ids))
    steps.append(env.step(format_answer(answer)))
    return steps


def _without_timings(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items()
                if not any(word in str(k).lower() for word in TIMING_WORDS)}
    if isinstance(value, (list, tuple)):
        return [_without_timings(v) for v in value]
    return value


@pytest.fixture
def no_network(monkeypatch):
    """Fail the test on any socket connection (replay must not touch the network)."""
    attempts: list[Any] = []

    def refuse(self, address):
        attempts.append(address)
        raise AssertionError(f"replay tried to connect to {address}")

    def arm() -> list[Any]:
        monkeypatch.setattr(socket.socket, "connect", refuse)
        monkeypatch.setattr(socket.socket, "connect_ex", refuse)
        return attempts

    return arm


@pytest.mark.slow
def test_web_episode_records_then_replays_offline(tmp_path, world, bench_spec, monkeypatch,
                                                  no_network):
    monkeypatch.setenv("SERPER_API_KEY", KEY)
    server = SerperLikeServer(world)
    spec = (f"serper:endpoint={server.url},image_cache_dir={tmp_path / 'downloads'},"
            f'allow_hosts=["{server.url}"],backoff_base=0,max_retries=0')
    db = str(tmp_path / "web.sqlite")
    settings = {"search": spec, "image_search": spec, "browser": "local",
                "benchmark": bench_spec, "tool_cache": db}
    try:
        recorded = _episode(SearchGenEnv(tool_cache_mode="record", **settings), world)
    finally:
        server.close()
    assert "/search" in server.paths and "/images" in server.paths
    assert any(p.startswith("/img/") for p in server.paths)

    # the recording is a real web episode: hits, downloaded images, a failure, a reward
    search_obs = recorded[1][0]
    assert "--- search result for [" in search_obs and "encyclopedia" in search_obs
    assert recorded[2][4]["image_ids"] == ["IMG_001", "IMG_002", "IMG_003"]
    assert recorded[3][4]["last_action"]["ok"] is False
    assert "none could be downloaded" in recorded[3][4]["last_action"]["error"]
    assert all(s[4]["last_action"]["ok"] for i, s in enumerate(recorded[1:6]) if i != 2)
    shown = recorded[2][4]["observation_images"]
    assert len(shown) == 3
    for path in shown:
        assert Path(path).parent == Path(f"{db}.images")
        with Image.open(path) as img:
            assert img.mode == "RGB" and min(img.size) > 0
    final = recorded[-1]
    assert final[2] and not final[3] and final[1] > 0
    assert final[4]["references"][0]["img_id"] == "IMG_001"

    # replay: no server, no key, no sockets
    monkeypatch.delenv("SERPER_API_KEY")
    attempts = no_network()
    env = SearchGenEnv(tool_cache_mode="replay", **settings)
    assert env.text_search.inner is None and env.image_search.inner is None
    replayed = _episode(env, world)
    assert attempts == []
    assert [s[0] for s in replayed] == [s[0] for s in recorded]
    assert [s[4]["image_ids"] for s in replayed] == [s[4]["image_ids"] for s in recorded]
    assert [s[4]["observation_images"] for s in replayed] == \
        [s[4]["observation_images"] for s in recorded]
    assert [s[1:4] for s in replayed] == [s[1:4] for s in recorded]
    assert [_without_timings(s[4]) for s in replayed] == \
        [_without_timings(s[4]) for s in recorded]

    # a call that was never recorded is answered by an error observation naming the call
    missed = _episode(SearchGenEnv(tool_cache_mode="replay", **settings), world,
                      image_query="flag never searched for", tool_steps=2)
    obs, reward, terminated, truncated, info = missed[2]
    assert "not recorded with these settings" in obs and "search_images" in obs
    assert "flag never searched for" in obs and "tool_cache_mode='record'" in obs
    assert info["last_action"] == {"kind": "tool", "tool": "image_search", "ok": False,
                                   "error": info["last_action"]["error"]}
    assert info["image_ids"] == [] and not (terminated or truncated) and reward == 0.0
    assert attempts == []
