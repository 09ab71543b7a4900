"""Training of search agents: expert SFT data, TRL SFT and GRPO, and the ``knowgen train`` CLI.

Heavy libraries (torch, transformers, trl, datasets) load only inside the
functions that need them (the 'train' extra).
"""

from __future__ import annotations

__all__ = ["run_grpo", "run_sft"]


def __getattr__(name: str):
    if name == "run_sft":
        from knowgen.agents.train.sft import run_sft

        return run_sft
    if name == "run_grpo":
        from knowgen.agents.train.grpo import run_grpo

        return run_grpo
    raise AttributeError(name)
