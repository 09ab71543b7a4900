"""Training settings: dataclasses with a docstring per field, read from YAML.

One :class:`TrainConfig` holds every stage (expert data, tokenizer, model, SFT,
GRPO, decoding defaults), so a preset file describes a whole run; the CLI's
``--set section.key=value`` overrides single fields.

Example:
    >>> cfg = load_train_config("agents/configs/tiny.yaml", {"sft.epochs": 1})
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from knowgen.agents.expert_data import ExpertDataConfig
from knowgen.agents.train.settings import (
    GenerationSettings,
    GRPOSettings,
    LoraSettings,
    ModelSettings,
    SFTSettings,
    TokenizerSettings,
)
from knowgen.config import CLEAR, load_config
from knowgen.envs.trl_env import DEFAULT_SYSTEM_PROMPT
from knowgen.errors import ConfigError

__all__ = [
    "PRESETS", "GRPOSettings", "GenerationSettings", "LoraSettings", "ModelSettings",
    "SFTSettings", "TokenizerSettings", "TrainConfig", "load_train_config", "parse_set_options",
    "preset_path",
]

PRESETS = ("smoke", "tiny", "smollm2", "paper")
"""Preset names; each is a YAML file in ``knowgen/agents/configs``."""


@dataclass
class TrainConfig:
    """A whole training run: data, tokenizer, model, SFT, GRPO and decoding defaults."""

    output_dir: str = "runs/train"
    """Folder of the run: data, tokenizer, ``sft/`` and ``grpo/`` (each with ``final/``)."""

    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    """System message of the agent (data, training and inference)."""

    view: str = "full"
    """Context view of tool results (:mod:`knowgen.envs.views`): ``full`` shows them as the
    environment writes them with all four tools; ``compact`` shows titles, snippets and image
    ids only, with the two search tools and short schemas (about a third of the tokens: what
    a small model trained from scratch on a CPU can afford). Stored with the checkpoint."""

    precision: str = "auto"
    """Arithmetic of SFT and GRPO: ``auto`` (bf16 mixed precision on a GPU that supports
    it and on a CPU with AVX512-BF16, AMX or Arm BF16, float32 elsewhere), ``bf16``
    (mixed precision wherever it runs; a CPU with
    AVX512-BF16 or AMX trains faster in it: 1.35 times the tokens/s of float32 on the
    2-core CPU of ``perf/RESULTS_train.md``) or ``fp32``. The trained weights stay
    float32 either way."""

    data: ExpertDataConfig = field(default_factory=ExpertDataConfig)
    """Expert data generation."""

    tokenizer: TokenizerSettings = field(default_factory=TokenizerSettings)
    """Tokenizer source."""

    model: ModelSettings = field(default_factory=ModelSettings)
    """Shape of a model built from scratch."""

    sft: SFTSettings = field(default_factory=SFTSettings)
    """Supervised fine-tuning."""

    grpo: GRPOSettings = field(default_factory=GRPOSettings)
    """Reinforcement learning."""

    generation: GenerationSettings = field(default_factory=GenerationSettings)
    """Decoding defaults written to ``knowgen_agent.json``."""


def preset_path(name: str) -> Path:
    """Path of a shipped preset (``smoke``, ``tiny``, ``smollm2`` or ``paper``).

    Raises:
        ConfigError: for an unknown preset name.
    """
    if name not in PRESETS:
        raise ConfigError(f"Unknown training preset {name!r}; use one of {', '.join(PRESETS)} "
                          "or the path of a YAML file.")
    return Path(__file__).resolve().parent.parent / "configs" / f"{name}.yaml"


def load_train_config(path_or_preset: str | Path | None = None,
                      overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Read a :class:`TrainConfig` from a YAML file or preset name, then apply overrides.

    Args:
        path_or_preset: A YAML path, a preset name, or None for the defaults.
        overrides: Dotted keys (``"sft.epochs"``) and their values.

    Raises:
        ConfigError: for a missing file, unknown settings or wrong value types.
    """
    path: str | Path | None = path_or_preset
    name = path_or_preset if isinstance(path_or_preset, str) else ""
    if name and not Path(name).is_file() and (
            name in PRESETS or not name.endswith((".yaml", ".yml"))):
        path = preset_path(name)
    return load_config(TrainConfig, path, overrides or {})


def parse_set_options(items: list[str] | None) -> dict[str, Any]:
    """Turn ``["sft.epochs=2", ...]`` into overrides (values parsed as YAML scalars).

    ``key=null`` (or ``key=``) unsets the setting: its value is :data:`knowgen.config.CLEAR`.

    Raises:
        ConfigError: for an item without ``=``.
    """
    import yaml

    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value (e.g. sft.epochs=2), got {item!r}.")
        parsed = yaml.safe_load(value) if value.strip() else None
        out[key.strip()] = CLEAR if parsed is None else parsed
    return out
