"""The checkpoint format of the agent, shared by every local backend.

A checkpoint folder is what ``knowgen train`` writes: a whole Hugging Face model, or
a LoRA adapter (``adapter_config.json``) over a base model that ``knowgen_agent.json``
names, plus the tokenizer with its chat template and ``knowgen_agent.json`` itself
(system prompt, tool schemas, context view, decoding settings). Replies end at
``<|im_end|>``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from knowgen.agents.turn_rules import repeated_tool, reply_rules
from knowgen.errors import DataError
from knowgen.fileio import atomic_write_text

logger = logging.getLogger(__name__)

AGENT_FILE = "knowgen_agent.json"
"""File beside a checkpoint's model files: system prompt, tool schemas, decoding settings."""
END_OF_TURN = "<|im_end|>"
STRIP_TOKENS = ("<|endoftext|>", "<|im_start|>")


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


def is_adapter_folder(path: Path) -> bool:
    """Whether ``path`` holds a LoRA adapter (peft) rather than a whole model."""
    return (Path(path) / "adapter_config.json").is_file()


def name_base_in_adapter_config(folder: str | Path, base: str) -> None:
    """Record ``base`` as the model the LoRA adapter in ``folder`` adapts (peft's
    ``base_model_name_or_path``); a folder without an adapter is left as it is."""
    path = Path(folder) / "adapter_config.json"
    if not path.is_file():
        return
    config = json.loads(path.read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = base
    atomic_write_text(path, json.dumps(config, indent=2) + "\n")


def clean_reply(text: str) -> str:
    """The reply up to its first ``<|im_end|>``, without other chat control tokens."""
    text = text.split(END_OF_TURN, 1)[0]
    for token in STRIP_TOKENS:
        text = text.replace(token, "")
    return text.strip()


def pack_checkpoint(source: str | Path, target: str | Path, dtype: str = "float16") -> Path:
    """Copy a checkpoint folder for shipping, its LoRA adapter weights stored as ``dtype``.

    Only the files an agent loads are copied (adapter or model weights, their configs,
    the tokenizer and chat template, ``knowgen_agent.json``); trainer state is left
    behind. Adapter weights in half precision take half the space and load into a
    float32 model unchanged in every use that matters (their rounding is far below the
    adapters' own scale).

    Raises:
        DataError: when ``source`` is not a checkpoint folder.
    """
    import shutil

    src, dst = Path(source), Path(target)
    if not (src / AGENT_FILE).is_file():
        raise DataError(f"{src} has no {AGENT_FILE}; pack a checkpoint written by `knowgen train`.")
    keep = {AGENT_FILE, "adapter_config.json", "config.json", "generation_config.json",
            "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
            "chat_template.jinja", "model.safetensors", "adapter_model.safetensors"}
    dst.mkdir(parents=True, exist_ok=True)
    for path in sorted(src.iterdir()):
        if path.name not in keep:
            continue
        if path.name == "adapter_config.json":
            # the base is loaded from knowgen_agent.json's "base"; a path of the training
            # machine would only leak into the shipped file
            shutil.copy2(path, dst / path.name)
            base = read_agent_file(src).get("base")
            if base:
                name_base_in_adapter_config(dst, base)
        elif path.name == "adapter_model.safetensors":
            from safetensors.numpy import load_file, save_file

            tensors = {k: v.astype(dtype) for k, v in load_file(str(path)).items()}
            save_file(tensors, str(dst / path.name), metadata={"format": "pt"})
            (dst / path.name).chmod(0o644)
        else:
            shutil.copy2(path, dst / path.name)
    return dst


class CheckpointChatBackend:
    """What every local backend of a checkpoint folder shares: its settings and chat calls.

    Subclasses load the model and implement ``_generate(messages, tools, sample, closed)``.
    Every call carries its own state, so one backend object keeps no per-reply state
    between the first decode of a turn and a second one.
    """

    fmt = "hf"
    tokenizer: Any

    def _read_settings(self, path: Path, given: dict[str, Any], grammar: bool | None,
                       seed: int) -> dict[str, Any]:
        """Read ``knowgen_agent.json``: prompt, tools, view and decoding (``given`` wins).

        ``cite_pictures``, ``finish_count`` and ``fresh_calls`` (see :func:`reply_rules`)
        apply only with the grammar on.
        """
        settings = read_agent_file(path)
        self.system_prompt: str | None = settings.get("system_prompt")
        self.tools: list[dict[str, Any]] | None = settings.get("tools")
        self.view: str = str(settings.get("view") or "full")
        gen = {"max_new_tokens": 512, "temperature": 0.6, "top_p": 0.9, "do_sample": True,
               **settings.get("generation", {})}
        gen.update({k: v for k, v in given.items() if v is not None})
        if float(gen["temperature"]) <= 0:
            gen["do_sample"] = False
        self.generation = gen
        self.grammar = bool(gen.get("grammar", False) if grammar is None else grammar)
        self.cite_pictures = bool(gen.get("cite_pictures", False))
        self.finish_count = bool(gen.get("finish_count", False))
        self.fresh_calls = bool(gen.get("fresh_calls", False))
        self._seed, self._calls = int(seed), 0
        self.last_new_tokens = 0
        return settings

    def reply_rules(self, messages: Sequence[dict[str, Any]],
                    tools: Sequence[dict[str, Any]] | None,
                    closed: Sequence[str] = ()) -> dict[str, Any]:
        """What the next turn may be under this backend's settings (:func:`reply_rules`).

        Args:
            messages: The conversation so far.
            tools: The tool schemas offered (the folder's when ``None``).
            closed: Tools this decode may not call (``fresh_calls``'s second decode).
        """
        return reply_rules(messages, tools or self.tools or (), self.cite_pictures,
                           self.finish_count, closed)

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
        return self._decode(messages, tools, bool(self.generation["do_sample"]))

    def resample(self, messages: list[dict[str, Any]],
                 tools: Sequence[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Another reply to the same conversation, sampled even when decoding is greedy.

        Uses the folder's temperature and top-p (0.6 and 0.9 when it has none); the
        agent asks for it when a reply breaks the protocol.
        """
        return self._decode(messages, tools, True)

    def _decode(self, messages: list[dict[str, Any]],
                tools: Sequence[dict[str, Any]] | None, sample: bool) -> dict[str, Any]:
        """One reply; with ``fresh_calls`` (and the grammar), a reply that would make an
        earlier call a third time (:func:`repeated_tool`) is decoded again with that
        tool closed."""
        reply = self._generate(messages, tools, sample, ())
        tool = (repeated_tool(messages, str(reply.get("content") or ""))
                if self.grammar and self.fresh_calls else None)
        if tool is None:
            return reply
        logger.debug("The reply repeats an earlier %s call; decoding the turn without it", tool)
        return self._generate(messages, tools, sample, (tool,))

    def _generate(self, messages: list[dict[str, Any]],
                  tools: Sequence[dict[str, Any]] | None, sample: bool,
                  closed: tuple[str, ...]) -> dict[str, Any]:
        """One decode of the next reply.

        Args:
            messages: The conversation so far.
            tools: The tool schemas offered (the folder's when ``None``).
            sample: Sample at the folder's temperature; greedy when ``False``.
            closed: Tools the grammar refuses in this decode (empty for a first decode).
        """
        raise NotImplementedError
