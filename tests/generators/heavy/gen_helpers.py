"""Shared pieces of the generator server and client tests."""

from __future__ import annotations

import base64
import io
import json
import threading
import time
import urllib.error
import urllib.request

from PIL import Image

from knowgen.errors import ToolError
from knowgen.generators.compositor import Compositor

PROMPT = 'The first reference image above a banner reading "FRANCE"'


def b64(path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def unpack(answer: dict) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(answer["image"]))).convert("RGB")


def post(url: str, body: dict, timeout: float = 30) -> tuple[int, dict, dict]:
    req = urllib.request.Request(url + "/generate", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


class Gate:
    """A compositor that waits for ``release`` and records how many calls overlap."""

    def __init__(self):
        self.inner = Compositor(size=96)
        self.release, self.entered = threading.Event(), threading.Event()
        self.active = self.peak = 0
        self.order: list[str] = []
        self._lock = threading.Lock()

    def generate(self, prompt, references, seed=0):
        with self._lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
            self.order.append(prompt)
        self.entered.set()
        self.release.wait(30)
        try:
            if prompt == "explode":
                raise RuntimeError("the model ran out of memory")
            if prompt == "refuse":
                raise ToolError("this generator cannot draw that")
            return self.inner.generate(prompt, references, seed)
        finally:
            with self._lock:
                self.active -= 1


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)
