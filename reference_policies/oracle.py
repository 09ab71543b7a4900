"""The oracle: knows each task's hidden facts, so it only fetches the right images.

It is an upper bound for the search part of the problem: with the compositor
generator its answer reproduces the ground truth exactly.
"""

from __future__ import annotations

import logging
from typing import Any

from knowgen.envs.protocol import format_answer, format_tool_call, img_id_number
from knowgen.reference_policies.common import ordinal, parse_images
from knowgen.types import Answer, ReferenceImage, RequiredEntity, Task

logger = logging.getLogger(__name__)


class OraclePolicy:
    """Looks the task up in the world benchmark and answers with its official images.

    For each required entity it runs one ``image_search`` for the exact title of
    the entity's official image, keeps the result with that title, then answers
    with those references (in entity order) and a prompt quoting the required
    text in order.

    Args:
        seed: Unused (the policy is deterministic).
        benchmark_seed: Seed of the :class:`~knowgen.benchmarks.world.WorldBenchmark`
            the environment serves (must match to find the task).
        data_dir: World folder (the shipped world when None).
        cache_dir: Cache folder of the benchmark's ground-truth images.
    """

    name = "oracle"

    def __init__(self, seed: int = 0, benchmark_seed: int = 0, data_dir: str | None = None,
                 cache_dir: str | None = None):
        self.seed = seed
        self.benchmark_seed = benchmark_seed
        self.data_dir = data_dir
        self.cache_dir = cache_dir
        self._benchmark: Any = None
        self._task: Task | None = None
        self._pending: list[RequiredEntity] = []
        self._current: RequiredEntity | None = None
        self._found: list[tuple[str, RequiredEntity]] = []

    @property
    def benchmark(self) -> Any:
        """The world benchmark (built on first use)."""
        if self._benchmark is None:
            from knowgen.benchmarks.world import WorldBenchmark

            self._benchmark = WorldBenchmark(seed=self.benchmark_seed, data_dir=self.data_dir,
                                             cache_dir=self.cache_dir)
        return self._benchmark

    def reset(self, observation: str, info: dict[str, Any]) -> None:
        """Look up the task of the new episode by ``info["task_id"]``.

        Raises:
            knowgen.errors.UnknownNameError: when the world benchmark has no such task.
        """
        self._task = self.benchmark.task(info["task_id"])
        facts = self._task.facts
        self._pending = list(facts.entities) if facts else []
        self._current = None
        self._found = []

    def _official_title(self, entity: RequiredEntity) -> str:
        from knowgen.world.data import load_world

        return load_world(self.data_dir).images[entity.image_id].title

    def act(self, observation: str, info: dict[str, Any]) -> str:
        """Search the next entity's official image, or answer once all are found."""
        if self._current is not None:
            title = self._official_title(self._current)
            match = [i for i in parse_images(observation) if i.title == title]
            if match:
                self._found.append((match[0].img_id, self._current))
            else:
                logger.warning("Oracle did not find %r among the image results", title)
            self._current = None
        if self._pending and info.get("tool_calls_left", 0) > 0 and info.get("turns_left", 0) > 1:
            self._current = self._pending.pop(0)
            return format_tool_call("image_search", {"query": self._official_title(self._current)})
        return self._answer()

    def _answer(self) -> str:
        assert self._task is not None
        facts = self._task.facts
        found = sorted(self._found, key=lambda pair: img_id_number(pair[0]))
        refs = tuple(ReferenceImage(img_id, f"official image of {e.name}") for img_id, e in found)
        parts = [f"the {ordinal(n)} reference image ({_plain(e.name)})"
                 for n, (_, e) in enumerate(found, 1)]
        prompt = "A clean poster showing " + (" beside ".join(parts) if parts else "the request")
        texts = list(facts.required_text) if facts else []
        if texts:
            quoted = ", then ".join(f'"{_plain(t)}"' for t in texts)
            prompt += f", with the text {quoted} on banners below"
        return format_answer(Answer(prompt + ".", refs), think="Answering with the known facts.")


def _plain(text: str) -> str:
    """``text`` without double quotes, so that it cannot open or close a quotation."""
    return text.replace('"', "'")
