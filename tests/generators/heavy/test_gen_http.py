"""The ``http`` generator against a real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from PIL import Image

from knowgen.errors import ConfigError, ToolError
from knowgen.generators.compositor import Compositor
from knowgen.generators.http_client import GeneratorServiceError, HttpGenerator

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
from gen_helpers import PROMPT, Gate

from knowgen.generators.server import BackgroundServer, create_app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def compositor_server():
    gen = Compositor(size=128)
    with BackgroundServer(create_app(gen)) as server:
        yield gen, server.url


def test_client_image_equals_direct_generation(compositor_server, flags):
    gen, url = compositor_server
    client = HttpGenerator(url, timeout=30)
    for refs, seed in (([], 0), ([], 9), (flags, 1)):
        served = client.generate(PROMPT, refs, seed=seed)
        assert np.array_equal(np.asarray(served), np.asarray(gen.generate(PROMPT, refs, seed)))
    assert client.health()["generator"]["size"] == 128
    # the /generate suffix is accepted and the server resizes on request
    assert HttpGenerator(url + "/generate/", size=[80, 60]).generate("x", []).size == (80, 60)


def test_non_png_references_are_re_encoded(compositor_server, tmp_path, flags):
    _, url = compositor_server
    gif = tmp_path / "flag.gif"
    Image.open(flags[0]).convert("RGB").save(gif)
    img = HttpGenerator(url).generate(PROMPT, [gif])
    assert img.size == (128, 128)
    with pytest.raises(ToolError, match="does not exist"):
        HttpGenerator(url).generate(PROMPT, [tmp_path / "missing.png"])
    broken = tmp_path / "broken.webp"
    broken.write_bytes(b"nothing")
    with pytest.raises(ToolError, match="cannot be read as an image"):
        HttpGenerator(url).generate(PROMPT, [broken])


def test_tiny_pipeline_behind_uvicorn(tiny_gen, flags):
    with BackgroundServer(create_app(tiny_gen)) as server:
        client = HttpGenerator(server.url, timeout=120)
        served = client.generate("a flag", flags[:2], seed=4)
    direct = tiny_gen.generate("a flag", flags[:2], seed=4)
    assert np.array_equal(np.asarray(served), np.asarray(direct))


def test_busy_server_is_retried_until_it_has_room():
    gate = Gate()
    with BackgroundServer(create_app(gate, max_queue=0)) as server:
        client = HttpGenerator(server.url, backoff=0.05, max_retries=8)
        first = threading.Thread(target=client.generate, args=("first", []))
        first.start()
        assert gate.entered.wait(10)
        threading.Timer(0.3, gate.release.set).start()
        start = time.monotonic()
        img = client.generate("second", [])  # 503 while "first" runs, then served
        first.join(30)
    assert img.size == (96, 96) and time.monotonic() - start >= 0.25
    assert gate.order == ["first", "second"]


def test_retries_run_out_with_a_clear_error():
    gate = Gate()
    with BackgroundServer(create_app(gate, max_queue=0)) as server:
        blocker = threading.Thread(target=HttpGenerator(server.url).generate, args=("a", []))
        blocker.start()
        assert gate.entered.wait(10)
        client = HttpGenerator(server.url, backoff=0.01, max_retries=2)
        with pytest.raises(GeneratorServiceError, match=r"busy or failing \(HTTP 503 after 3 "
                           r"tries\).*queue is full") as err:
            client.generate("b", [])
        assert err.value.status == 503
        gate.release.set()
        blocker.join(30)


def test_refusals_are_not_retried():
    gate = Gate()
    gate.release.set()
    with (BackgroundServer(create_app(gate)) as server,
          pytest.raises(GeneratorServiceError, match="HTTP 422.*cannot draw that") as err):
        HttpGenerator(server.url, backoff=5).generate("refuse", [])
    assert err.value.status == 422 and isinstance(err.value, ToolError)
    assert gate.order == ["refuse"]


def test_timeout_and_unreachable_server():
    gate = Gate()
    with BackgroundServer(create_app(gate)) as server:
        with pytest.raises(GeneratorServiceError, match="no answer within 0.3 s"):
            HttpGenerator(server.url, timeout=0.3).generate("slow", [])
        gate.release.set()
    port = free_port()
    client = HttpGenerator(f"http://127.0.0.1:{port}", backoff=0.01, max_retries=2)
    with pytest.raises(GeneratorServiceError, match="Cannot reach .* after 3 tries"):
        client.generate("x", [])
    with pytest.raises(ConfigError, match="must start with http"):
        HttpGenerator("127.0.0.1:8100")


@pytest.mark.slow
def test_serve_generator_entry_point_in_a_subprocess():
    port = free_port()
    code = ("from knowgen.generators.server import serve_generator; "
            f"serve_generator('compositor:size=96', port={port}, log_level='warning')")
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        client = HttpGenerator(f"http://127.0.0.1:{port}", backoff=0.5, max_retries=8)
        assert client.generate('"HELLO"', []).size == (96, 96)
        assert client.health()["served"] == 1
    finally:
        proc.terminate()
        proc.wait(30)


def test_client_server_cache_and_openai_modules_do_not_import_torch():
    code = ("import sys, knowgen, knowgen.generators.http_client, knowgen.generators.server, "
            "knowgen.generators.cache, knowgen.generators.openai_images, "
            "knowgen.generators.diffusers_gen; "
            "bad = [m for m in ('torch', 'diffusers', 'fastapi') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
