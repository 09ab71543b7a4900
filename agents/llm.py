"""Chat backends of the Gen-Searcher agent: an OpenAI-compatible endpoint or a local model.

A backend turns a conversation (chat messages plus tool schemas) into the next
assistant message, a dict with ``"content"`` and, when the model called a tool
through the endpoint's function calling, ``"tool_calls"``.

* :class:`OpenAIChatBackend` speaks ``POST /chat/completions`` (OpenAI, or a vLLM
  server running the released Gen-Searcher-8B); it reuses the retrying client of
  :mod:`knowgen.net.openai_client`.
* :class:`TransformersBackend` runs a local Hugging Face model folder written by
  ``knowgen train`` (model, tokenizer with its chat template, ``knowgen_agent.json``).
  torch and transformers are imported only when it is built.

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
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from knowgen.agents.grammar import ReplyGrammar, allowed_tokens
from knowgen.envs.protocol import IMG_ID_PATTERN
from knowgen.errors import ConfigError, DataError, KnowgenError, MissingDependencyError
from knowgen.net.openai_client import ChatClient, JudgeAPIError, _Transient, request_key

logger = logging.getLogger(__name__)

AGENT_FILE = "knowgen_agent.json"
"""File beside a checkpoint's model files: system prompt, tool schemas, decoding settings."""
END_OF_TURN = "<|im_end|>"
_STRIP_TOKENS = ("<|endoftext|>", "<|im_start|>")
_SAMPLED_KEEP = 20
"""Allowed tokens a sampled step chooses among under the grammar."""
_FIRST_CANDIDATES = 64


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


# ---------------------------------------------------------------- transformers
def read_agent_file(folder: str | Path) -> dict[str, Any]:
    """The ``knowgen_agent.json`` of a checkpoint folder (empty settings when absent).

    Raises:
        DataError: when the file exists but is not a JSON object.
    """
    path = Path(folder) / AGENT_FILE
    if not path.is_file():
        logger.warning("%s has no %s; using the default prompt, tools and decoding", folder,
                       AGENT_FILE)
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise DataError(f"{path} is not valid JSON ({exc}); rewrite it or delete it.") from None
    if not isinstance(data, dict):
        raise DataError(f"{path} must hold a JSON object with system_prompt, tools, generation.")
    return data


def _import_torch_stack() -> tuple[Any, Any]:
    try:
        import torch
    except ImportError:
        raise MissingDependencyError("torch", "train", "The transformers agent backend") from None
    try:
        import transformers
    except ImportError:
        raise MissingDependencyError("transformers", "train",
                                     "The transformers agent backend") from None
    return torch, transformers


def is_adapter_folder(path: Path) -> bool:
    """Whether ``path`` holds a LoRA adapter (peft) rather than a whole model."""
    return (Path(path) / "adapter_config.json").is_file()


def load_checkpoint_model(path: Path, settings: dict[str, Any], dtype: Any) -> Any:
    """The model of a checkpoint folder: a whole model, or a LoRA adapter merged into its base.

    An adapter checkpoint names its base model in ``knowgen_agent.json`` (``"base"``: a
    preset, GGUF file, folder or hub id, :mod:`knowgen.agents.base_models`); the adapter
    is merged into the base weights, so decoding runs as fast as with a whole model.

    Raises:
        DataError: for an adapter checkpoint whose agent file names no base model.
    """
    import transformers

    if not is_adapter_folder(path):
        return transformers.AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype)
    base = settings.get("base")
    if not base:
        raise DataError(f"{path} holds a LoRA adapter but its {AGENT_FILE} names no base model "
                        '("base"); add the base model it was trained on.')
    try:
        from peft import PeftModel
    except ImportError as exc:
        raise MissingDependencyError("peft", "train", "A LoRA agent checkpoint") from exc
    from knowgen.agents.base_models import load_base_model

    model = PeftModel.from_pretrained(load_base_model(str(base), dtype=dtype), str(path))
    logger.info("Merged the LoRA adapter in %s into its base model %s", path, base)
    return model.merge_and_unload()


class TransformersBackend:
    """A local causal language model folder, as written by ``knowgen train``.

    The tokenizer's chat template renders the conversation with the tools; the
    reply is cut at ``<|im_end|>`` and returned as text (the model writes its
    tool calls as ``<tool_call>{...}</tool_call>``). Decoding settings not given
    here, the tools and the context view (``view``: how tool results are shown,
    :mod:`knowgen.envs.views`) come from the folder's ``knowgen_agent.json``.

    Args:
        path: Model folder (config.json, model weights, tokenizer.json, tokenizer_config.json).
        device: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        dtype: ``"auto"`` (bfloat16 on CUDA, float32 on CPU), ``"float32"``, ``"bfloat16"``,
            ``"float16"``.
        max_new_tokens: Most new tokens per reply.
        temperature: Sampling temperature; 0 decodes greedily.
        top_p: Nucleus sampling mass.
        do_sample: Sample (True) or decode greedily (False).
        seed: Seed of the sampling sequence; equal seeds give equal replies.
        stop_loops: End a reply early once it repeats one short piece over and over
            (:func:`repeating_tail`).
        grammar: Constrained decoding: only tokens that keep the turn a well-formed tool
            call or answer (:mod:`knowgen.agents.grammar`). ``None``: the folder's
            ``generation.grammar``, else off.

    Raises:
        MissingDependencyError: without torch or transformers (install ``knowgen[train]``).
        DataError: when ``path`` is not a model folder.
    """

    fmt = "hf"

    def __init__(self, path: str | Path, device: str = "auto", dtype: str = "auto",
                 max_new_tokens: int | None = None, temperature: float | None = None,
                 top_p: float | None = None, do_sample: bool | None = None, seed: int = 0,
                 stop_loops: bool = True, grammar: bool | None = None):
        torch, transformers = _import_torch_stack()
        self.stop_loops = bool(stop_loops)
        self.path = Path(path).expanduser()
        if not (self.path / "config.json").is_file() and not is_adapter_folder(self.path):
            raise DataError(f"{self.path} is not a model folder (no config.json or "
                            "adapter_config.json). Point path= at a checkpoint written by "
                            "`knowgen train`.")
        settings = read_agent_file(self.path)
        self.system_prompt: str | None = settings.get("system_prompt")
        self.tools: list[dict[str, Any]] | None = settings.get("tools")
        self.view: str = str(settings.get("view") or "full")
        gen = {"max_new_tokens": 512, "temperature": 0.6, "top_p": 0.9, "do_sample": True,
               **settings.get("generation", {})}
        given = {"max_new_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p,
                 "do_sample": do_sample}
        gen.update({k: v for k, v in given.items() if v is not None})
        if float(gen["temperature"]) <= 0:
            gen["do_sample"] = False
        self.generation = gen
        self.grammar = bool(gen.get("grammar", False) if grammar is None else grammar)
        self._token_texts: list[str] | None = None
        self.device = _pick_device(torch, device)
        self._torch = torch
        self.tokenizer = transformers.PreTrainedTokenizerFast.from_pretrained(str(self.path))
        self.model = load_checkpoint_model(self.path, settings,
                                           _pick_dtype(torch, dtype, self.device)).to(self.device)
        self.model.eval()
        self.end_id = self.tokenizer.convert_tokens_to_ids(END_OF_TURN)
        if self.end_id is None or self.end_id == self.tokenizer.unk_token_id:
            raise DataError(f"The tokenizer in {self.path} has no {END_OF_TURN} token; it was not "
                            "written by `knowgen train`.")
        self._seed, self._calls = int(seed), 0
        self.last_new_tokens = 0
        self.last_new_ids: list[int] = []
        logger.info("Loaded agent model %s on %s (%s)", self.path, self.device, self.model.dtype)

    def __repr__(self) -> str:
        return f"TransformersBackend(path={str(self.path)!r}, device={self.device!r})"

    def reseed(self, seed: int) -> None:
        """Restart the sampling sequence from ``seed``."""
        self._seed, self._calls = int(seed), 0

    def render(self, messages: list[dict[str, Any]],
               tools: Sequence[dict[str, Any]] | None = None) -> str:
        """The prompt text the model sees (chat template with the generation prompt)."""
        return self.tokenizer.apply_chat_template(
            messages, tools=list(tools) if tools else None, add_generation_prompt=True,
            tokenize=False)

    def complete(self, messages: list[dict[str, Any]],
                 tools: Sequence[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Generate the assistant's reply (text up to ``<|im_end|>``)."""
        return self._generate(messages, tools, bool(self.generation["do_sample"]))

    def resample(self, messages: list[dict[str, Any]],
                 tools: Sequence[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Another reply to the same conversation, sampled even when decoding is greedy.

        Uses the folder's temperature and top-p (0.6 and 0.9 when it has none); the
        agent asks for it when a reply breaks the protocol.
        """
        return self._generate(messages, tools, True)

    def _generate(self, messages: list[dict[str, Any]],
                  tools: Sequence[dict[str, Any]] | None, sample: bool) -> dict[str, Any]:
        torch = self._torch
        prompt = self.render(messages, tools)
        encoded = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        ids = encoded["input_ids"].to(self.device)
        gen = dict(self.generation)
        sampling: dict[str, Any] = {"do_sample": sample}
        if sample:
            temperature = float(gen["temperature"])
            sampling.update(temperature=temperature if temperature > 0 else 0.6,
                            top_p=float(gen["top_p"]))
        if self.stop_loops:
            sampling["stopping_criteria"] = _loop_stop(torch, ids.shape[1])
        if self.grammar:
            sampling["logits_processor"] = self._grammar_processor(
                messages, tools, ids.shape[1], keep=_SAMPLED_KEEP if sample else 1)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.end_id
        devices = [self.device] if self.device.startswith("cuda") else []
        with torch.random.fork_rng(devices=devices), torch.inference_mode():
            torch.manual_seed(self._seed * 1_000_003 + self._calls)
            out = self.model.generate(
                ids, attention_mask=encoded["attention_mask"].to(self.device),
                max_new_tokens=int(gen["max_new_tokens"]), eos_token_id=self.end_id,
                pad_token_id=pad, **sampling)
        self._calls += 1
        new = out[0, ids.shape[1]:].tolist()
        self.last_new_tokens, self.last_new_ids = len(new), new
        text = self.tokenizer.decode(new, skip_special_tokens=False)
        return {"role": "assistant", "content": clean_reply(text)}


    def _grammar_processor(self, messages: list[dict[str, Any]],
                           tools: Sequence[dict[str, Any]] | None, prompt_length: int,
                           keep: int) -> Any:
        """Logits processor that keeps the reply inside :class:`ReplyGrammar`."""
        if self._token_texts is None:
            self._token_texts = [self.tokenizer.decode([i], clean_up_tokenization_spaces=False)
                                 for i in range(len(self.tokenizer))]
        shown = {m.group(0).upper() for msg in messages if msg.get("role") == "tool"
                 for m in IMG_ID_PATTERN.finditer(str(msg.get("content", "")))}
        start = ReplyGrammar(tools or self.tools or (), shown)
        return _grammar_logits(self._torch, start, self._token_texts, self.end_id, prompt_length,
                               keep)


def _grammar_logits(torch: Any, start: ReplyGrammar, texts: Sequence[str], end_id: int,
                    prompt_length: int, keep: int = 1) -> Any:
    """Logits processor list: all but the ``keep`` likeliest allowed tokens get ``-inf``.

    ``keep`` is 1 for greedy decoding. Candidates are checked likeliest first: the
    top 64, then the rest of the vocabulary while fewer than ``keep`` were allowed.
    Each row keeps its own reading of the reply; a row whose reply left the grammar
    anyway (no token of the vocabulary was allowed) is not constrained further.
    """
    from transformers import LogitsProcessor, LogitsProcessorList

    class GrammarLogits(LogitsProcessor):
        def __init__(self) -> None:
            self.rows: list[ReplyGrammar | None] = []
            self.seen = prompt_length

        def __call__(self, input_ids: Any, scores: Any) -> Any:
            if not self.rows:
                self.rows = [start.copy() for _ in range(input_ids.shape[0])]
            new = input_ids[:, self.seen:].tolist()
            self.seen = input_ids.shape[1]
            for row, tokens in enumerate(new):
                reading = self.rows[row]
                if reading is None or not reading.feed("".join(texts[t] for t in tokens)):
                    self.rows[row] = None
                    continue
                top = torch.topk(scores[row], min(_FIRST_CANDIDATES, scores.shape[1])).indices
                allowed = allowed_tokens(reading, top.tolist(), texts, end_id, keep)
                if len(allowed) < keep:
                    ranked = torch.argsort(scores[row], descending=True).tolist()
                    allowed = allowed_tokens(reading, ranked, texts, end_id, keep)
                if allowed:
                    keep_ids = torch.tensor(allowed, device=scores.device)
                    masked = torch.full_like(scores[row], float("-inf"))
                    masked[keep_ids] = scores[row, keep_ids]
                    scores[row] = masked
            return scores

    return LogitsProcessorList([GrammarLogits()])


def repeating_tail(ids: Sequence[int], max_period: int = 16, repeats: int = 4,
                   min_tokens: int = 16) -> bool:
    """Whether ``ids`` ends in one piece of at most ``max_period`` tokens written over and over.

    The tail must hold ``repeats`` copies of the piece and at least ``min_tokens``
    tokens. A small model that starts such a loop rarely leaves it before its
    token budget runs out.
    """
    for period in range(1, max_period + 1):
        span = max(period * repeats, min_tokens)
        if len(ids) < span:
            break
        tail = ids[-span:]
        if all(tail[i] == tail[i - period] for i in range(period, span)):
            return True
    return False


def _loop_stop(torch: Any, prompt_length: int) -> Any:
    """Stopping criteria that end a reply stuck in :func:`repeating_tail`."""
    from transformers import StoppingCriteria, StoppingCriteriaList

    class LoopStop(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            done = [repeating_tail(row[prompt_length:].tolist()) for row in input_ids]
            return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([LoopStop()])


def clean_reply(text: str) -> str:
    """The reply up to its first ``<|im_end|>``, without other chat control tokens."""
    text = text.split(END_OF_TURN, 1)[0]
    for token in _STRIP_TOKENS:
        text = text.replace(token, "")
    return text.strip()


def _pick_device(torch: Any, device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={device!r} was asked for but CUDA is not available; "
                          "use device=cpu or device=auto.")
    return device


def _pick_dtype(torch: Any, dtype: str, device: str) -> Any:
    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    names = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if dtype not in names:
        raise ConfigError(f"Unknown dtype {dtype!r}; use auto, {', '.join(names)}.")
    return names[dtype]
