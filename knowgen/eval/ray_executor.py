"""The ``ray`` executor: long-lived Ray actors play episodes; the driver writes results.

Each actor holds one worker (one environment and one policy) built by the
factory the caller passes, and takes one item at a time from the driver. The
results stream back to the driver, which yields them to the caller: the
caller alone writes the run folder, so resume, ordering and files are those
of a local run. Ray is imported only here, when the executor is chosen.

* A task whose actor dies (a killed process, a lost node) runs again on a new
  actor; each death is logged once, by the driver. After ``max_retries``
  deaths the task is handed back as :class:`~knowgen.eval.executors.TaskLost`
  (not written; a rerun of the same command plays it).
* Actors get ``num_cpus`` and ``num_gpus`` each; ``num_gpus`` defaults to 1
  when the factory's backends run a local model and the cluster has GPUs.
* API judges (OpenAI-compatible endpoints) keep their ``concurrency`` as a
  cluster-wide bound: every request takes a slot from one
  :class:`ApiLimiter` actor, so a provider's rate limit is not multiplied by
  the number of actors.
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from typing import Any

from knowgen.errors import KnowgenError, MissingDependencyError, RunError
from knowgen.eval.executors import RayOptions, TaskLost, WorkerFactory

logger = logging.getLogger(__name__)

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
"""Terminal colour codes, which Ray puts into its error messages."""


def import_ray() -> Any:
    """The ``ray`` module.

    Raises:
        MissingDependencyError: naming the ``ray`` extra when Ray is not installed.
    """
    try:
        import ray
    except ImportError:
        raise MissingDependencyError("ray", "ray", "--executor ray") from None
    return ray


class ApiLimiter:
    """Cluster-wide request slots per API endpoint (a Ray async actor).

    ``acquire(key, limit, holder)`` waits while ``limit`` requests to ``key`` are in
    flight anywhere in the cluster. Slots are counted per holder (an actor), so
    the driver can hand back the slots of an actor that died holding some.
    """

    def __init__(self) -> None:
        self._held: dict[str, Counter[int]] = {}
        self._granted: Counter[str] = Counter()
        self._peak: Counter[str] = Counter()
        self._changed: Any = None  # an asyncio.Condition, made in the actor's event loop

    def _condition(self) -> Any:
        import asyncio

        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    async def acquire(self, key: str, limit: int, holder: int) -> None:
        """Wait for a free slot of ``key``, then take it for ``holder``."""
        changed = self._condition()
        async with changed:
            await changed.wait_for(lambda: self._in_use(key) < limit)
            self._held.setdefault(key, Counter())[holder] += 1
            self._granted[key] += 1
            self._peak[key] = max(self._peak[key], self._in_use(key))

    async def release(self, key: str, holder: int) -> None:
        """Give back one slot of ``key`` that ``holder`` took."""
        changed = self._condition()
        async with changed:
            held = self._held.get(key, Counter())
            if held[holder] > 0:
                held[holder] -= 1
            changed.notify_all()

    async def release_holder(self, holder: int) -> int:
        """Give back every slot ``holder`` still takes (it died); returns how many."""
        changed = self._condition()
        async with changed:
            freed = sum(held.pop(holder, 0) for held in self._held.values())
            changed.notify_all()
        return freed

    async def stats(self) -> dict[str, dict[str, int]]:
        """Per endpoint: slots granted so far and the most in flight at once."""
        return {key: {"granted": self._granted[key], "peak": self._peak[key]}
                for key in self._granted}

    def _in_use(self, key: str) -> int:
        return sum(self._held.get(key, Counter()).values())


class ClusterSlot:
    """A context manager holding one of ``limit`` cluster-wide slots of ``key``."""

    def __init__(self, limiter: Any, key: str, limit: int, holder: int):
        self.limiter, self.key, self.limit, self.holder = limiter, key, int(limit), holder

    def __enter__(self) -> None:
        import ray

        ray.get(self.limiter.acquire.remote(self.key, self.limit, self.holder))

    def __exit__(self, *exc: object) -> None:
        import ray

        ray.get(self.limiter.release.remote(self.key, self.holder))


class ApiBound:
    """Puts the chat clients of API judges under cluster-wide slots (called inside an actor).

    Args:
        limiter: The :class:`ApiLimiter` actor handle.
        holder: The calling actor's worker id.
        limit: Slots per endpoint; ``None`` keeps each judge's own ``concurrency``.
    """

    def __init__(self, limiter: Any, holder: int, limit: int | None = None):
        self.limiter, self.holder, self.limit = limiter, holder, limit
        self.bound: list[str] = []

    def __call__(self, *backends: Any) -> None:
        """Bound every backend that talks to an OpenAI-compatible endpoint (others are left)."""
        from knowgen.net.openai_client import ChatClient

        for backend in backends:
            client = getattr(backend, "client", None)
            if isinstance(client, ChatClient):
                limit = self.limit or client.concurrency
                client.set_concurrency_bound(ClusterSlot(self.limiter, client.url, limit,
                                                         self.holder))
                self.bound.append(client.url)


class EpisodeActor:
    """One worker in a Ray actor process (made remote by :class:`RayExecutor`)."""

    def setup(self, factory: WorkerFactory, worker_id: int, limiter: Any,
              judge_concurrency: int | None) -> dict[str, Any]:
        """Build the worker; returns where it runs (``pid``, ``node``)."""
        import ray

        self.worker = factory.build(worker_id, ApiBound(limiter, worker_id, judge_concurrency))
        return {"pid": os.getpid(), "node": ray.util.get_node_ip_address()}

    def run(self, item: Any) -> Any:
        """Run one item on the worker."""
        return self.worker.run(item)


class RayExecutor:
    """Runs items on Ray actors; see the module docstring.

    Args:
        options: The executor's options (``--executor ray:key=value,...``).

    Raises:
        MissingDependencyError: when Ray is not installed.
    """

    in_process = False

    def __init__(self, options: RayOptions | None = None):
        self.options = options or RayOptions()
        self.ray = import_ray()
        self.limiter_stats: dict[str, dict[str, int]] = {}

    def map(self, factory: WorkerFactory, items: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        """Yield ``(index, result)`` as items finish on the actors.

        Joins (or starts) the cluster unless this process is already connected, and
        disconnects at the end when it connected. An exception raised by a worker is
        raised here (a :class:`KnowgenError` as itself).

        Raises:
            RunError: when the cluster cannot be reached, has no GPU for ``num_gpus``,
                or actors keep dying before they take a task.
        """
        if not items:
            return
        connected = self._connect()
        try:
            pool = _Pool(self, factory, items)
            try:
                yield from pool.run()
            finally:
                pool.close()
        finally:
            if connected:
                self.ray.shutdown()

    def _connect(self) -> bool:
        """Join the cluster; True when this call connected (and must disconnect)."""
        if self.ray.is_initialized():
            return False
        address = self.options.address
        try:
            self.ray.init(address=address, include_dashboard=False, log_to_driver=True)
        except ConnectionError as exc:
            if "Authentication" in f"{exc!r} {exc.__cause__!r}":
                raise RunError(f"The Ray cluster at {address} refused this machine's token. It "
                               "uses token authentication: set RAY_AUTH_MODE=token here and "
                               "put the head node's ~/.ray/auth_token in ~/.ray/auth_token (or "
                               "RAY_AUTH_TOKEN).") from None
            raise RunError(f"Cannot reach the Ray cluster at {address or 'the default address'} "
                           f"({exc}). Start one with 'ray start --head', or give "
                           "address=HOST:PORT of its head node.") from None
        return True


class _Pool:
    """The actors of one :meth:`RayExecutor.map` call and the driver's loop over them."""

    def __init__(self, executor: RayExecutor, factory: WorkerFactory, items: Sequence[Any]):
        self.ray, self.opts, self.executor = executor.ray, executor.options, executor
        self.factory, self.items = factory, items
        self.remote_actor = self.ray.remote(EpisodeActor)
        self.limiter = self.ray.remote(ApiLimiter).options(num_cpus=0).remote()
        self.actors: dict[int, Any] = {}
        self.where: dict[int, dict[str, Any]] = {}
        self.in_flight: dict[Any, tuple[str, int, int | None]] = {}
        self.pending: deque[int] = deque(range(len(items)))
        self.attempts: Counter[int] = Counter()
        self.next_id = 0
        self.setup_deaths = 0

    def run(self) -> Iterator[tuple[int, Any]]:
        num_gpus = self._num_gpus()
        n = self._actor_count(num_gpus)
        self.resources = {"num_cpus": self.opts.num_cpus, "num_gpus": num_gpus}
        logger.info("Ray: %d actor(s), %g CPU and %g GPU each, for %d task(s)", n,
                    self.opts.num_cpus, num_gpus, len(self.items))
        for _ in range(n):
            self._start_actor()
        unfinished = len(self.items)
        while unfinished:  # actors still starting when the last item is in are not awaited
            if not self.in_flight:  # every actor gone with items left: start one more
                self._start_actor()
            ready, _ = self.ray.wait(list(self.in_flight), num_returns=1)
            kind, wid, index = self.in_flight.pop(ready[0])
            try:
                value = self.ray.get(ready[0])
            except (self.ray.exceptions.RayActorError, self.ray.exceptions.WorkerCrashedError,
                    self.ray.exceptions.ObjectLostError) as exc:
                lost = self._actor_died(wid, index, exc)
                if lost is not None:
                    unfinished -= 1
                    yield lost
                continue
            except self.ray.exceptions.RayTaskError as exc:
                cause = getattr(exc, "cause", None)
                raise cause if isinstance(cause, KnowgenError) else exc from None
            if kind == "setup":
                self.where[wid] = value
            else:
                unfinished -= 1
                yield index, value
            self._submit(wid)

    def _start_actor(self) -> None:
        wid, self.next_id = self.next_id, self.next_id + 1
        actor = self.remote_actor.options(max_restarts=0, max_task_retries=0,
                                          **self.resources).remote()
        self.actors[wid] = actor
        ref = actor.setup.remote(self.factory, wid, self.limiter, self.opts.judge_concurrency)
        self.in_flight[ref] = ("setup", wid, None)

    def _submit(self, wid: int) -> None:
        if not self.pending:
            return
        index = self.pending.popleft()
        self.attempts[index] += 1
        ref = self.actors[wid].run.remote(self.items[index])
        self.in_flight[ref] = ("run", wid, index)

    def _actor_died(self, wid: int, index: int | None, exc: Exception
                    ) -> tuple[int, TaskLost] | None:
        """Log the death once, free its judge slots, start a replacement; a lost item or None."""
        self.actors.pop(wid, None)
        self.limiter.release_holder.remote(wid)
        where = self.where.get(wid, {})
        lines = [line.strip() for line in _ANSI.sub("", str(exc)).splitlines() if line.strip()]
        reason = f"{type(exc).__name__}: {lines[0][:200]}" if lines else type(exc).__name__
        if getattr(exc, "actor_init_failed", False):  # its class could not even be loaded
            raise RunError(f"A Ray actor could not start ({lines[-1][:300] if lines else reason}). "
                           "Every node needs the same knowgen installed as the driver "
                           "(pip install 'knowgen[ray]').")
        lost = None
        if index is None:
            self.setup_deaths += 1
            logger.warning("Ray actor %d died while starting (%s).", wid, reason)
            if self.setup_deaths > 2 * len(self.where) + 2:
                raise RunError(f"Ray actors keep dying before they take a task (last: {reason}). "
                               "Read the actor logs under /tmp/ray/session_latest/logs on "
                               "the worker nodes.")
        elif self.attempts[index] > self.opts.max_retries:
            logger.error("Ray actor %d (pid %s on %s) died while running %s (%s); it died on "
                         "all %d attempts and is left for a rerun of the same command.", wid,
                         where.get("pid"), where.get("node"), self.items[index], reason,
                         self.attempts[index])
            lost = (index, TaskLost(reason))
        else:
            item = self.items[index]
            logger.warning("Ray actor %d (pid %s on %s) died while running %s (%s); %s runs "
                           "again on another actor (attempt %d of %d).", wid, where.get("pid"),
                           where.get("node"), item, reason, item, self.attempts[index] + 1,
                           self.opts.max_retries + 1)
            self.pending.appendleft(index)
        if self.pending:
            self._start_actor()
        return lost

    def _num_gpus(self) -> float:
        """GPUs per actor: the option, else 1 for local-model backends when a node has one.

        Raises:
            RunError: when no node of the cluster could hold one actor.
        """
        nodes = [n.get("Resources", {}) for n in self.ray.nodes() if n.get("Alive")]
        most_gpus = max((float(r.get("GPU", 0)) for r in nodes), default=0.0)
        num_gpus = self.opts.num_gpus
        if num_gpus is None:
            reasons = self.factory.wants_gpu()
            num_gpus = 1.0 if reasons and most_gpus >= 1 else 0.0
            if reasons and not num_gpus:
                logger.warning("The %s runs a local model but no node of the Ray cluster has a "
                               "GPU; the actors run it on their CPUs.", " and the ".join(reasons))
        if not any(float(r.get("CPU", 0)) >= self.opts.num_cpus
                   and float(r.get("GPU", 0)) >= num_gpus for r in nodes):
            most_cpus = max((float(r.get("CPU", 0)) for r in nodes), default=0.0)
            raise RunError(f"--executor ray asks for num_cpus={self.opts.num_cpus:g} and "
                           f"num_gpus={num_gpus:g} per actor, but the Ray cluster has "
                           f"{most_gpus:g} GPU(s) and {most_cpus:g} CPU(s) at most on one node. "
                           "Lower num_cpus / num_gpus, or add a node that has them "
                           "('ray start --address=HEAD:PORT --num-gpus=N').")
        return float(num_gpus)

    def _actor_count(self, num_gpus: float) -> int:
        """The ``actors`` option, else as many as the cluster's nodes hold (at least 1).

        Counted on the nodes' total resources: actors that do not fit now wait for
        room, and the run ends without them if the others finish first.
        """
        if self.opts.actors is not None:
            return min(self.opts.actors, len(self.items))
        held = 0
        for node in self.ray.nodes():
            if not node.get("Alive"):
                continue
            res = node.get("Resources", {})
            fits = [len(self.items)]
            if self.opts.num_cpus > 0:
                fits.append(int(float(res.get("CPU", 0)) // self.opts.num_cpus))
            if num_gpus > 0:
                fits.append(int(float(res.get("GPU", 0)) // num_gpus))
            held += min(fits)
        return max(1, min(held, len(self.items)))

    def close(self) -> None:
        """End the actors and the limiter (their slots' statistics are kept on the executor)."""
        try:
            self.executor.limiter_stats = self.ray.get(self.limiter.stats.remote(), timeout=10)
        except Exception:  # statistics only; the run's results are written
            logger.debug("Could not read the judge limiter's statistics", exc_info=True)
        for url, counts in self.executor.limiter_stats.items():
            logger.info("API judge %s: %d request(s), at most %d at once across the cluster",
                        url, counts["granted"], counts["peak"])
        for actor in [*self.actors.values(), self.limiter]:
            self.ray.kill(actor)
        self.actors.clear()
