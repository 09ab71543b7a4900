"""Expert episodes on an executor: in this process, or in parallel on Ray actors.

:func:`play_tasks` plays the tasks expert-data generation asks for and yields
their episodes in task order, whichever executor ran them, so that
``knowgen train data --executor ray`` writes the same records, in the same
order, as a local run. Each worker (a Ray actor) holds one environment and one
expert; privileged experts (oracle, guided) are bound to it by
:func:`~knowgen.agents.expert_data.play_episode`.

Example:
    >>> for episode in play_tasks(ExpertDataConfig(limit=20), "ray:actors=2"):
    ...     print(episode["task_id"], episode["reward"])
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from knowgen.config import EnvConfig
from knowgen.eval.executors import TaskLost, gpu_reasons, make_executor, parse_executor

logger = logging.getLogger(__name__)


def make_expert_env(config: Any) -> Any:
    """The environment an expert plays in (the config's benchmark, split, top_k and overrides)."""
    from knowgen.envs.searchgen import SearchGenEnv

    return SearchGenEnv(EnvConfig(benchmark=config.benchmark, split=config.split,
                                  top_k=config.top_k), **config.env_overrides)


class ExpertWorker:
    """One environment and one expert; ``run(task_id)`` plays one task.

    Args:
        config: An :class:`~knowgen.agents.expert_data.ExpertDataConfig`.
        bound: Puts API judges under a cluster-wide bound (given inside Ray actors).
    """

    def __init__(self, config: Any, bound: Callable[..., None] | None = None):
        from knowgen.agents.expert_data import _make_expert

        self.policy = _make_expert(config)
        self.env = make_expert_env(config)
        if bound is not None:
            bound(self.env.image_judge, self.env.text_judge)

    def run(self, task_id: str) -> dict[str, Any]:
        """The episode of ``task_id``: ``{"task_id", "request", "turns", "reward"}``."""
        from knowgen.agents.expert_data import play_episode

        episode = play_episode(self.env, self.policy, task_id)
        episode.pop("info", None)  # the end-of-episode info stays in the worker
        return episode


@dataclass
class ExpertEpisodes:
    """The worker factory of expert-data generation (see :mod:`knowgen.eval.executors`).

    Attributes:
        config: An :class:`~knowgen.agents.expert_data.ExpertDataConfig`; under Ray its
            ``env_overrides`` travel to the actors, so they must be specs, not objects.
        cwd: The driver's working folder; an actor that has it works there.
    """

    config: Any
    cwd: str = field(default_factory=os.getcwd)

    def wants_gpu(self) -> list[str]:
        """The generator of ``env_overrides`` when it runs a local model (experts never do)."""
        return gpu_reasons(generator=self.config.env_overrides.get("generator"))

    def build(self, worker_id: int, bound: Callable[..., None] | None = None) -> ExpertWorker:
        """A new worker (the expert's seed does not depend on ``worker_id``)."""
        if os.path.isdir(self.cwd):
            os.chdir(self.cwd)
        return ExpertWorker(self.config, bound)


def split_task_ids(config: Any) -> list[str]:
    """Ids of the tasks expert-data generation plays: the first ``limit`` of the split."""
    from knowgen.registry import BENCHMARKS

    bench = config.env_overrides.get("benchmark") or config.benchmark
    if isinstance(bench, str):
        bench = BENCHMARKS.create(bench)
    tasks = list(bench.tasks(config.env_overrides.get("split") or config.split))
    return [t.id for t in (tasks[: config.limit] if config.limit else tasks)]


def play_tasks(config: Any, executor: str = "local") -> Iterator[dict[str, Any]]:
    """Play the tasks of ``config`` and yield their episodes in task order.

    Args:
        config: An :class:`~knowgen.agents.expert_data.ExpertDataConfig`.
        executor: ``local`` (this process, one task after another) or
            ``ray[:key=value,...]`` (Ray actors, see :class:`knowgen.eval.executors.RayOptions`).

    Raises:
        ConfigError: for an unknown expert, an environment setting or an executor option.
        MissingDependencyError: for ``ray`` when Ray is not installed.
    """
    from knowgen.agents.expert_data import _progress

    if parse_executor(executor)[0] == "local":
        worker = ExpertEpisodes(config).build(0)
        tasks = worker.env.tasks[: config.limit] if config.limit else worker.env.tasks
        for task in _progress(tasks, f"expert {config.expert}"):
            yield worker.run(task.id)
        return
    yield from _play_remote(config, executor)


def _play_remote(config: Any, executor: str) -> Iterator[dict[str, Any]]:
    """Play on an executor's workers; keep each episode until the ones before it are in."""
    from knowgen.agents.expert_data import _make_expert

    _make_expert(config)  # an unknown expert fails here, not in an actor
    ids = split_task_ids(config)
    waiting: dict[int, Any] = {}
    next_index = 0
    with contextlib.closing(make_executor(executor).map(ExpertEpisodes(config), ids)) as stream:
        for index, episode in _progress_stream(stream, len(ids), f"expert {config.expert}"):
            waiting[index] = episode
            while next_index in waiting:
                episode = waiting.pop(next_index)
                if isinstance(episode, TaskLost):
                    logger.warning("The expert episode of %s was lost (%s); it is left out.",
                                   ids[next_index], episode.reason)
                else:
                    yield episode
                next_index += 1


def _progress_stream(stream: Iterator[Any], total: int, desc: str) -> Iterator[Any]:
    from tqdm.auto import tqdm

    from knowgen.agents.train.progress import bars_enabled

    with tqdm(total=total, desc=desc, unit="task", leave=False,
              disable=not bars_enabled()) as bar:
        for item in stream:
            bar.update(1)
            yield item
