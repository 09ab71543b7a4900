"""A seeded random policy: valid calls with random words, malformed text, a random answer.

Useful as a floor for scores and to exercise the environment's error paths.
"""

from __future__ import annotations

import random as _random
from typing import Any

from knowgen.envs.protocol import format_answer, format_tool_call
from knowgen.reference_policies.common import parse_images, parse_search, request_of
from knowgen.types import Answer, ReferenceImage

_MALFORMED = (
    "I am not sure what to do.",
    "<tool_call>{not json}</tool_call>",
    '<tool_call>{"name": "teleport", "arguments": {}}</tool_call>',
    '<tool_call>{"name": "search", "arguments": {"queries": 7}}</tool_call>',
    '<answer>{"gen_prompt": ""}</answer>',
    "<think>unfinished",
)


class RandomPolicy:
    """Acts at random, but reproducibly for a given seed.

    Each turn it picks one of: a search with words from the request, an image
    search, a browse of a URL it has seen (or a made-up one), a malformed turn,
    or an answer citing random image ids it has been shown. On the last turn, or
    with probability ``answer_prob`` on any turn, it answers.

    Args:
        seed: Seed of the policy's random generator (re-seeded on every reset,
            mixed with the task id, so episodes are reproducible).
        answer_prob: Chance of answering on a turn that is not the last.
        malformed_prob: Chance of a malformed turn.
    """

    name = "random"

    def __init__(self, seed: int = 0, answer_prob: float = 0.1, malformed_prob: float = 0.2):
        self.seed = seed
        self.answer_prob = answer_prob
        self.malformed_prob = malformed_prob
        self._rng = _random.Random(seed)
        self._words: list[str] = ["flag", "logo"]
        self._urls: list[str] = []
        self._ids: list[str] = []

    def reset(self, observation: str, info: dict[str, Any]) -> None:
        """Re-seed from ``seed`` and the task id; collect words of the request."""
        self._rng = _random.Random(f"{self.seed}|{info.get('task_id', '')}")
        words = [w.strip('.,;:"!?()') for w in request_of(observation).split()]
        self._words = [w for w in words if w] or ["flag", "logo"]
        self._urls, self._ids = [], []

    def act(self, observation: str, info: dict[str, Any]) -> str:
        """A random turn (always an answer when no turn or tool call is left)."""
        self._urls += [h.url for h in parse_search(observation)]
        self._ids += [i.img_id for i in parse_images(observation) if i.img_id not in self._ids]
        self._ids = list(dict.fromkeys(self._ids + list(info.get("image_ids", []))))
        rng = self._rng
        if info.get("turns_left", 1) <= 1 or info.get("tool_calls_left", 1) <= 0 \
                or rng.random() < self.answer_prob:
            return self._answer()
        if rng.random() < self.malformed_prob:
            return rng.choice(_MALFORMED)
        tool = rng.choice(("search", "image_search", "browse"))
        if tool == "search":
            queries = [self._phrase() for _ in range(rng.randint(1, 3))]
            return format_tool_call("search", {"queries": queries, "top_k": rng.randint(1, 5)})
        if tool == "image_search":
            return format_tool_call("image_search", {"query": self._phrase()})
        url = rng.choice(self._urls) if self._urls and rng.random() < 0.8 else \
            "https://encyclopedia.world.invalid/wiki/" + rng.choice(self._words)
        return format_tool_call("browse", {"url": url, "query": self._phrase()})

    def _phrase(self) -> str:
        return " ".join(self._rng.choice(self._words) for _ in range(self._rng.randint(1, 3)))

    def _answer(self) -> str:
        rng = self._rng
        count = min(len(self._ids), rng.randint(0, 4))
        refs = tuple(ReferenceImage(i, "random pick") for i in sorted(rng.sample(self._ids, count)))
        return format_answer(Answer(gen_prompt=self._phrase(), reference_images=refs))
