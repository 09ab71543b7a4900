"""Many SearchGenEnv episodes at once: Gymnasium vector environments and an asyncio batch.

Gymnasium vector environments work with the plain Gymnasium calls::

    import gymnasium as gym
    import knowgen  # registers knowgen/SearchGen-v0

    envs = gym.make_vec("knowgen/SearchGen-v0", num_envs=8, vectorization_mode="sync")
    envs = gym.make_vec("knowgen/SearchGen-v0", num_envs=8, vectorization_mode="async",
                        vector_kwargs={"shared_memory": False})
    envs = gym.vector.AsyncVectorEnv(
        [lambda: gym.make("knowgen/SearchGen-v0") for _ in range(8)], shared_memory=False)

Observations and actions are text (``Text`` spaces have no shared-memory layout;
``knowgen/SearchGenMultimodal-v0`` or ``observation_mode="dict"`` adds images in a
``Dict``), so the asynchronous form needs ``shared_memory=False``;
:func:`make_vector_env` passes it. Batched observations are tuples of strings,
actions any sequence of strings, and ``info`` is a dict of arrays with a
``_key`` mask per key (Gymnasium's convention).

In asynchronous mode every sub-environment lives in its own process, so keyword
arguments must be picklable: give backends as spec strings
(``benchmark="world:cache_dir=/tmp/w"``), not ready objects.

Autoreset: Gymnasium 1.x defaults to ``AutoresetMode.NEXT_STEP``. The step that
ends an episode returns the final observation, reward and info as usual; the
*next* ``step`` ignores that sub-environment's action, resets it and returns its
first observation with reward 0, ``terminated = truncated = False`` and the
reset info (``turn == 0``). Policies should therefore call ``reset(obs, info)``
for a sub-environment on the step after its episode ended.

GRPO groups: :func:`group_reset` starts G environments on the same task.

For long tool calls, :func:`run_batch` plays whole episodes concurrently with
asyncio: each blocking ``reset``/``step`` runs in a worker thread
(:func:`asyncio.to_thread`), so search and generation I/O overlap.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from knowgen.envs import ENV_ID, register_envs
from knowgen.envs.privileged import bind_policy
from knowgen.errors import ConfigError

logger = logging.getLogger(__name__)

VECTOR_MODES = ("sync", "async")


def make_vector_env(num_envs: int, mode: str = "async", **env_kwargs: Any) -> gym.vector.VectorEnv:
    """Build ``num_envs`` copies of ``knowgen/SearchGen-v0`` as one vector environment.

    Args:
        num_envs: Number of sub-environments (at least 1).
        mode: ``"async"`` (one process each, ``shared_memory=False``) or ``"sync"``
            (all in this process, stepped one after another).
        **env_kwargs: Passed to every :class:`~knowgen.envs.searchgen.SearchGenEnv`
            (e.g. ``split="test"``, ``benchmark="world:cache_dir=/tmp/w"``). In
            ``"async"`` mode they must be picklable (spec strings, not objects).

    Returns:
        A :class:`gymnasium.vector.SyncVectorEnv` or :class:`gymnasium.vector.AsyncVectorEnv`.

    Raises:
        ConfigError: for an unknown mode or ``num_envs < 1``.

    Example:
        >>> envs = make_vector_env(8, mode="sync", split="test")
        >>> obs, info = envs.reset(seed=0)
    """
    if mode not in VECTOR_MODES:
        raise ConfigError(f"Unknown vector mode {mode!r}; use one of {VECTOR_MODES}.")
    if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
        raise ConfigError(f"num_envs must be a positive integer, got {num_envs!r}.")
    register_envs()
    vector_kwargs = {"shared_memory": False} if mode == "async" else None
    return gym.make_vec(ENV_ID, num_envs=num_envs, vectorization_mode=mode,
                        vector_kwargs=vector_kwargs, **env_kwargs)


def group_reset(envs: gym.vector.VectorEnv | Sequence[gym.Env], task_id: str,
                seed: int | None = None) -> tuple[Any, Any]:
    """Reset every environment onto the same task (one GRPO group).

    Args:
        envs: A vector environment, or a sequence of single environments.
        task_id: The task all of them start on.
        seed: Optional seed (a vector environment seeds sub-environment ``i``
            with ``seed + i``; a sequence likewise).

    Returns:
        ``(observations, infos)``: what the vector environment's ``reset`` returns,
        or two lists (one entry per environment) for a sequence.
    """
    options = {"task_id": task_id}
    if isinstance(envs, gym.vector.VectorEnv):
        return envs.reset(seed=seed, options=options)
    results = [env.reset(seed=None if seed is None else seed + i, options=options)
               for i, env in enumerate(envs)]
    return [obs for obs, _ in results], [info for _, info in results]


def env_info(infos: dict[str, Any], index: int) -> dict[str, Any]:
    """Take sub-environment ``index``'s own info out of a vector environment's batched info.

    Gymnasium batches a nested dict key by key (``info["last_action"]["tool"]`` is
    an array) and marks present entries with ``_key``; this undoes both.

    Args:
        infos: The ``info`` a vector environment's ``reset`` or ``step`` returned.
        index: Which sub-environment.

    Returns:
        The single environment's info dict (keys it did not report are left out;
        numpy scalars become Python numbers).
    """
    single: dict[str, Any] = {}
    for key, value in infos.items():
        if key.startswith("_"):
            continue
        mask = infos.get(f"_{key}")
        if mask is not None and not mask[index]:
            continue
        if isinstance(value, dict):
            single[key] = env_info(value, index)
        else:
            item = value[index]
            single[key] = item.item() if isinstance(item, np.generic) else item
    return single


async def _act(policy: Any, obs: str, info: dict[str, Any]) -> str:
    """Ask a policy for an action; coroutine ``act`` methods are awaited."""
    action = policy.act(obs, info)
    if inspect.isawaitable(action):
        action = await action
    return action


async def play_episode(env: gym.Env, policy: Any, task_id: str,
                       seed: int | None = None) -> dict[str, Any]:
    """Play one episode of ``task_id`` to its end, each env call in a worker thread.

    Returns:
        ``{"task_id", "reward", "turns", "terminated", "truncated", "info"}``
        (``info`` is the final step's info).
    """
    bind_policy(policy, env)
    obs, info = await asyncio.to_thread(env.reset, seed=seed, options={"task_id": task_id})
    policy.reset(obs, info)
    reward, terminated, truncated, turns = 0.0, False, False, 0
    while not (terminated or truncated):
        action = await _act(policy, obs, info)
        obs, reward, terminated, truncated, info = await asyncio.to_thread(env.step, action)
        turns += 1
    return {"task_id": task_id, "reward": float(reward), "turns": turns,
            "terminated": bool(terminated), "truncated": bool(truncated), "info": info}


async def run_batch(envs: Sequence[gym.Env], policies: Sequence[Any], task_ids: Sequence[str],
                    max_concurrency: int | None = None,
                    seed: int | None = None) -> list[dict[str, Any]]:
    """Play one full episode per task id, several at a time.

    Environment ``i`` is always driven by policy ``i``; each pair plays the next
    waiting task until none is left, so there may be more tasks than environments.
    Blocking ``reset``/``step`` calls run in threads, so the environments must not
    share a backend that is unsafe to call from several threads at once.

    Args:
        envs: Single (non-vector) environments, one per concurrent episode.
        policies: One policy per environment (``reset(obs, info)`` and
            ``act(obs, info) -> str``; an ``async def act`` is awaited).
        task_ids: Tasks to play; results come back in this order.
        max_concurrency: At most this many episodes at once (default: ``len(envs)``).
        seed: Optional reset seed (episode ``k`` is reset with ``seed + k``).

    Returns:
        One dict per task id, as :func:`play_episode` returns it.

    Raises:
        ConfigError: when ``envs`` and ``policies`` differ in length or are empty,
            or ``max_concurrency < 1``.
    """
    if not envs or len(envs) != len(policies):
        raise ConfigError(f"run_batch needs one policy per environment and at least one of "
                          f"each; got {len(envs)} environments and {len(policies)} policies.")
    if max_concurrency is not None and max_concurrency < 1:
        raise ConfigError(f"max_concurrency must be at least 1, got {max_concurrency}.")
    slots = min(len(envs), max_concurrency or len(envs))
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(len(task_ids)):
        queue.put_nowait(index)
    results: list[dict[str, Any] | None] = [None] * len(task_ids)

    async def worker(slot: int) -> None:
        while not queue.empty():
            index = queue.get_nowait()
            episode_seed = None if seed is None else seed + index
            results[index] = await play_episode(envs[slot], policies[slot], task_ids[index],
                                                episode_seed)
            logger.debug("episode %d (%s) done: reward %.4f", index, task_ids[index],
                         results[index]["reward"])

    await asyncio.gather(*(worker(slot) for slot in range(slots)))
    return [r for r in results if r is not None]


class AsyncBatch:
    """A reusable set of environments and policies for :func:`run_batch`.

    Args:
        envs: Single environments, one per concurrent episode.
        policies: One policy per environment.
        max_concurrency: At most this many episodes at once.

    Example:
        >>> batch = AsyncBatch(envs, policies)
        >>> results = batch.run(["world-test-0001", "world-test-0002"])
    """

    def __init__(self, envs: Sequence[gym.Env], policies: Sequence[Any],
                 max_concurrency: int | None = None):
        self.envs = list(envs)
        self.policies = list(policies)
        self.max_concurrency = max_concurrency

    async def arun(self, task_ids: Sequence[str], seed: int | None = None) -> list[dict[str, Any]]:
        """Play the tasks (inside a running event loop)."""
        return await run_batch(self.envs, self.policies, task_ids, self.max_concurrency, seed)

    def run(self, task_ids: Sequence[str], seed: int | None = None) -> list[dict[str, Any]]:
        """Play the tasks from synchronous code (starts its own event loop)."""
        return asyncio.run(self.arun(task_ids, seed))

    def close(self) -> None:
        """Close every environment."""
        for env in self.envs:
            env.close()


__all__ = ["AsyncBatch", "env_info", "group_reset", "make_vector_env", "play_episode", "run_batch"]
