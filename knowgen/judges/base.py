"""Interfaces of the image judge and the text judge."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from PIL import Image

from knowgen.types import Answer, ImageJudgement, ResolvedReference, Task, TextJudgement


@runtime_checkable
class ImageJudge(Protocol):
    """Scores a generated image against the task's ground truth (KnowGen rubric)."""

    def score(self, task: Task, image: Image.Image) -> ImageJudgement:
        """Judge ``image`` for ``task`` on the four KnowGen dimensions."""
        ...


@runtime_checkable
class TextJudge(Protocol):
    """Scores whether an answer would let a perfect generator produce the GT."""

    def score(
        self, task: Task, answer: Answer, references: list[ResolvedReference]
    ) -> TextJudgement:
        """Return a score in {0, 0.25, 0.5, 0.75, 1}."""
        ...
