"""The model a training stage starts from: a saved agent folder, adapted or whole.

SFT starts from a base model (:mod:`knowgen.agents.base_models`) or, as a second
stage, from the LoRA adapter an earlier SFT run saved; GRPO starts from the SFT
checkpoint. Both load a saved folder here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from knowgen.agents.checkpoint_format import is_adapter_folder, read_agent_file
from knowgen.agents.train.hub import without_hub_lookup
from knowgen.errors import ConfigError


def adapter_base(folder: str | Path) -> str:
    """The base model a saved LoRA adapter folder adapts, as its ``knowgen_agent.json`` names it.

    Raises:
        ConfigError: for an adapter folder that names no base model.
    """
    base = read_agent_file(folder).get("base")
    if not base:
        raise ConfigError(f"{folder} holds a LoRA adapter but names no base model; it was not "
                          "written by `knowgen train sft`.")
    return str(base)


def load_trainable(init: str | Path) -> Any:
    """The model to train from a saved folder.

    A LoRA checkpoint goes on training its adapter over the base that its
    ``knowgen_agent.json`` names; the base weights stay frozen.

    Raises:
        ConfigError: for an adapter checkpoint that names no base model.
    """
    init = Path(init)
    if not is_adapter_folder(init):
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_pretrained(str(init))
    base = adapter_base(init)
    from peft import PeftModel

    from knowgen.agents.base_models import load_base_model

    model = PeftModel.from_pretrained(load_base_model(base), str(init), is_trainable=True)
    return without_hub_lookup(model)
