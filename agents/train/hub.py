"""What training asks of the Hugging Face Hub: nothing.

A training run reads its base model from a local file or folder (or from the hub when
``sft.init`` names a hub id, which is the user's choice). Two library habits would
still send requests to the hub on every run: TRL's trainers report their use when they
are built, and peft, saving an adapter, asks whether the base its config names exists
there. Both are switched off here, so that a run on a machine without internet neither
waits on the network nor sends anything.
"""

from __future__ import annotations

from typing import Any


def no_usage_report() -> None:
    """Stop TRL's trainers (and anything else through ``huggingface_hub``) from reporting
    their use to the hub from this process.

    huggingface_hub decides that from its own setting, which it takes from the
    environment once, at import; that setting is turned off here.
    """
    from huggingface_hub import constants

    constants.HF_HUB_DISABLE_TELEMETRY = True


def without_hub_lookup(model: Any) -> Any:
    """``model`` with the base name blanked in its LoRA configs, so saving asks no server.

    Saving an adapter, peft asks the hub whether the base its config names exists, unless
    that name is a local folder with a ``config.json`` (to decide whether to save the
    embedding layers, which these adapters never resize). A preset name ("smollm2-135m")
    reads as a hub id, so every checkpoint would send a request, or wait on one offline.
    :func:`knowgen.agents.train.sft.save_agent` writes the base back into the saved
    ``adapter_config.json``.
    """
    for config in getattr(model, "peft_config", {}).values():
        config.base_model_name_or_path = None
    return model
