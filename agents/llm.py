"""Chat backends of the Gen-Searcher agent: an OpenAI-compatible endpoint or a local model.

A backend turns a conversation (chat messages plus tool schemas) into the next
assistant message, a dict with ``"content"`` and, when the model called a tool
through the endpoint's function calling, ``"tool_calls"``.

* :class:`OpenAIChatBackend` speaks ``POST /chat/completions`` (OpenAI, or a vLLM
  server running the released Gen-Searcher-8B); it reuses the retrying client of
  :mod:`knowgen.net.openai_client`.
* :class:`~knowgen.agents.transformers_backend.TransformersBackend` runs a local
  Hugging Face model folder written by ``knowgen train`` (its own module, with the
  checkpoint format and constrained decoding).

Example:
    >>> backend = OpenAIChatBackend("Gen-Searcher-8B", base_url="http://127.0.0.1:8000/v1",
    ...                             api_key_env=None)
    >>> message = backend.complete(messages, tools)
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from knowgen.errors import ConfigError, KnowgenError
from knowgen.net.openai_client import ChatClient, JudgeAPIError, _Transient, request_key

logger = logging.getLogger(__name__)



class AgentBackendError(KnowgenError):
    """The agent's language model could not produce a reply."""


@runtime_checkable
class ChatBackend(Protocol):
    """Something that answers a chat conversation with the next assistant message."""

    fmt: str
    """Message format the backend takes: ``"openai"`` or ``"hf"``."""

    def complete(self, messages: list[dict[str, Any]],
                 tools: Sequence[dict[str, Any]] | None) -> dict[str, Any]:
        """The next assistant message: ``{"role", "content"[, "tool_calls"]}``."""
        ...

    def reseed(self, seed: int) -> None:
        """Restart the sampling sequence from ``seed`` (called once per episode)."""
        ...


# ---------------------------------------------------------------------- OpenAI
class _MessageClient(ChatClient):
    """A :class:`ChatClient` whose replies are whole assistant messages (JSON text)."""

    def _reply_text(self, raw: bytes) -> str:
        return json.dumps(read_assistant_message(raw))

    def complete_body(self, body: dict[str, Any], attempt: int = 0) -> dict[str, Any]:
        """Send ``body`` as it is (or answer from the cache) and return the message.

        ``attempt`` > 0 marks a resampled reply to the same request: it is cached apart
        from the first reply but never sent (strict servers refuse unknown fields).
        """
        key = request_key({**body, "knowgen_attempt": attempt} if attempt else body)
        cached = self.cache.get(key) if self.cache else None
        text = cached if cached is not None else self._send(body)
        if self.cache and cached is None:
            self.cache.put(key, text, self.model)
        return json.loads(text)


def read_assistant_message(raw: bytes) -> dict[str, Any]:
    """The first choice's message of a chat-completions response, normalised.

    The result always has ``role`` and a string ``content``; ``tool_calls`` is
    present only when the model called tools. A ``reasoning_content`` field (vLLM's
    reasoning parser) is put back in front of the content as a ``<think>`` block.
    """
    try:
        message = json.loads(raw)["choices"][0]["message"]
        if not isinstance(message, dict):
            raise TypeError("message is not an object")
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise _Transient(f"unreadable response body ({type(exc).__name__})") from exc
    content = message.get("content") or ""
    if isinstance(content, list):
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    content = str(content)
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(reasoning, str) and reasoning.strip() and "<think>" not in content:
        content = f"<think>{reasoning.strip()}</think>\n{content}"
    out: dict[str, Any] = {"role": "assistant", "content": content}
    calls = message.get("tool_calls")
    if isinstance(calls, list) and calls:
        out["tool_calls"] = calls
    return out


class OpenAIChatBackend:
    """An OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, SGLang, ...).

    Images travel as data-URL content blocks; ``tools`` are sent as OpenAI function
    tools. The reply is either text in the Gen-Searcher protocol or ``tool_calls``.

    Args:
        model: Model name sent with each request.
        base_url: Endpoint root, e.g. ``"http://127.0.0.1:8000/v1"`` for ``vllm serve``.
        api_key_env: Environment variable holding the API key; ``None`` or ``""``
            for a local server without authentication.
        temperature: Sampling temperature (Gen-Searcher inference: 0.6).
        top_p: Nucleus sampling mass (Gen-Searcher inference: 0.9).
        max_tokens: Most tokens per reply.
        timeout: Seconds one request may take.
        retries: Retries after the first attempt for transient failures (429, 5xx, timeouts).
        seed: Sent as the request's ``seed`` (per episode and turn) when not ``None``.
        cache_dir: Folder of an on-disk reply cache (off when ``None``).

    Raises:
        ConfigError: for an unset API key variable or invalid settings.
    """

    fmt = "openai"

    def __init__(self, model: str, base_url: str = "https://api.openai.com/v1",
                 api_key_env: str | None = "OPENAI_API_KEY", temperature: float = 0.6,
                 top_p: float = 0.9, max_tokens: int = 2048, timeout: float = 120,
                 retries: int = 3, seed: int | None = None, cache_dir: str | None = None):
        if api_key_env and not os.environ.get(api_key_env, "").strip():
            raise ConfigError(
                f"The openai policy needs an API key in the environment variable {api_key_env}, "
                f"which is unset. Set it, name another variable with api_key_env=NAME, or pass "
                "api_key_env= (empty) for a local server such as vllm serve.")
        if max_tokens < 1:
            raise ConfigError(f"max_tokens must be at least 1, got {max_tokens}.")
        self.model = model
        self.sampling = {"temperature": float(temperature), "top_p": float(top_p),
                         "max_tokens": int(max_tokens)}
        self.client = _MessageClient(model, base_url=base_url, api_key_env=api_key_env or None,
                                     timeout=timeout, max_retries=retries, cache_dir=cache_dir)
        self._seed, self._calls, self._attempt = seed, 0, 0

    def __repr__(self) -> str:
        return f"OpenAIChatBackend(model={self.model!r}, url={self.client.url!r})"

    def reseed(self, seed: int) -> None:
        """Use ``seed`` (plus the turn number) as the request seed from now on."""
        if self._seed is not None:
            self._seed, self._calls = int(seed), 0

    def body(self, messages: list[dict[str, Any]],
             tools: Sequence[dict[str, Any]] | None) -> dict[str, Any]:
        """The request body for ``messages`` and ``tools``."""
        body: dict[str, Any] = {"model": self.model, "messages": messages, **self.sampling}
        if tools:
            body["tools"] = list(tools)
        if self._seed is not None:
            body["seed"] = self._seed + self._calls
        return body

    def complete(self, messages: list[dict[str, Any]],
                 tools: Sequence[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Send the conversation and return the assistant's message.

        Raises:
            AgentBackendError: when the endpoint refused the request or kept failing.
        """
        self._attempt = 0
        return self._send(self.body(messages, tools))

    def resample(self, messages: list[dict[str, Any]],
                 tools: Sequence[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Another reply to the same conversation, sampled even when ``temperature`` is 0.

        The agent asks for it when a reply breaks the protocol (``format_retries``).
        A greedy backend samples its retries at temperature 0.6; with a seed, each retry
        sends the next seed; with a cache, each retry is cached under its own key.
        """
        body = self.body(messages, tools)
        if body["temperature"] <= 0:
            body["temperature"] = 0.6
        self._attempt += 1
        return self._send(body, self._attempt)

    def _send(self, body: dict[str, Any], attempt: int = 0) -> dict[str, Any]:
        self._calls += 1
        try:
            return self.client.complete_body(body, attempt)
        except JudgeAPIError as exc:
            raise AgentBackendError(str(exc)) from None
