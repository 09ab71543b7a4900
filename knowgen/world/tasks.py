"""Task generation over the offline world: three splits that measure generalisation.

Every entity of the world falls into ``train`` or the held-out pool by a
stable hash of the seed and its id (about :data:`TEST_FRACTION` of them held
out). A task belongs to a held-out split only when all its required entities
are held out, and to ``train`` only when none is.

* ``train``: training entities, requests worded with the *seen* options of the
  request grammar (:mod:`knowgen.world.phrasing`).
* ``test``: entities never seen in training, worded like ``train``.
* ``test-ood``: entities never seen in training *and* requests whose framing,
  clue relations and text instructions use options held out of ``train``.

``test`` and ``test-ood`` share the held-out entities but never a task: each
held-out candidate goes to one of them by a stable hash. Per split a seeded
RNG samples tasks from each family in
:data:`~knowgen.world.templates.TEMPLATES`: ``test`` and ``test-ood`` hold
about :data:`TEST_SIZE` tasks each, spread evenly over the families, ``train``
up to :data:`TRAIN_PER_TEMPLATE` per family.

Example:
    >>> from knowgen.world.data import load_world
    >>> tasks = generate_tasks(load_world(), "test-ood", seed=0)
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
from knowgen.world.phrasing import Phraser
from knowgen.world.templates import TEMPLATES, Answer, Candidate, Clue, Template, WorldFacts

logger = logging.getLogger(__name__)

SPLITS = ("train", "test", "test-ood")
#: Splits whose requests use the held-out phrasings.
OOD_SPLITS = frozenset({"test-ood"})
#: Share of entities held out of training.
TEST_FRACTION = 0.35
#: Target size of the test and test-ood splits (each spread over the families).
TEST_SIZE = 160
#: Most tasks per family in the train split.
TRAIN_PER_TEMPLATE = 150
#: Bumped whenever families, wording or sampling change (part of the benchmark version).
TEMPLATE_VERSION = "3"


def entity_split(entity_id: str, seed: int = 0) -> str:
    """``"test"`` (held out of training) or ``"train"`` for ``entity_id``, stable for a ``seed``.

    The held-out entities serve both ``test`` and ``test-ood``.
    """
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


def _held_out_split(task_id: str, seed: int) -> str:
    """``"test"`` or ``"test-ood"`` for a held-out candidate (a stable coin flip)."""
    digest = hashlib.sha256(f"knowgen-world-ood|{seed}|{task_id}".encode()).digest()
    return "test-ood" if digest[0] % 2 else "test"


def candidate_pools(world: World, split: str, seed: int = 0,
                    facts: WorldFacts | None = None) -> dict[str, list[Candidate]]:
    """Per family, every checked candidate that belongs to ``split``."""
    facts = facts or WorldFacts(world)
    entity_side = "train" if split == "train" else "test"
    pools: dict[str, list[Candidate]] = {}
    for name, template in TEMPLATES.items():
        pool = [c for c in template.candidates(facts, seed)
                if all(entity_split(e, seed) == entity_side for e in c.answer)]
        if split != "train":
            pool = [c for c in pool if _held_out_split(template.task_id(c), seed) == split]
        pools[name] = pool
    return pools


def generate_tasks(world: World, split: str, seed: int = 0) -> list[Task]:
    """Generate the tasks of ``split`` (``"train"``, ``"test"`` or ``"test-ood"``) for ``seed``.

    The result is deterministic per ``(world, split, seed)``, listed family by
    family and, within one, by id. ``gt_image`` is left empty.

    Raises:
        UnknownNameError: for an unknown split.
    """
    if split not in SPLITS:
        raise UnknownNameError("split", split, SPLITS)
    facts = WorldFacts(world)
    pools = candidate_pools(world, split, seed, facts)
    if split == "train":
        quotas = {n: min(len(p), TRAIN_PER_TEMPLATE) for n, p in pools.items()}
    else:
        quotas = _even_quotas({n: len(p) for n, p in pools.items()}, TEST_SIZE)
    mode = "ood" if split in OOD_SPLITS else "seen"
    tasks: list[Task] = []
    for name, pool in pools.items():
        rng = random.Random(f"{seed}|{split}|{name}")
        picked = rng.sample(pool, quotas[name])
        template = TEMPLATES[name]
        built = [build_task(template, facts, cand, seed, mode) for cand in picked]
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


def wording_rng(seed: int, mode: str, task_id: str) -> random.Random:
    """The RNG that words the request of ``task_id`` in ``mode`` for ``seed``."""
    return random.Random(f"{seed}|prompt|{mode}|{task_id}")


def build_task(template: Template, facts: WorldFacts, cand: Candidate, seed: int,
               mode: str = "seen", phraser: Phraser | None = None) -> Task:
    """The task of one candidate: its request worded in ``mode``, and its hidden facts.

    Args:
        template: The candidate's family.
        facts: Lookups over the world.
        cand: A checked candidate.
        seed: The generation seed (the wording RNG is seeded by it and the task id).
        mode: ``"seen"`` (train and test phrasings) or ``"ood"`` (held-out ones).
        phraser: Words the request instead of the task's own phraser (a trainer's
            rewording); the benchmark's splits never pass one.
    """
    task_id = template.task_id(cand)
    ph = phraser or Phraser(wording_rng(seed, mode, task_id), mode)
    prompt, plan = template.request(facts, cand, ph)
    entities = tuple(
        RequiredEntity(entity_id=e, name=facts.entity(e).name, image_id=facts.entity(e).image_id)
        for e in cand.answer
    )
    return Task(
        id=task_id,
        prompt=prompt,
        category=template.category,
        difficulty=template.difficulty,
        facts=TaskFacts(
            entities=entities,
            required_text=plan.required,
            template=template.name,
            hops=cand.hops,
            text_case="upper" if plan.upper else "",
        ),
        extra={"clue": cand.clue, "phrasing": list(ph.used)},
    )


def split_entities(tasks: Iterable[Task]) -> set[str]:
    """Ids of every entity the ``tasks`` require."""
    return {e.entity_id for t in tasks if t.facts for e in t.facts.entities}
