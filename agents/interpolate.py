"""Weight interpolation of two LoRA adapters of one base model.

A later fine-tuning stage learns what its data adds and forgets part of what the earlier
adapter knew. Interpolating the two adapters' weight changes,
``(1 - weight) * delta_first + weight * delta_second``, is a cheap way to keep part of
each; at ``weight`` 0 it is the first adapter, at 1 the second. A weight above 1
extrapolates: it goes on past the second adapter along the direction from the first to
it, ``first + weight * (second - first)``, which amplifies what a short later stage (a few
GRPO steps, say) changed; a weight below 0 goes the other way, past the first.

Two LoRA adapters cannot be averaged matrix by matrix (``mean(B) @ mean(A)`` is not the
mean of ``B @ A``), so the result stacks them: a rank ``r1 + r2`` adapter whose ``A`` is
both ``A`` matrices one above the other and whose ``B`` is both ``B`` matrices side by
side, each scaled by its weight and by its own ``alpha / r``. Its change of every weight
is exactly the interpolation of the two. The folder's other files (tokenizer, chat
template, ``knowgen_agent.json``) are the first adapter's.

Example:
    >>> interpolate_adapters("agents/checkpoints/gen-searcher", "runs/s3/sft/final",
    ...                      0.5, "runs/half")
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path
from typing import Any

from knowgen.errors import ConfigError, DataError
from knowgen.fileio import atomic_write_text

logger = logging.getLogger(__name__)

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
#: Settings both adapters must share for their weight changes to add up.
SHARED = ("base_model_name_or_path", "target_modules", "peft_type", "bias", "fan_in_fan_out")


def _read_config(folder: Path) -> dict[str, Any]:
    path = folder / ADAPTER_CONFIG
    if not path.is_file() or not (folder / ADAPTER_WEIGHTS).is_file():
        raise DataError(f"{folder} is not a LoRA adapter folder ({ADAPTER_CONFIG} and "
                        f"{ADAPTER_WEIGHTS}); pass the sft/final or grpo/final of a LoRA run.")
    config = json.loads(path.read_text(encoding="utf-8"))
    if config.get("use_rslora") or config.get("rank_pattern") or config.get("alpha_pattern"):
        raise ConfigError(f"{folder} uses rsLoRA or per-module ranks, which interpolation "
                          "does not handle; interpolate adapters with one rank and alpha.")
    return config


def _scale(config: dict[str, Any]) -> float:
    return float(config["lora_alpha"]) / float(config["r"])


def interpolate_adapters(first: str | Path, second: str | Path, weight: float,
                         out: str | Path) -> Path:
    """Write to ``out`` the adapter whose weight change is
    ``(1 - weight) * first's + weight * second's``.

    Args:
        first: Folder of the first LoRA adapter (its other files are copied).
        second: Folder of the second, over the same base model and modules.
        weight: The second adapter's share: from 0 to 1 interpolates, above 1 (or
            below 0) extrapolates along the direction from the first to the second.
        out: Folder to create; it must not exist yet.

    Raises:
        ConfigError: for a weight that is not a finite number, an existing ``out``, or
            adapters of other bases, modules or settings.
        DataError: for a folder that holds no LoRA adapter, or weights that do not pair.
    """
    import torch
    from safetensors.torch import load_file, save_file

    if not math.isfinite(weight):
        raise ConfigError(f"--weight must be a finite number (0 to 1 interpolates, above 1 "
                          f"extrapolates), got {weight}.")
    if not 0.0 <= weight <= 1.0:
        logger.info("Weight %s is outside [0, 1]: extrapolating along %s -> %s", weight, first,
                    second)
    first, second, out = Path(first), Path(second), Path(out)
    if out.exists():
        raise ConfigError(f"{out} exists; choose a new --out folder.")
    configs = [_read_config(first), _read_config(second)]
    for key in SHARED:
        values = [c.get(key) for c in configs]
        if key == "target_modules" and all(isinstance(v, list) for v in values):
            values = [sorted(v) for v in values]
        if values[0] != values[1]:
            raise ConfigError(f"The adapters differ in {key} ({values[0]!r} and {values[1]!r}); "
                              "only adapters of one base and one set of modules interpolate.")
    tensors = [load_file(str(folder / ADAPTER_WEIGHTS)) for folder in (first, second)]
    if set(tensors[0]) != set(tensors[1]):
        raise DataError(f"{first} and {second} adapt different weights; they do not pair.")
    ranks = [int(c["r"]) for c in configs]
    rank = sum(ranks)
    alpha = float(rank)  # the merged adapter's own scale alpha / r is then 1
    shares = [(1.0 - weight) * _scale(configs[0]), weight * _scale(configs[1])]
    merged: dict[str, Any] = {}
    for key, tensor in tensors[0].items():
        other = tensors[1][key]
        if key.endswith("lora_A.weight"):
            merged[key] = torch.cat([tensor.float(), other.float()], dim=0)
        elif key.endswith("lora_B.weight"):
            merged[key] = torch.cat([tensor.float() * shares[0], other.float() * shares[1]],
                                    dim=1)
        else:
            raise DataError(f"{first} holds {key}, which is not a LoRA A or B matrix; only "
                            "plain LoRA adapters interpolate.")
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(first, staging, ignore=shutil.ignore_patterns(
        ADAPTER_WEIGHTS, "checkpoint-*", "runs", "*.pt", "trainer_state.json"))
    save_file({k: v.contiguous() for k, v in merged.items()}, str(staging / ADAPTER_WEIGHTS))
    config = dict(configs[0], r=rank, lora_alpha=alpha)
    atomic_write_text(staging / ADAPTER_CONFIG, json.dumps(config, indent=2) + "\n")
    agent_file = staging / "knowgen_agent.json"
    if agent_file.is_file():
        agent = json.loads(agent_file.read_text(encoding="utf-8"))
        agent["interpolated"] = {"first": str(first), "second": str(second), "weight": weight}
        atomic_write_text(agent_file, json.dumps(agent, indent=2) + "\n")
    staging.rename(out)
    logger.info("Wrote %s: %.2f of %s and %.2f of %s (rank %d)", out, 1 - weight, first, weight,
                second, rank)
    return out
