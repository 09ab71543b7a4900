"""The ``openai`` generator: the OpenAI Images API, or any server that speaks it.

Without references it calls ``POST {base_url}/images/generations`` with a JSON
body ``{"model", "prompt", "n": 1, "size"}``; with references it calls
``POST {base_url}/images/edits`` as ``multipart/form-data`` with the same
fields and one ``image[]`` file part per reference, in order. Either way the
image is read from ``data[0].b64_json`` (``dall-e-*`` models are asked for
``response_format=b64_json``, which ``gpt-image-*`` models always use). The key
is read from the environment variable named by ``api_key_env`` and sent as
``Authorization: Bearer ...``. The API has no seed: ``seed`` is ignored.
Busy answers (429, 5xx) and connection failures are retried with backoff.

Example:
    >>> gen = OpenAIImagesGenerator(model="gpt-image-1", size="1024x1024")
    >>> gen.generate("the flag of the first reference image on a pole", [Path("flag.png")])
"""

from __future__ import annotations

import json
import logging
import os
import urllib.request
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from knowgen.errors import ConfigError
from knowgen.generators.http_client import (
    GeneratorServiceError,
    decode_image,
    reference_bytes,
    send_with_retries,
)

logger = logging.getLogger(__name__)

_MIME = ((b"\x89PNG", "image/png", ".png"), (b"\xff\xd8\xff", "image/jpeg", ".jpg"))


def multipart_body(fields: dict[str, str], files: list[tuple[str, str, str, bytes]]
                   ) -> tuple[bytes, str]:
    """Encode form fields and ``(field, filename, mime, data)`` files as multipart/form-data.

    Returns:
        The body and its ``Content-Type`` header value.
    """
    boundary = f"knowgen-{uuid.uuid4().hex}"
    out = bytearray()
    for name, value in fields.items():
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n"
                f"{value}\r\n").encode()
    for name, filename, mime, data in files:
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; "
                f"filename=\"{filename}\"\r\nContent-Type: {mime}\r\n\r\n").encode()
        out += data + b"\r\n"
    out += f"--{boundary}--\r\n".encode("ascii")
    return bytes(out), f"multipart/form-data; boundary={boundary}"


def _mime(data: bytes) -> tuple[str, str]:
    for magic, mime, suffix in _MIME:
        if data.startswith(magic):
            return mime, suffix
    return "image/png", ".png"  # reference_bytes re-encodes everything else as PNG


class OpenAIImagesGenerator:
    """Generator ``"openai"``: OpenAI Images generations and edits.

    Args:
        model: Image model, e.g. ``"gpt-image-1"``.
        base_url: API root; any server speaking the same wire format works.
        api_key_env: Environment variable holding the key; ``""`` sends no key.
        size: ``"1024x1024"``, ``"1536x1024"``, ``"1024x1536"`` or ``"auto"`` (model dependent).
        timeout: Seconds to wait for each answer.
        quality: Optional ``quality`` field (``"low"``, ``"medium"``, ``"high"``, ``"auto"``).
        max_retries: Extra tries on 429/5xx answers and connection failures.
        backoff: First wait between tries, in seconds; it doubles each try.

    Raises:
        ConfigError: when the key's environment variable is not set or the URL is not http(s).
    """

    def __init__(self, model: str = "gpt-image-1", base_url: str = "https://api.openai.com/v1",
                 api_key_env: str = "OPENAI_API_KEY", size: str = "1024x1024",
                 timeout: float = 300.0, quality: str | None = None, max_retries: int = 3,
                 backoff: float = 2.0):
        if not str(base_url).startswith(("http://", "https://")):
            raise ConfigError(f"base_url must start with http:// or https://, got {base_url!r}.")
        self._key = os.environ.get(api_key_env) if api_key_env else None
        if api_key_env and not self._key:
            raise ConfigError(f"The openai generator reads its API key from ${api_key_env}, "
                              "which is not set. Export it, or name another variable with "
                              "api_key_env=NAME (api_key_env= with no value sends no key).")
        self.model, self.base_url, self.size = model, str(base_url).rstrip("/"), str(size)
        self.timeout, self.quality = float(timeout), quality
        self.max_retries, self.backoff = int(max_retries), float(backoff)

    def describe(self) -> dict[str, Any]:
        """Model, endpoint, size and quality (never the key)."""
        return {"generator": "openai", "model": self.model, "base_url": self.base_url,
                "size": self.size, "quality": self.quality}

    def _fields(self, prompt: str) -> dict[str, str]:
        fields = {"model": self.model, "prompt": prompt, "n": "1", "size": self.size}
        if self.quality:
            fields["quality"] = self.quality
        if self.model.startswith("dall-e"):
            fields["response_format"] = "b64_json"
        return fields

    def _headers(self, content_type: str) -> dict[str, str]:
        headers = {"Content-Type": content_type}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        return headers

    def generate(self, prompt: str, references: Sequence[str | Path], seed: int = 0
                 ) -> Image.Image:
        """Draw one image; with references, edit them into a new one.

        Args:
            prompt: Generation prompt.
            references: Reference image files, sent in order as ``image[]``.
            seed: Ignored (the Images API has no seed).

        Raises:
            knowgen.errors.ToolError: when a reference file is missing or unreadable.
            GeneratorServiceError: when the API refuses the request or cannot be reached.
        """
        fields = self._fields(prompt)
        if references:
            files = []
            for i, path in enumerate(references):
                data = reference_bytes(path)
                mime, suffix = _mime(data)
                files.append(("image[]", f"reference_{i + 1}{suffix}", mime, data))
            body, content_type = multipart_body(fields, files)
            url = f"{self.base_url}/images/edits"
        else:
            payload: dict[str, Any] = {**fields, "n": 1}
            body, content_type = json.dumps(payload).encode("utf-8"), "application/json"
            url = f"{self.base_url}/images/generations"
        headers = self._headers(content_type)
        service = f"Images API {url}"

        def make() -> urllib.request.Request:
            return urllib.request.Request(url, data=body, method="POST", headers=headers)

        raw = send_with_retries(make, self.timeout, self.max_retries, self.backoff, service)
        try:
            item = json.loads(raw)["data"][0]
            text = item["b64_json"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise GeneratorServiceError(f"{service} answered without data[0].b64_json; is "
                                        "base_url an OpenAI-compatible Images API?") from None
        return decode_image(text, service)
