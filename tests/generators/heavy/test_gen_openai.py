"""The ``openai`` generator against a local server speaking the Images API wire format."""

from __future__ import annotations

import base64
import email.parser
import email.policy
import io
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

from knowgen.errors import ConfigError, ToolError
from knowgen.generators.http_client import GeneratorServiceError
from knowgen.generators.openai_images import OpenAIImagesGenerator, multipart_body

KEY = "sk-test-local-1234"


def parse_multipart(content_type: str, body: bytes) -> tuple[dict[str, str], list[dict]]:
    """Form fields and file parts of a multipart/form-data body, read by the stdlib."""
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    assert msg.is_multipart(), "body is not multipart"
    fields, files = {}, []
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if part.get_filename():
            files.append({"name": name, "filename": part.get_filename(),
                          "type": part.get_content_type(), "data": part.get_payload(decode=True)})
        else:
            fields[name] = part.get_payload(decode=True).decode()
    return fields, files


class FakeImagesAPI(ThreadingHTTPServer):
    """Answers /v1/images/generations and /v1/images/edits the way the real API does."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[dict] = []
        self.busy_answers = 0  # answer this many requests with 429 first
        self.url = f"http://127.0.0.1:{self.server_address[1]}/v1"


class _Handler(BaseHTTPRequestHandler):
    server: FakeImagesAPI

    def log_message(self, *args):
        pass

    def _reply(self, status: int, payload: dict, headers: dict | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        ctype = self.headers["Content-Type"]
        record = {"path": self.path, "auth": self.headers.get("Authorization"), "ctype": ctype}
        self.server.requests.append(record)
        if record["auth"] != f"Bearer {KEY}":
            return self._reply(401, {"error": {"message": "Incorrect API key provided.",
                                               "type": "invalid_request_error"}})
        if self.server.busy_answers > 0:
            self.server.busy_answers -= 1
            return self._reply(429, {"error": {"message": "Rate limit reached."}},
                               {"Retry-After": "0"})
        if self.path == "/v1/images/generations":
            record["json"] = fields = json.loads(body)
            shade = sum(fields["prompt"].encode()) % 256
            img = Image.new("RGB", (64, 64), (shade, 255 - shade, 90))
        elif self.path == "/v1/images/edits":
            record["fields"], record["files"] = fields, files = parse_multipart(ctype, body)
            if not files:
                return self._reply(400, {"error": {"message": "image is required"}})
            img = Image.open(io.BytesIO(files[0]["data"])).convert("RGB")  # echo the first
        else:
            return self._reply(404, {"error": {"message": "no such route"}})
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        self._reply(200, {"created": 0, "data": [{"b64_json": base64.b64encode(
            buf.getvalue()).decode()}]})


@pytest.fixture
def api(monkeypatch):
    monkeypatch.setenv("KNOWGEN_TEST_IMAGES_KEY", KEY)
    server = FakeImagesAPI()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def make(api, **kwargs) -> OpenAIImagesGenerator:
    return OpenAIImagesGenerator(base_url=api.url, api_key_env="KNOWGEN_TEST_IMAGES_KEY",
                                 backoff=0.01, **kwargs)


def test_without_references_it_calls_generations_with_json(api):
    img = make(api, size="1024x1536", quality="low").generate("a red flag", [], seed=3)
    req = api.requests[-1]
    assert req["path"] == "/v1/images/generations" and req["ctype"] == "application/json"
    assert req["auth"] == f"Bearer {KEY}"
    assert req["json"] == {"model": "gpt-image-1", "prompt": "a red flag", "n": 1,
                           "size": "1024x1536", "quality": "low"}
    shade = sum(b"a red flag") % 256
    assert img.mode == "RGB" and img.getpixel((5, 5)) == (shade, 255 - shade, 90)


def test_with_references_it_posts_multipart_edits(api, flags, tmp_path):
    jpeg = tmp_path / "jp.jpg"
    Image.open(flags[1]).convert("RGB").save(jpeg, quality=95)
    img = make(api, model="gpt-image-1").generate("both flags side by side", [flags[0], jpeg])
    req = api.requests[-1]
    assert req["path"] == "/v1/images/edits"
    assert req["ctype"].startswith("multipart/form-data; boundary=")
    assert req["fields"] == {"model": "gpt-image-1", "prompt": "both flags side by side",
                             "n": "1", "size": "1024x1024"}
    assert [f["name"] for f in req["files"]] == ["image[]", "image[]"]
    assert [f["type"] for f in req["files"]] == ["image/png", "image/jpeg"]
    assert req["files"][0]["data"] == flags[0].read_bytes()
    assert req["files"][1]["data"] == jpeg.read_bytes()
    expected = Image.open(flags[0]).convert("RGB")
    assert np.array_equal(np.asarray(img), np.asarray(expected))


def test_dall_e_models_ask_for_base64(api):
    make(api, model="dall-e-3").generate("x", [])
    assert api.requests[-1]["json"]["response_format"] == "b64_json"


def test_rate_limits_are_retried(api):
    api.busy_answers = 2
    make(api, max_retries=3).generate("x", [])
    assert [r["path"] for r in api.requests] == ["/v1/images/generations"] * 3
    api.busy_answers = 5
    with pytest.raises(GeneratorServiceError, match=r"HTTP 429 after 2 tries.*Rate limit"):
        make(api, max_retries=1).generate("x", [])


def test_wrong_key_and_missing_key(api, monkeypatch):
    monkeypatch.setenv("KNOWGEN_TEST_IMAGES_KEY", "sk-wrong")
    with pytest.raises(GeneratorServiceError, match="refused the credentials.*Incorrect API key"):
        make(api).generate("x", [])
    assert len(api.requests) == 1  # a 401 is not retried
    monkeypatch.delenv("KNOWGEN_TEST_IMAGES_KEY")
    with pytest.raises(ConfigError, match=r"\$KNOWGEN_TEST_IMAGES_KEY, which is not set"):
        make(api)


def test_unreadable_reference_and_bad_base_url(api, tmp_path):
    with pytest.raises(ToolError, match="does not exist"):
        make(api).generate("x", [tmp_path / "none.png"])
    with pytest.raises(ConfigError, match="base_url"):
        OpenAIImagesGenerator(base_url="api.openai.com", api_key_env="")


def test_multipart_body_round_trips_through_the_stdlib_parser():
    body, ctype = multipart_body({"prompt": "caf\u00e9 \"quoted\"", "n": "1"},
                                 [("image[]", "a.png", "image/png", b"\x89PNG\r\n--x\r\n")])
    fields, files = parse_multipart(ctype, body)
    assert fields == {"prompt": "caf\u00e9 \"quoted\"", "n": "1"}
    assert files[0]["data"] == b"\x89PNG\r\n--x\r\n"


@pytest.mark.api
@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("OPENAI_API_KEY"), reason="needs OPENAI_API_KEY")
def test_real_openai_images_api(flags):
    gen = OpenAIImagesGenerator(size="1024x1024", quality="low")
    img = gen.generate("The first reference image as a flag waving on a pole", flags[:1])
    assert img.mode == "RGB" and min(img.size) >= 512
