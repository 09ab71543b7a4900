"""Ground-truth images of world tasks, drawn from the task's hidden facts.

The ground truth is the ``compositor`` layout of the required entities'
official images with the required text below them. Hence a perfect answer
(those official images as references, in order, and a prompt that quotes the
required texts in order) makes the ``compositor`` generator reproduce it
pixel for pixel; see :func:`oracle_prompt`.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from knowgen.errors import DataError, ToolError
from knowgen.generators.compositor import load_image
from knowgen.generators.layout import compose
from knowgen.types import Task
from knowgen.world.data import World


def reference_files(task: Task, world: World) -> list[Path]:
    """Local files of the official images of ``task``'s required entities, in layout order.

    Raises:
        DataError: when the task has no facts or names an image the world lacks.
    """
    if task.facts is None:
        raise DataError(f"Task {task.id!r} has no facts; only world tasks can be rendered.")
    missing = [e.image_id for e in task.facts.entities if e.image_id not in world.images]
    if missing:
        raise DataError(
            f"Task {task.id!r} needs images {missing} that world {world.version} does not hold; "
            "regenerate the tasks for this world."
        )
    return [world.image_path(e.image_id) for e in task.facts.entities]


def oracle_prompt(task: Task) -> str:
    """A prompt that asks the ``compositor`` for exactly the ground truth.

    It names the subjects as references and quotes each required text, in order.
    """
    if task.facts is None:
        raise DataError(f"Task {task.id!r} has no facts.")
    ordinals = ["first", "second", "third", "fourth", "fifth"]
    parts = [f"the {ordinals[i]} reference image ({e.name})"
             for i, e in enumerate(task.facts.entities[: len(ordinals)])]
    prompt = "Show " + (", ".join(parts) if parts else "the subject") + " side by side"
    texts = [t for t in task.facts.required_text if t]
    if texts:
        prompt += ", with " + " and ".join(f'the text "{t}"' for t in texts) + " on banners below"
    else:
        prompt += ", with no text"
    return prompt + "."


def render_gt(task: Task, world: World, size: int = 512) -> Image.Image:
    """The ground-truth image of a world task.

    Args:
        task: A task with facts (from :func:`knowgen.world.tasks.generate_tasks`).
        world: The world the task was generated from.
        size: Width and height in pixels.

    Raises:
        DataError: when the task cannot be rendered from this world.
    """
    files = reference_files(task, world)
    try:
        images = [load_image(p) for p in files]
    except ToolError as exc:
        raise DataError(f"Cannot render the ground truth of {task.id!r}: {exc} The world files "
                        "are damaged; reinstall knowgen.") from exc
    texts = list(task.facts.required_text) if task.facts else []
    return compose(images, texts, (size, size))
