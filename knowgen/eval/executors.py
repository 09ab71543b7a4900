"""Where episodes run: the executors of ``knowgen eval`` and of expert-data generation.

An executor takes a *worker factory* and a list of items (tasks), runs every
item on a worker the factory built, and hands ``(index, result)`` pairs back
to the caller, in the caller's thread, as items finish. The caller alone
writes results, so a run folder keeps one writer whichever executor ran the
episodes (see :mod:`knowgen.eval.runner`).

* ``local``: threads of this process, one worker per thread (``--workers N``).
* ``ray[:key=value,...]``: long-lived Ray actors, one worker each, on any Ray
  cluster (see :mod:`knowgen.eval.ray_executor` and :class:`RayOptions`).

A worker factory is any object with ``build(worker_id, bound) -> worker`` and
``wants_gpu() -> list[str]``; the worker has ``run(item) -> result``. Under
Ray, factory, items and results travel between processes, so they must pickle.

Example:
    >>> executor = make_executor("ray:actors=2")
    >>> for index, result in executor.map(factory, task_ids):
    ...     write(result)
"""

from __future__ import annotations

import importlib.util
import logging
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields
from typing import Any, Protocol

from knowgen.config import from_dict
from knowgen.errors import ConfigError, MissingDependencyError, UnknownNameError
from knowgen.registry import parse_spec

logger = logging.getLogger(__name__)

EXECUTORS = ("local", "ray")
"""Names an executor spec may start with."""

#: Backends that run a model on this machine, with the ``device`` they use when the
#: spec names none: an actor holding one of them gets GPUs (see :func:`gpu_reasons`).
LOCAL_MODEL_BACKENDS = {
    ("policy", "transformers"): "auto",
    ("policy", "gen-searcher"): "cpu",
    ("generator", "diffusers"): "auto",
}


class Worker(Protocol):
    """Runs one item at a time."""

    def run(self, item: Any) -> Any:
        """Run ``item`` and return its result."""


class WorkerFactory(Protocol):
    """Builds the workers of an executor (once per thread or actor)."""

    def build(self, worker_id: int, bound: Callable[..., None] | None = None) -> Worker:
        """A new worker; ``bound(*backends)`` puts API judges under a cluster-wide bound."""

    def wants_gpu(self) -> list[str]:
        """The backends that would run a local model on a GPU ([] when none)."""


@dataclass(frozen=True)
class TaskLost:
    """The result of an item whose worker died on every attempt (it is not written)."""

    reason: str


@dataclass
class RayOptions:
    """Options of the ``ray`` executor: ``--executor ray:key=value,...``."""

    address: str | None = None
    """Cluster to join: ``auto`` (the one ``ray start`` runs on this machine), ``HOST:PORT``
    of a head node, or ``local`` (a new one-machine cluster for this run); unset: Ray's
    default (``RAY_ADDRESS``, else a running cluster, else a new local one)."""

    actors: int | None = None
    """Actors, each holding one environment and one policy; unset: as many as the
    cluster's free CPUs (and GPUs) hold, and never more than there are tasks."""

    num_cpus: float = 1
    """CPUs Ray reserves per actor."""

    num_gpus: float | None = None
    """GPUs per actor (fractions share one GPU); unset: 1 when the policy or the
    generator runs a local model (``transformers``, ``diffusers``) and the cluster
    has GPUs, else 0."""

    judge_concurrency: int | None = None
    """Requests in flight at once to each API judge endpoint, across the whole cluster;
    unset: the judge's own ``concurrency``."""

    max_retries: int = 2
    """Times a task whose actor died runs again on another actor before it is left
    for a rerun of the same command."""


def parse_executor(spec: str | None) -> tuple[str, RayOptions | None]:
    """Read an executor spec: ``local``, ``ray`` or ``ray:key=value,...``.

    Returns:
        The executor's name and, for ``ray``, its options.

    Raises:
        UnknownNameError: for a name other than ``local`` or ``ray``.
        ConfigError: for an option the executor does not take ("Did you mean ...?")
            or a value out of range.
    """
    name, kwargs = parse_spec(spec or "local")
    if name not in EXECUTORS:
        raise UnknownNameError("executor", name, EXECUTORS)
    if name == "local":
        if kwargs:
            raise ConfigError(f"The local executor takes no options (got {', '.join(kwargs)} "
                              "in --executor); set its threads with --workers N.")
        return name, None
    try:
        options = from_dict(RayOptions, kwargs)
    except ConfigError as exc:
        raise ConfigError(f"In --executor {spec!r}: {exc}") from None
    _check_ray_options(options)
    return name, options


def _check_ray_options(options: RayOptions) -> None:
    problems = []
    if options.actors is not None and options.actors < 1:
        problems.append(f"actors must be at least 1, got {options.actors}")
    if not options.num_cpus >= 0:
        problems.append(f"num_cpus must be 0 or more, got {options.num_cpus}")
    if options.num_gpus is not None and not options.num_gpus >= 0:
        problems.append(f"num_gpus must be 0 or more, got {options.num_gpus}")
    if options.judge_concurrency is not None and options.judge_concurrency < 1:
        problems.append(f"judge_concurrency must be at least 1, got {options.judge_concurrency}")
    if options.max_retries < 0:
        problems.append(f"max_retries must be 0 or more, got {options.max_retries}")
    if problems:
        known = ", ".join(f.name for f in fields(RayOptions))
        raise ConfigError(f"In --executor ray: {'; '.join(problems)}. Options: {known}.")


def check_executor(spec: str | None) -> str:
    """Refuse an executor spec no run can use, before anything starts; returns its name.

    Raises:
        UnknownNameError, ConfigError: as :func:`parse_executor`.
        MissingDependencyError: for ``ray`` when the ``ray`` package is not installed.
    """
    name, _ = parse_executor(spec)
    if name == "ray" and importlib.util.find_spec("ray") is None:
        raise MissingDependencyError("ray", "ray", "--executor ray")
    return name


def make_executor(spec: str | None, workers: int = 1) -> Any:
    """The executor named by ``spec``; ``workers`` is the local executor's thread count.

    Raises:
        UnknownNameError, ConfigError, MissingDependencyError: as :func:`check_executor`.
    """
    name = check_executor(spec)
    if name == "local":
        return LocalExecutor(workers)
    from knowgen.eval.ray_executor import RayExecutor

    if workers > 1:
        logger.warning("--workers %d sets the threads of the local executor; the ray executor "
                       "runs one task per actor (set actors=N in --executor).", workers)
    return RayExecutor(parse_executor(spec)[1] or RayOptions())


def gpu_reasons(policy: str | None = None, generator: str | None = None) -> list[str]:
    """The backends among ``policy`` and ``generator`` (specs) that run a local model on a GPU.

    A backend of :data:`LOCAL_MODEL_BACKENDS` counts unless its spec says ``device=cpu``.
    """
    reasons = []
    for kind, spec in (("policy", policy), ("generator", generator)):
        if not isinstance(spec, str):
            continue
        name, kwargs = parse_spec(spec)
        default = LOCAL_MODEL_BACKENDS.get((kind, name))
        if default is not None and str(kwargs.get("device", default)) != "cpu":
            reasons.append(f"{kind} {name}")
    return reasons


class LocalExecutor:
    """Threads of this process; each thread builds its own worker on first use.

    Args:
        workers: Threads (at most one per item); 1 runs everything in the caller's thread.
    """

    in_process = True

    def __init__(self, workers: int = 1):
        self.workers = max(1, int(workers))

    def map(self, factory: WorkerFactory, items: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        """Yield ``(index, worker.run(items[index]))`` as items finish.

        A worker's exception is raised in the caller; the other threads then take no
        new item (the items they are running finish and are dropped).
        """
        n = max(1, min(self.workers, len(items)))
        if n == 1:
            worker = factory.build(0)
            for index, item in enumerate(items):
                yield index, worker.run(item)
            return
        yield from _threaded(factory, items, n)


_DONE = object()


def _threaded(factory: WorkerFactory, items: Sequence[Any], n: int
              ) -> Iterator[tuple[int, Any]]:
    results: queue.Queue[Any] = queue.Queue()
    order = iter(range(len(items)))
    lock, stop = threading.Lock(), threading.Event()

    def loop(worker_id: int) -> None:
        try:
            worker = factory.build(worker_id)
            while not stop.is_set():
                with lock:
                    index = next(order, None)
                if index is None:
                    break
                results.put((index, worker.run(items[index]), None))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            results.put((None, None, exc))
        finally:
            results.put(_DONE)

    threads = [threading.Thread(target=loop, args=(w,), daemon=True, name=f"knowgen-worker-{w}")
               for w in range(n)]
    for thread in threads:
        thread.start()
    try:
        finished = 0
        while finished < n:
            message = results.get()
            if message is _DONE:
                finished += 1
                continue
            index, result, error = message
            if error is not None:
                raise error
            yield index, result
    finally:
        stop.set()
