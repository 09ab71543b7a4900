"""Grading an answer: resolve its references, draw it, judge both, combine the reward.

This is the last stage of a :class:`~knowgen.envs.searchgen.SearchGenEnv` episode, kept
apart from the episode's bookkeeping (turns, budgets, transcript): given the task, the
answer and the episode's image pool, it yields everything the final ``info`` reports.
"""

from __future__ import annotations

import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

from PIL import Image

from knowgen.config import EnvConfig
from knowgen.envs.observations import ImagePool
from knowgen.envs.rewards import RewardTerms, compute_reward
from knowgen.types import Answer, ImageJudgement, ResolvedReference, Task, TextJudgement

GENERATOR_REFERENCES = 3
"""References handed to the generator (the first ones by id)."""

_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def resolve_references(answer: Answer, pool: ImagePool) -> list[ResolvedReference]:
    """Look the answer's image ids up in ``pool`` (ids the episode never showed are dropped)."""
    resolved = []
    for ref in answer.reference_images:
        hit = pool.get(ref.img_id)
        if hit is not None:
            resolved.append(ResolvedReference(
                img_id=ref.img_id, note=ref.note, title=hit.title, url=hit.url,
                local_path=hit.local_path, image_id=hit.image_id))
    return resolved


def draw_answer(answer: Answer, refs: list[ResolvedReference], generator: Any,
                config: EnvConfig) -> Image.Image:
    """Draw ``answer``'s prompt with its first references, seeded by ``config.generation_seed``."""
    return generator.generate(
        answer.gen_prompt, [Path(r.local_path) for r in refs[:GENERATOR_REFERENCES]],
        seed=config.generation_seed)


def judge_answer(task: Task, answer: Answer, refs: list[ResolvedReference], image: Image.Image,
                 image_judge: Any, text_judge: Any, config: EnvConfig
                 ) -> tuple[ImageJudgement, TextJudgement, RewardTerms]:
    """Judge the drawn ``image`` and the answer, and combine the reward (``config.alpha``, gate)."""
    image_j = image_judge.score(task, image)
    text_j = text_judge.score(task, answer, refs)
    terms = compute_reward(image_j.overall, text_j.score, config.alpha, len(refs),
                           config.reference_gate)
    return image_j, text_j, terms


def save_image(image: Image.Image, folder: str | None, task_id: str) -> str | None:
    """Save ``image`` as ``<folder>/<task id>.png`` (unsafe characters replaced); None without a folder."""
    if not folder:
        return None
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    path = path / f"{_UNSAFE_NAME.sub('_', task_id)}.png"
    image.save(path)
    return str(path)


def end_info(terms: RewardTerms, image_j: dict | None, text_j: dict | None,
             answer: Answer | None, refs: list[ResolvedReference],
             saved: str | None = None) -> dict[str, Any]:
    """The keys a finished episode adds to ``info``."""
    return {
        "reward_terms": terms.to_dict(),
        "image_judgement": image_j,
        "text_judgement": text_j,
        "answer": answer.to_dict() if answer else None,
        "generated_image": saved,
        "references": [asdict(r) for r in refs],
    }
