"""The agent run with llama.cpp (``llama-cpp-python``): a GGUF base, a GGUF LoRA, a GBNF grammar.

:class:`LlamaCppBackend` runs a LoRA checkpoint of ``knowgen train`` whose base is a
GGUF file (``sft.init=smollm2-135m`` or a ``.gguf`` path): llama.cpp loads the base
as it is (quantised), applies the adapter at run time, keeps the KV cache of the
conversation's common prefix between calls, and constrains each reply to the action
protocol with a GBNF grammar (:mod:`knowgen.agents.gbnf`). The prompt is rendered by
the checkpoint's own chat template, exactly as training rendered it.

The peft adapter is converted once into llama.cpp's LoRA format
(:func:`write_lora_gguf`) and cached by its content hash in ``cache_dir`` (default
``~/.cache/knowgen/lora-gguf``).

Example:
    >>> backend = LlamaCppBackend("runs/train-smollm2/grpo/final")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from knowgen.agents.checkpoint_format import (
    END_OF_TURN,
    CheckpointChatBackend,
    clean_reply,
    is_adapter_folder,
)
from knowgen.agents.gbnf import reply_gbnf
from knowgen.errors import ConfigError, DataError, MissingDependencyError

logger = logging.getLogger(__name__)

_GGUF_NAMES = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
               "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
               "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
"""Llama layers under their Hugging Face names and their GGUF tensor names."""
_LORA_KEY = re.compile(r"layers\.(\d+)\.(\w+\.\w+)\.lora_([AB])\.weight$")


DEFAULT_CACHE_DIR = Path.home() / ".cache" / "knowgen" / "lora-gguf"
"""Where converted adapters are kept unless ``cache_dir`` says otherwise."""


def rows_in_gguf_order(weight: Any, heads: int) -> Any:
    """Rows of a query or key projection as llama.cpp stores them.

    llama.cpp keeps the two rotary halves of each head interleaved; its converters
    reorder the rows of ``q_proj`` and ``k_proj`` (and so the rows of a LoRA ``B``
    that updates them) accordingly.
    """
    return weight.reshape(heads, 2, weight.shape[0] // heads // 2, *weight.shape[1:]) \
        .swapaxes(1, 2).reshape(weight.shape)


def write_lora_gguf(adapter_dir: str | Path, base_gguf: str | Path, out: str | Path) -> Path:
    """Write a peft LoRA adapter of a Llama model as a llama.cpp GGUF adapter.

    Args:
        adapter_dir: Folder with ``adapter_config.json`` and ``adapter_model.safetensors``.
        base_gguf: The GGUF base model (its head counts order the query and key rows).
        out: The file to write.

    Raises:
        DataError: for an adapter on layers llama.cpp adapters cannot hold, or a base
            that is not a Llama GGUF.
    """
    import gguf
    from safetensors.numpy import load_file

    folder = Path(adapter_dir)
    config = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
    reader = gguf.GGUFReader(str(base_gguf))
    arch = _field(reader, "general.architecture")
    if arch != "llama":
        raise DataError(f"{base_gguf} is a {arch!r} model; LoRA conversion knows Llama bases only.")
    heads = {"attn_q": int(_field(reader, "llama.attention.head_count")),
             "attn_k": int(_field(reader, "llama.attention.head_count_kv"))}
    rank = int(config["r"])
    alpha = float(config.get("lora_alpha", rank))
    if config.get("use_rslora"):
        alpha *= rank ** 0.5  # llama.cpp scales by alpha / r; rsLoRA by alpha / sqrt(r)
    writer = gguf.GGUFWriter(str(out), arch="llama")
    writer.add_string(gguf.Keys.General.TYPE, gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    for key, array in sorted(load_file(str(folder / "adapter_model.safetensors")).items()):
        match = _LORA_KEY.search(key)
        if match is None or match.group(2) not in _GGUF_NAMES:
            raise DataError(f"Adapter tensor {key!r} is on a layer llama.cpp adapters cannot "
                            "hold; train with sft.lora.target_modules=all-linear or a list of "
                            "q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj.")
        name = _GGUF_NAMES[match.group(2)]
        data = array.astype("float32")
        if match.group(3) == "B" and name in heads:
            data = rows_in_gguf_order(data, heads[name])
        writer.add_tensor(f"blk.{match.group(1)}.{name}.weight.lora_{match.group(3).lower()}",
                          data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return Path(out)


def _field(reader: Any, key: str) -> Any:
    field = reader.get_field(key)
    if field is None:
        raise DataError(f"The GGUF file has no {key!r}.")
    return field.contents()


def cached_lora_gguf(adapter_dir: Path, base_gguf: Path,
                     cache_dir: str | Path | None = None) -> Path:
    """The GGUF form of a checkpoint's adapter, converted on first use and cached by content."""
    digest = hashlib.sha256((adapter_dir / "adapter_model.safetensors").read_bytes())
    digest.update((adapter_dir / "adapter_config.json").read_bytes())
    folder = Path(cache_dir).expanduser() if cache_dir else DEFAULT_CACHE_DIR
    target = folder / f"{digest.hexdigest()[:16]}.gguf"
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(f".{os.getpid()}.part")
        write_lora_gguf(adapter_dir, base_gguf, partial)
        os.replace(partial, target)
        logger.info("Converted the LoRA adapter of %s for llama.cpp: %s", adapter_dir, target)
    return target


def base_gguf_of(folder: Path, settings: dict[str, Any]) -> Path:
    """The GGUF base file of a LoRA checkpoint.

    Raises:
        ConfigError: for a checkpoint llama.cpp cannot run (whole transformers weights,
            or a base that is not a GGUF file).
    """
    from knowgen.agents.base_models import resolve_base

    if not is_adapter_folder(folder):
        raise ConfigError(f"{folder} holds whole transformers weights; the llama.cpp backend "
                          "runs LoRA checkpoints over a GGUF base (sft.init=smollm2-135m or a "
                          ".gguf file). Use --policy transformers:path=... for this one.")
    base = settings.get("base")
    if not base:
        raise DataError(f"{folder} holds a LoRA adapter but names no base model.")
    source = resolve_base(str(base))
    if not source.gguf_file:
        raise ConfigError(f"The base of {folder} is {base!r}, not a GGUF file; llama.cpp needs "
                          "one. Use --policy transformers:path=... for this checkpoint.")
    return Path(source.location) / source.gguf_file


def _import_llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError:
        raise MissingDependencyError("llama-cpp-python", "llamacpp",
                                     "The llama.cpp agent backend") from None
    return llama_cpp


class LlamaCppBackend(CheckpointChatBackend):
    """A LoRA checkpoint of ``knowgen train`` over a GGUF base, run by llama.cpp.

    Decoding settings not given here, the tools and the context view come from the
    folder's ``knowgen_agent.json``, as for the transformers backend.

    Args:
        path: The checkpoint folder (adapter, tokenizer, ``knowgen_agent.json``).
        threads: CPU threads (default: llama.cpp's choice).
        context: Context window in tokens.
        max_new_tokens: Most new tokens per reply.
        temperature: Sampling temperature; 0 decodes greedily.
        top_p: Nucleus sampling mass.
        do_sample: Sample (True) or decode greedily (False).
        seed: Seed of the sampling sequence.
        grammar: Constrain replies to the protocol (GBNF). ``None``: the folder's
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
        cache_dir: Folder of converted adapters (default ``~/.cache/knowgen/lora-gguf``).

    Raises:
        MissingDependencyError: without llama-cpp-python (``pip install 'knowgen[llamacpp]'``).
        ConfigError: for a checkpoint that is not a LoRA adapter over a GGUF base.
    """

    def __init__(self, path: str | Path, threads: int | None = None, context: int = 4096,
                 max_new_tokens: int | None = None, temperature: float | None = None,
                 top_p: float | None = None, do_sample: bool | None = None, seed: int = 0,
                 grammar: bool | None = None, cite_pictures: bool | None = None,
                 finish_count: bool | None = None,
                 fresh_calls: bool | None = None, cache_dir: str | None = None):
        llama_cpp = _import_llama_cpp()
        from transformers import PreTrainedTokenizerFast

        self.path = Path(path).expanduser()
        if not self.path.is_dir():
            raise DataError(f"{self.path} is not a checkpoint folder.")
        settings = self._read_settings(
            self.path, {"max_new_tokens": max_new_tokens, "temperature": temperature,
                        "top_p": top_p, "do_sample": do_sample,
                        "cite_pictures": cite_pictures, "finish_count": finish_count,
                        "fresh_calls": fresh_calls},
            grammar, seed)
        base = base_gguf_of(self.path, settings)
        lora = cached_lora_gguf(self.path, base, cache_dir)
        self.tokenizer = PreTrainedTokenizerFast.from_pretrained(str(self.path))
        self._llama_cpp = llama_cpp
        self.model = llama_cpp.Llama(model_path=str(base), lora_path=str(lora), n_ctx=context,
                                     n_threads=threads, seed=seed, verbose=False)
        end = self.tokenizer.convert_tokens_to_ids(END_OF_TURN)
        self._stops = {t for t in (end, self.model.token_eos()) if t is not None and t >= 0}
        logger.info("Loaded agent %s with llama.cpp (base %s)", self.path, base.name)

    def __repr__(self) -> str:
        return f"LlamaCppBackend(path={str(self.path)!r})"

    def _generate(self, messages: list[dict[str, Any]],
                  tools: Sequence[dict[str, Any]] | None, sample: bool,
                  closed: tuple[str, ...] = ()) -> dict[str, Any]:
        prompt = self.model.tokenize(self.render(messages, tools).encode("utf-8"),
                                     add_bos=False, special=True)
        options: dict[str, Any] = {"temp": 0.0, "top_k": 1, "top_p": 1.0, "min_p": 0.0}
        if sample:
            temperature = float(self.generation["temperature"])
            options = {"temp": temperature if temperature > 0 else 0.6, "top_k": 0,
                       "top_p": float(self.generation["top_p"]), "min_p": 0.0}
            self.model.set_seed(self._seed * 1_000_003 + self._calls)
        if self.grammar:
            text = reply_gbnf(**self.reply_rules(messages, tools, closed))
            options["grammar"] = self._llama_cpp.LlamaGrammar.from_string(text, verbose=False)
        new: list[int] = []
        for token in self.model.generate(prompt, **options):
            if token in self._stops:
                break
            new.append(token)
            if len(new) >= int(self.generation["max_new_tokens"]):
                break
        self._calls += 1
        self.last_new_tokens = len(new)
        # the checkpoint's tokenizer writes the text, control tokens (<answer> in some
        # vocabularies) included, exactly as the transformers backend does
        text = self.tokenizer.decode(new, skip_special_tokens=False)
        return {"role": "assistant", "content": clean_reply(text)}
