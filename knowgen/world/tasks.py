"""Task generation over the offline world, split by entity.

Every entity of the world falls into ``train`` or ``test`` by a stable hash
of the seed and its id (about :data:`TEST_FRACTION` of them in ``test``). A
task belongs to a split only when all its required entities do, so an agent
trained on ``train`` is measured on flags and logos it never had to draw.

Per split, a seeded RNG samples tasks from each template in
:data:`~knowgen.world.templates.TEMPLATES`: the ``test`` split holds about
:data:`TEST_SIZE` tasks spread evenly over the templates, ``train`` up to
:data:`TRAIN_PER_TEMPLATE` per template.

Example:
    >>> from knowgen.world.data import load_world
    >>> tasks = generate_tasks(load_world(), "test", seed=0)
    >>> tasks[0].facts.template
    'flag_named'
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Iterable

from knowgen.errors import UnknownNameError
from knowgen.types import RequiredEntity, Task, TaskFacts
from knowgen.world.data import World
from knowgen.world.templates import TEMPLATES, Answer, Candidate, Clue, Template, WorldFacts

logger = logging.getLogger(__name__)

SPLITS = ("train", "test")
#: Share of entities held out for the test split.
TEST_FRACTION = 0.35
#: Target size of the test split (spread over the templates).
TEST_SIZE = 270
#: Most tasks per template in the train split.
TRAIN_PER_TEMPLATE = 150
#: Bumped whenever templates, wording or sampling change (part of the benchmark version).
TEMPLATE_VERSION = "1"


def entity_split(entity_id: str, seed: int = 0) -> str:
    """``"test"`` or ``"train"`` for ``entity_id``, stable for a given ``seed``."""
    digest = hashlib.sha256(f"knowgen-world-split|{seed}|{entity_id}".encode()).digest()
    return "test" if int.from_bytes(digest[:8], "big") / 2**64 < TEST_FRACTION else "train"


def get_template(name: str) -> Template:
    """The template called ``name``.

    Raises:
        UnknownNameError: for an unknown template.
    """
    if name not in TEMPLATES:
        raise UnknownNameError("task template", name, TEMPLATES)
    return TEMPLATES[name]


def resolve_clue(world: World, template: str, clue: Clue, facts: WorldFacts | None = None) -> list[Answer]:
    """Every assignment of world entities that satisfies ``clue`` under ``template``.

    A well-formed task's clue resolves to exactly one assignment: its required
    entities, in layout order.

    Args:
        world: The world to search.
        template: Template name, e.g. ``"flag_by_capital"``.
        clue: The task's clue (``task.extra["clue"]``).
        facts: Prebuilt lookups over ``world`` (built when omitted).

    Returns:
        Tuples of entity ids, one per subject.
    """
    return get_template(template).resolve(facts or WorldFacts(world), clue)


def generate_tasks(world: World, split: str, seed: int = 0) -> list[Task]:
    """Generate the tasks of ``split`` (``"train"`` or ``"test"``) for ``seed``.

    The result is deterministic per ``(world, split, seed)``, listed template by
    template and, within one, by id. ``gt_image`` is left empty.

    Raises:
        UnknownNameError: for an unknown split.
    """
    if split not in SPLITS:
        raise UnknownNameError("split", split, SPLITS)
    facts = WorldFacts(world)
    pools: dict[str, list[Candidate]] = {}
    for name, template in TEMPLATES.items():
        pools[name] = [c for c in template.candidates(facts, seed)
                       if all(entity_split(e, seed) == split for e in c.answer)]
    if split == "test":
        quotas = _even_quotas({n: len(p) for n, p in pools.items()}, TEST_SIZE)
    else:
        quotas = {n: min(len(p), TRAIN_PER_TEMPLATE) for n, p in pools.items()}
    tasks: list[Task] = []
    for name, pool in pools.items():
        rng = random.Random(f"{seed}|{split}|{name}")
        picked = rng.sample(pool, quotas[name])
        template = TEMPLATES[name]
        built = [_build(template, facts, cand, seed) for cand in picked]
        tasks.extend(sorted(built, key=lambda t: t.id))
    logger.debug("generated %d %s tasks (seed %d): %s", len(tasks), split, seed, quotas)
    return tasks


def _even_quotas(available: dict[str, int], total: int) -> dict[str, int]:
    """Split ``total`` as evenly as possible over pools of the given sizes (water filling).

    Small pools are filled first; what they cannot take is shared by the larger ones.
    """
    quotas: dict[str, int] = {}
    left = total
    names = sorted(available, key=lambda n: (available[n], n))
    for i, name in enumerate(names):
        quotas[name] = min(available[name], left // (len(names) - i))
        left -= quotas[name]
    return {name: quotas[name] for name in available}


def _build(template: Template, facts: WorldFacts, cand: Candidate, seed: int) -> Task:
    task_id = template.task_id(cand)
    rng = random.Random(f"{seed}|prompt|{task_id}")
    entities = tuple(
        RequiredEntity(entity_id=e, name=facts.entity(e).name, image_id=facts.entity(e).image_id)
        for e in cand.answer
    )
    return Task(
        id=task_id,
        prompt=template.prompt(facts, cand, rng),
        category=template.category,
        difficulty=template.difficulty,
        facts=TaskFacts(
            entities=entities,
            required_text=template.required_text(facts, cand),
            template=template.name,
            hops=cand.hops,
        ),
        extra={"clue": cand.clue},
    )


def split_entities(tasks: Iterable[Task]) -> set[str]:
    """Ids of every entity the ``tasks`` require."""
    return {e.entity_id for t in tasks if t.facts for e in t.facts.entities}
