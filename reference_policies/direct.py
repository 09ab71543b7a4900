"""The no-search baseline: answer at once with the request itself."""

from __future__ import annotations

from typing import Any

from knowgen.envs.protocol import format_answer
from knowgen.reference_policies.common import request_of
from knowgen.types import Answer


class DirectPolicy:
    """Answers on the first turn with the original request as ``gen_prompt`` and no references.

    This is what a plain text-to-image model sees; with the reference gate on,
    its reward is 0, but its image is still judged.

    Args:
        seed: Unused (the policy is deterministic); accepted for a uniform interface.
    """

    name = "direct"

    def __init__(self, seed: int = 0):
        self.seed = seed
        self._request = ""

    def reset(self, observation: str, info: dict[str, Any]) -> None:
        """Remember the request of the new episode."""
        self._request = request_of(observation)

    def act(self, observation: str, info: dict[str, Any]) -> str:
        """Answer with the request and no references."""
        prompt = self._request or request_of(observation)
        return format_answer(Answer(gen_prompt=prompt), think="Answering without searching.")
