"""The oracle: reads each task's hidden facts through the environment and fetches the right images.

It is an upper bound for the search part of the problem: with the compositor
generator its answer reproduces the ground truth exactly. It is *privileged*:
it must be bound to the environment it plays in
(:func:`knowgen.envs.privileged.bind_policy`, which ``knowgen eval`` and the
expert-data generator call), and it works for every benchmark whose tasks
carry facts.
"""

from __future__ import annotations

import logging
from typing import Any

from knowgen.envs.privileged import OfficialImage, privileged_view
from knowgen.envs.protocol import format_answer, format_tool_call, img_id_number
from knowgen.errors import ConfigError, DataError
from knowgen.reference_policies.common import ImageResult, ordinal, parse_images
from knowgen.types import Answer, ReferenceImage, TaskFacts

logger = logging.getLogger(__name__)


class OraclePolicy:
    """Answers with each required entity's official image and the required text.

    For each required entity it runs one ``image_search`` for the title of the
    entity's official image, keeps the result at that image's address, then
    answers with those references (in entity order) and a prompt quoting the
    required text in order (with "in capital letters" when the task asks for it).

    Args:
        seed: Unused (the policy is deterministic).
        **_: Settings of earlier versions (``benchmark_seed``, ``data_dir``,
            ``cache_dir``) are accepted and ignored: the facts come from the environment.
    """

    name = "oracle"
    privileged = True

    def __init__(self, seed: int = 0, **_: Any):
        self.seed = seed
        self._env: Any = None
        self._facts: TaskFacts | None = None
        self._pending: list[OfficialImage] = []
        self._current: OfficialImage | None = None
        self._found: list[tuple[str, OfficialImage]] = []

    def bind(self, env: Any) -> None:
        """Read hidden facts from ``env`` from now on (see :mod:`knowgen.envs.privileged`)."""
        self._env = env

    def reset(self, observation: str, info: dict[str, Any]) -> None:
        """Read the hidden facts of the task the bound environment now serves.

        Raises:
            ConfigError: when the oracle was never bound to an environment.
            DataError: when the task carries no hidden facts.
        """
        if self._env is None:
            raise ConfigError(
                "The oracle reads hidden facts through the environment: call "
                "knowgen.envs.privileged.bind_policy(policy, env) before playing "
                "(knowgen eval does this for you).")
        view = privileged_view(self._env)
        if view is None:
            raise DataError(
                f"Task {info.get('task_id')!r} carries no hidden facts, so the oracle cannot "
                "play it; it works on the world benchmark and world task files.")
        self._facts = view.facts
        self._pending = list(view.official_images)
        self._current = None
        self._found = []

    def act(self, observation: str, info: dict[str, Any]) -> str:
        """Search the next entity's official image, or answer once all are found."""
        if self._current is not None:
            match = _pick(parse_images(observation), self._current)
            if match is not None:
                self._found.append((match.img_id, self._current))
            else:
                logger.warning("Oracle did not find %r among the image results",
                               self._current.title or self._current.name)
            self._current = None
        if self._pending and info.get("tool_calls_left", 0) > 0 and info.get("turns_left", 0) > 1:
            self._current = self._pending.pop(0)
            query = self._current.title or self._current.name
            return format_tool_call("image_search", {"query": query})
        return self._answer()

    def _answer(self) -> str:
        facts = self._facts
        found = sorted(self._found, key=lambda pair: img_id_number(pair[0]))
        refs = tuple(ReferenceImage(img_id, f"official image of {e.name}") for img_id, e in found)
        parts = [f"the {ordinal(n)} reference image ({_plain(e.name)})"
                 for n, (_, e) in enumerate(found, 1)]
        prompt = "A clean poster showing " + (" beside ".join(parts) if parts else "the request")
        texts = list(facts.required_text) if facts else []
        if texts:
            case = " in capital letters" if facts and facts.text_case == "upper" else ""
            quoted = ", then ".join(f'"{_plain(t)}"{case}' for t in texts)
            prompt += f", with the text {quoted} on banners below"
        return format_answer(Answer(prompt + ".", refs), think="Answering with the known facts.")


def _pick(images: list[ImageResult], wanted: OfficialImage) -> ImageResult | None:
    """The listed image at the official picture's address (or, without one, its title)."""
    for image in images:
        if wanted.url and image.url == wanted.url:
            return image
    for image in images:
        if wanted.title and image.title == wanted.title:
            return image
    return None


def _plain(text: str) -> str:
    """``text`` without double quotes, so that it cannot open or close a quotation."""
    return text.replace('"', "'")
