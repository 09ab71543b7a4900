"""Interface of policies: anything that turns observations into actions."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Policy(Protocol):
    """A policy for :class:`knowgen.envs.SearchGenEnv`.

    The environment's observation is text; the action is the assistant's text in
    the Gen-Searcher protocol (a ``<think>`` block, then one ``<tool_call>`` or
    an ``<answer>``).
    """

    name: str

    def reset(self, observation: str, info: dict[str, Any]) -> None:
        """Start a new episode; ``info`` carries ``task_id`` and the budgets."""
        ...

    def act(self, observation: str, info: dict[str, Any]) -> str:
        """Return the next action for the latest observation."""
        ...
