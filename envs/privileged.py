"""The documented hook through which privileged policies read a task's hidden facts.

Agents never see hidden facts: they get observations and ``info`` only. A
*privileged* policy (the ``oracle``, an upper bound for search) declares
``privileged = True`` and a ``bind(env)`` method; whoever runs it (``knowgen
eval``, expert-data generation, your own loop) calls
:func:`bind_policy` once, and the policy then reads :func:`privileged_view`
of the environment at each ``reset``. Because the facts come from the task the
environment is serving, this works for every benchmark whose tasks carry facts
(any seed of the world, a user's task file), not only for tasks a policy could
regenerate itself.

Example:
    >>> env = SearchGenEnv(split="test")
    >>> oracle = POLICIES.create("oracle")
    >>> bind_policy(oracle, env)        # a no-op for ordinary policies
    >>> obs, info = env.reset(seed=0)
    >>> oracle.reset(obs, info)         # reads privileged_view(env)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from knowgen.types import TaskFacts


@dataclass(frozen=True)
class OfficialImage:
    """Where the official picture of one required entity can be found.

    Attributes:
        entity_id: World entity id.
        name: The entity's name.
        image_id: World image id of its official picture.
        title: The picture's title in image search ("" when the benchmark has no world).
        url: The picture's address ("" when unknown).
    """

    entity_id: str
    name: str
    image_id: str
    title: str = ""
    url: str = ""


@dataclass(frozen=True)
class PrivilegedView:
    """The hidden side of the task being served.

    Attributes:
        task_id: Id of the task.
        facts: Its hidden facts.
        official_images: One entry per required entity, in layout order.
    """

    task_id: str
    facts: TaskFacts
    official_images: tuple[OfficialImage, ...]


def privileged_view(env: Any) -> PrivilegedView | None:
    """The hidden facts of the task ``env`` serves, or None when the task has none.

    Args:
        env: A :class:`~knowgen.envs.searchgen.SearchGenEnv`, possibly wrapped.
    """
    inner = getattr(env, "unwrapped", env)
    task = getattr(inner, "task", None)
    if task is None or task.facts is None:
        return None
    world = getattr(getattr(inner, "benchmark", None), "world", None)
    images = []
    for ent in task.facts.entities:
        img = world.images.get(ent.image_id) if world is not None else None
        images.append(OfficialImage(ent.entity_id, ent.name, ent.image_id,
                                    img.title if img else "", img.url if img else ""))
    return PrivilegedView(task.id, task.facts, tuple(images))


def bind_policy(policy: Any, env: Any) -> Any:
    """Give a privileged policy its environment (``policy.bind(env)``); others are left alone.

    Returns:
        The policy.
    """
    if getattr(policy, "privileged", False) and hasattr(policy, "bind"):
        policy.bind(env)
    return policy
