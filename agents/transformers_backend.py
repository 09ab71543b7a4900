"""The local chat backend of the Gen-Searcher agent: a checkpoint folder run with transformers.

A checkpoint folder is what ``knowgen train`` writes: the Hugging Face model (or a
LoRA adapter over a base model it names), the tokenizer with its chat template, and
``knowgen_agent.json`` (system prompt, tool schemas, context view, decoding
settings). :class:`TransformersBackend` loads it and decodes replies, optionally
constrained by the protocol grammar (:mod:`knowgen.agents.grammar`). torch and
transformers are imported only when a backend is built.

Example:
    >>> backend = TransformersBackend("runs/tiny/final", device="cpu")  # doctest: +SKIP
    >>> message = backend.complete(messages, tools)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from knowgen.agents.checkpoint_format import (
    AGENT_FILE,
    END_OF_TURN,
    CheckpointChatBackend,
    clean_reply,
    is_adapter_folder,
)
from knowgen.agents.grammar import ReplyGrammar, allowed_tokens
from knowgen.errors import ConfigError, DataError, MissingDependencyError

logger = logging.getLogger(__name__)

#: The warning peft's adapter loading raises by reading ``is_gradient_checkpointing``, which
#: transformers deprecated: nothing a user of an agent checkpoint can act on.
PEFT_DEPRECATION = r"`is_gradient_checkpointing` is deprecated"

_SAMPLED_KEEP = 20
"""Allowed tokens a sampled step chooses among under the grammar."""
_FIRST_CANDIDATES = 64
_TAIL_MASS = 1e-5
"""A sampled step looks for allowed tokens only among the likeliest ones that, together,
leave less than this probability to the rest of the vocabulary."""


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
        from knowgen.agents.base_models import loading_bars

        with loading_bars():
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

    base_model = load_base_model(str(base), dtype=dtype)
    with warnings.catch_warnings():  # peft reads an attribute transformers has deprecated
        warnings.filterwarnings("ignore", message=PEFT_DEPRECATION, category=FutureWarning)
        model = PeftModel.from_pretrained(base_model, str(path))
    logger.info("Merged the LoRA adapter in %s into its base model %s", path, base)
    return model.merge_and_unload()


class TransformersBackend(CheckpointChatBackend):
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
        cite_pictures: With the grammar, an answer must cite a shown picture, and a
            turn before any picture was shown must call a tool
            (:func:`~knowgen.agents.turn_rules.reply_rules`). ``None``: the
            folder's ``generation.cite_pictures``, else off.
        finish_count: With ``cite_pictures``, no answer before the model has looked for
            every picture it numbered ("flag 1 of 2:"). ``None``: the folder's
            ``generation.finish_count``, else off.
        fresh_calls: With the grammar, a reply that would make a tool call a third
            time word for word (case and spacing aside) is decoded again with that tool
            closed for the turn (:func:`~knowgen.agents.turn_rules.repeated_tool`); the
            tools left may not repeat an earlier query or copy their description's
            example unread (:func:`~knowgen.agents.turn_rules.reply_rules`).
            ``None``: the folder's ``generation.fresh_calls``, else off.
        model: A model already in memory to decode with instead of the folder's (the
            one a trainer is updating); the folder then gives only its settings. It is
            used as it is: not moved, merged or switched to eval mode.
        tokenizer: The tokenizer of ``model`` (with ``model`` only).

    Attributes:
        last_prompt_ids: The token ids of the last decode's prompt.
        last_new_ids: The token ids that decode wrote (its end-of-turn token included
            when it wrote one).

    Raises:
        MissingDependencyError: without torch or transformers (install ``knowgen[train]``).
        DataError: when ``path`` is not a model folder.
    """

    def __init__(self, path: str | Path, device: str = "auto", dtype: str = "auto",
                 max_new_tokens: int | None = None, temperature: float | None = None,
                 top_p: float | None = None, do_sample: bool | None = None, seed: int = 0,
                 stop_loops: bool = True, grammar: bool | None = None,
                 cite_pictures: bool | None = None, finish_count: bool | None = None,
                 fresh_calls: bool | None = None, *, model: Any = None,
                 tokenizer: Any = None):
        torch, transformers = _import_torch_stack()
        self.stop_loops = bool(stop_loops)
        self.path = Path(path).expanduser()
        if not (self.path / "config.json").is_file() and not is_adapter_folder(self.path):
            raise DataError(f"{self.path} is not a model folder (no config.json or "
                            "adapter_config.json). Point path= at a checkpoint written by "
                            "`knowgen train`.")
        settings = self._read_settings(
            self.path, {"max_new_tokens": max_new_tokens, "temperature": temperature,
                        "top_p": top_p, "do_sample": do_sample,
                        "cite_pictures": cite_pictures, "finish_count": finish_count,
                        "fresh_calls": fresh_calls},
            grammar, seed)
        self._token_texts: list[str] | None = None
        self.device = _pick_device(torch, device)
        self._torch = torch
        if (model is None) != (tokenizer is None):
            raise ConfigError("Pass model and tokenizer together, or neither to load the folder's.")
        if model is None:
            tokenizer = transformers.PreTrainedTokenizerFast.from_pretrained(str(self.path))
            model = load_checkpoint_model(self.path, settings,
                                          _pick_dtype(torch, dtype, self.device)).to(self.device)
            model.eval()
        self.tokenizer, self.model = tokenizer, model
        self.end_id = self.tokenizer.convert_tokens_to_ids(END_OF_TURN)
        if self.end_id is None or self.end_id == self.tokenizer.unk_token_id:
            raise DataError(f"The tokenizer in {self.path} has no {END_OF_TURN} token; it was not "
                            "written by `knowgen train`.")
        self.last_new_ids: list[int] = []
        self.last_prompt_ids: list[int] = []
        logger.info("Loaded agent model %s on %s (%s)", self.path, self.device, self.model.dtype)

    def __repr__(self) -> str:
        return f"TransformersBackend(path={str(self.path)!r}, device={self.device!r})"

    def _generate(self, messages: list[dict[str, Any]],
                  tools: Sequence[dict[str, Any]] | None, sample: bool,
                  closed: tuple[str, ...] = ()) -> dict[str, Any]:
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
                messages, tools, ids.shape[1], keep=_SAMPLED_KEEP if sample else 1,
                closed=closed)
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
        self.last_prompt_ids = ids[0].tolist()
        text = self.tokenizer.decode(new, skip_special_tokens=False)
        return {"role": "assistant", "content": clean_reply(text)}


    def _grammar_processor(self, messages: list[dict[str, Any]],
                           tools: Sequence[dict[str, Any]] | None, prompt_length: int,
                           keep: int, closed: tuple[str, ...] = ()) -> Any:
        """Logits processor that keeps the reply inside :class:`ReplyGrammar`, with the
        ``closed`` tools refused."""
        if self._token_texts is None:
            self._token_texts = [self.tokenizer.decode([i], clean_up_tokenization_spaces=False)
                                 for i in range(len(self.tokenizer))]
        start = ReplyGrammar(**self.reply_rules(messages, tools, closed))
        return _grammar_logits(self._torch, start, self._token_texts, self.end_id, prompt_length,
                               keep)


def _grammar_logits(torch: Any, start: ReplyGrammar, texts: Sequence[str], end_id: int,
                    prompt_length: int, keep: int = 1) -> Any:
    """Logits processor list: all but the ``keep`` likeliest allowed tokens get ``-inf``.

    ``keep`` is 1 for greedy decoding. Candidates are checked likeliest first: the
    top 64, then, while fewer than ``keep`` were allowed, the likeliest tokens that
    leave the rest of the vocabulary less than ``_TAIL_MASS`` of the probability (the
    tokens past them could almost never be drawn; checking each against the grammar
    made a sampled reply cost seconds a token), and when none of those is allowed, the
    whole vocabulary until one is (so a greedy decode takes the likeliest allowed token
    wherever it ranks). Each row keeps its own reading of the reply; a row whose reply
    left the grammar anyway (no token of the vocabulary was allowed) is not
    constrained further.
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
                    order = torch.argsort(scores[row], descending=True)
                    left = 1 - torch.cumsum(torch.softmax(scores[row].float(), -1)[order], 0)
                    reach = int((left >= _TAIL_MASS).sum()) + 1
                    allowed = allowed_tokens(reading, order[:reach].tolist(), texts, end_id,
                                             keep)
                    if not allowed:
                        allowed = allowed_tokens(reading, order[reach:].tolist(), texts,
                                                 end_id, 1)
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
