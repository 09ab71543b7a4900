"""The generator server: JSON API, limits, validation and its bounded one-worker queue."""

from __future__ import annotations

import base64
import io
import json
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image

from knowgen.generators.compositor import Compositor

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
from fastapi.testclient import TestClient
from gen_helpers import PROMPT, Gate, b64, post, unpack, wait_for

from knowgen.generators.server import BackgroundServer, create_app


def test_compositor_served_matches_direct_generation(flags):
    gen = Compositor(size=128)
    with TestClient(create_app(gen)) as client:
        resp = client.post("/generate", json={"prompt": PROMPT, "seed": 5,
                                              "references": [b64(flags[0]), b64(flags[1])]})
        assert resp.status_code == 200
        answer = resp.json()
        health = client.get("/health").json()
    direct = gen.generate(PROMPT, flags[:2], seed=5)
    assert np.array_equal(np.asarray(unpack(answer)), np.asarray(direct))
    assert (answer["width"], answer["height"]) == (128, 128) and answer["seconds"] >= 0
    assert health["status"] == "ok" and health["served"] == 1
    assert health["generator"] == {"generator": "knowgen.generators.compositor.Compositor",
                                   "size": 128}


def test_size_resizes_output_of_generators_without_a_size_argument():
    with TestClient(create_app(Compositor(size=128))) as client:
        answer = client.post("/generate", json={"prompt": "x", "size": "96x64"}).json()
    assert (answer["width"], answer["height"]) == (96, 64)
    assert unpack(answer).size == (96, 64)


def test_tiny_diffusers_pipeline_served_matches_direct(tiny_gen, flags):
    body = {"prompt": "a flag", "seed": 3, "references": [b64(flags[2])]}
    with TestClient(create_app(tiny_gen)) as client:
        answer = client.post("/generate", json=body).json()
        sized = client.post("/generate", json={**body, "size": 96}).json()
        health = client.get("/health").json()
    direct = tiny_gen.generate("a flag", flags[2:3], seed=3)
    assert np.array_equal(np.asarray(unpack(answer)), np.asarray(direct))
    assert sized["width"] == 96  # passed to the pipeline, which draws at that size
    assert health["generator"]["pipeline"] == "StableDiffusionPipeline"
    assert health["generator"]["reference_mode"] == "img2img"


@pytest.mark.parametrize(("body", "needle"), [
    ({"seed": 1}, "prompt: Field required"),
    ({"prompt": ""}, "prompt: String should have at least 1 character"),
    ({"prompt": "x", "seed": "soon"}, "seed: Input should be a valid integer"),
    ({"prompt": "x", "seed": -1}, "seed: Input should be greater than or equal to 0"),
    ({"prompt": "x", "references": "abc"}, "references: Input should be a valid"),
    ({"prompt": "x", "references": ["%%%"]}, "references[0] is not valid base64"),
    ({"prompt": "x", "references": [base64.b64encode(b"plain text").decode()]},
     "references[0] is not a readable PNG, JPEG or WebP image"),
    ({"prompt": "x", "references": [""] * 17}, "references: List should have at most 16"),
    ({"prompt": "x", "size": "huge"}, "size: Cannot read size 'huge'"),
])
def test_invalid_requests_get_422_with_a_clear_message(body, needle):
    with TestClient(create_app(Compositor(size=64))) as client:
        resp = client.post("/generate", json=body)
    assert resp.status_code == 422
    assert needle in resp.json()["error"]


def test_non_json_gif_and_empty_bodies_are_refused():
    gif = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(gif, format="GIF")
    with TestClient(create_app(Compositor(size=64))) as client:
        assert "Invalid JSON" in client.post("/generate", content=b"{nope").json()["error"]
        assert "body is empty" in client.post("/generate", content=b"").json()["error"]
        resp = client.post("/generate", json={
            "prompt": "x", "references": [base64.b64encode(gif.getvalue()).decode()]})
        assert resp.status_code == 422 and "GIF image; send PNG, JPEG or WebP" in resp.text
        assert client.get("/generate").status_code == 405


def test_oversized_bodies_get_413_with_and_without_content_length(flags):
    big = {"prompt": "x", "references": [b64(flags[0])] * 4}
    with TestClient(create_app(Compositor(size=64), max_request_bytes=2000)) as client:
        resp = client.post("/generate", json=big)
        assert resp.status_code == 413 and "larger than 2000 bytes" in resp.json()["error"]
        chunks = (json.dumps(big).encode()[i:i + 500] for i in range(0, 10**6, 500))
        resp = client.post("/generate", content=chunks)  # chunked: no Content-Length
        assert resp.status_code == 413


def test_generator_failures_map_to_422_and_500_and_the_server_survives():
    gate = Gate()
    gate.release.set()
    with TestClient(create_app(gate)) as client:
        refused = client.post("/generate", json={"prompt": "refuse"})
        broken = client.post("/generate", json={"prompt": "explode"})
        fine = client.post("/generate", json={"prompt": "fine"})
        health = client.get("/health").json()
    assert refused.status_code == 422 and "cannot draw that" in refused.json()["error"]
    assert broken.status_code == 500
    assert "RuntimeError: the model ran out of memory" in broken.json()["error"]
    assert fine.status_code == 200
    assert (health["served"], health["failed"]) == (1, 2)


def test_bounded_queue_serves_one_at_a_time_and_refuses_overflow():
    gate = Gate()
    results: dict[str, tuple] = {}

    def call(name: str) -> None:
        results[name] = post(server.url, {"prompt": name})

    with BackgroundServer(create_app(gate, max_queue=1)) as server:
        first = threading.Thread(target=call, args=("first",))
        first.start()
        assert gate.entered.wait(10)
        second = threading.Thread(target=call, args=("second",))
        second.start()
        health = lambda: json.loads(urllib.request.urlopen(server.url + "/health").read())
        wait_for(lambda: health()["queue"]["waiting"] == 1)
        status, headers, body = post(server.url, {"prompt": "third"})
        assert status == 503 and "queue is full" in body["error"]
        assert int(headers["retry-after"]) >= 1
        gate.release.set()
        first.join(30)
        second.join(30)
        final = health()
    assert results["first"][0] == results["second"][0] == 200
    assert gate.peak == 1 and gate.order == ["first", "second"]
    assert final["served"] == 2 and final["queue"] == {"waiting": 0, "max_queue": 1,
                                                       "busy": False}


def test_concurrent_callers_on_tiny_pipeline_get_their_own_images(tiny_gen):
    seeds = list(range(8))
    answers: dict[int, tuple] = {}

    def call(seed: int) -> None:
        answers[seed] = post(server.url, {"prompt": "a flag", "seed": seed}, timeout=120)

    with BackgroundServer(create_app(tiny_gen, max_queue=16)) as server:
        threads = [threading.Thread(target=call, args=(s,)) for s in seeds]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    for seed in seeds:
        status, _, body = answers[seed]
        assert status == 200
        direct = tiny_gen.generate("a flag", [], seed=seed)
        assert np.array_equal(np.asarray(unpack(body)), np.asarray(direct))
    assert len({answers[s][2]["image"] for s in seeds}) == len(seeds)
