"""The episodes of ``knowgen eval``: one worker plays tasks through SearchGenEnv.

:class:`EpisodeWorker` holds one environment and one policy and turns a task
into the record of one sample line. Two factories build it for the executors
of :mod:`knowgen.eval.executors`:

* :class:`LocalEpisodes` (threads of the driver): workers share the driver's
  benchmark and write images straight into the run folder;
* :class:`RemoteEpisodes` (Ray actors, possibly on other machines): each worker
  builds its own benchmark, draws into a folder of its own and sends the image
  back with the record, so that only the driver writes the run folder.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from knowgen.config import EvalConfig
from knowgen.errors import KnowgenError
from knowgen.eval.executors import gpu_reasons
from knowgen.eval.wise_run import NotJudged, is_wise, make_wise_judge, wise_record
from knowgen.registry import BENCHMARKS, POLICIES
from knowgen.types import Task

logger = logging.getLogger(__name__)

#: Workers are threads and build their policy one at a time: a backend imports its heavy
#: library lazily on first use, and two threads racing through a lazy import can see a
#: half-initialised module (``module 'transformers' has no attribute ...``).
_SETUP_LOCK = threading.Lock()


@dataclass
class EpisodeResult:
    """What one task produced: its sample record (``None``: not judged, not written) and,
    from a remote worker, the images the record names (file name -> PNG bytes)."""

    record: dict[str, Any] | None
    images: dict[str, bytes] = field(default_factory=dict)


class EpisodeWorker:
    """One environment and one policy; evaluates tasks one after another.

    With ``wise_judge`` set, the environment's judges are :class:`NotJudged`
    placeholders and each image is scored by ``wise_judge`` after its episode.
    Privileged policies (oracle, guided) are bound to the environment here.
    """

    def __init__(self, cfg: EvalConfig, benchmark: Any, image_dir: Path, worker_id: int,
                 wise_judge: Any = None):
        from knowgen.envs.privileged import bind_policy
        from knowgen.envs.searchgen import SearchGenEnv

        judges = {"image_judge": NotJudged(), "text_judge": NotJudged()} if wise_judge else {}
        with _SETUP_LOCK:
            self.env = SearchGenEnv(config=cfg.env, benchmark=benchmark,
                                    image_dir=str(image_dir), **judges)
            self.policy = POLICIES.create(cfg.policy, seed=cfg.seed + worker_id)
            bind_policy(self.policy, self.env)
        self.seed = cfg.seed
        self.wise_judge = wise_judge

    def run(self, task: Task) -> dict[str, Any] | None:
        """Play ``task``; its sample record, or ``None`` when the WISE judge failed."""
        obs, info = self.env.reset(seed=self.seed, options={"task_id": task.id})
        self.policy.reset(obs, info)
        steps: list[dict[str, Any]] = []
        reward, done = 0.0, False
        while not done:
            action = self.policy.act(obs, info)
            obs, reward, terminated, truncated, info = self.env.step(action)
            # the environment's clean copy: a raw action may hold text no file can take
            steps.append({"action": self.env.turns[-1][0], "observation": obs,
                          "last_action": info.get("last_action")})
            done = terminated or truncated
        if self.wise_judge is not None:
            return self._wise_record(task, steps, info)
        return self._record(task, steps, float(reward), info)

    def _wise_record(self, task: Task, steps: list[dict[str, Any]],
                     info: dict[str, Any]) -> dict[str, Any] | None:
        """Judge the episode's image (or a fallback drawing); ``None`` when the judge fails."""
        env = self.env.unwrapped
        fallback = info.get("answer") is None or env.last_image is None
        if fallback:
            image = env.generator.generate(task.prompt, [], seed=env.config.generation_seed)
        else:
            image = env.last_image
        path = Path(env.image_dir) / f"{task.id}.png"
        if fallback or not path.is_file():
            image.save(path)
        try:
            verdict = self.wise_judge.score(task, image)
        except KnowgenError as exc:
            logger.error("WISE judge failed on prompt %s (%s: %s); the sample is left for a "
                         "rerun of the same command.", task.id, type(exc).__name__, exc)
            return None
        record = wise_record(task, str(path), verdict.to_dict(), self.wise_judge.variant)
        record.update(answer=info.get("answer"), references=info.get("references"),
                      fallback_generation=fallback, turns=len(steps), trajectory=steps)
        return record

    def _record(self, task: Task, steps: list[dict[str, Any]], reward: float,
                info: dict[str, Any]) -> dict[str, Any]:
        image_path = info.get("generated_image")
        judgement = info.get("image_judgement")
        fallback = False
        if judgement is None:
            image_path, judgement = self._fallback(task)
            fallback = True
        return {
            "id": task.id,
            "prompt": task.prompt,
            "meta": {"category": task.category, "difficulty": task.difficulty},
            "success": image_path is not None,
            "output_path": f"images/{Path(image_path).name}" if image_path else None,
            "gt_image": f"gt/{task.id}.png" if task.gt_image else None,
            "reward": reward,
            "reward_terms": info.get("reward_terms"),
            "image_judgement": judgement,
            "text_judgement": info.get("text_judgement"),
            "answer": info.get("answer"),
            "references": info.get("references"),
            "fallback_generation": fallback,
            "turns": len(steps),
            "trajectory": steps,
        }

    def _fallback(self, task: Task) -> tuple[str, dict[str, Any]]:
        """No answer within budget: draw from the original request with no references."""
        env = self.env.unwrapped
        image = env.generator.generate(task.prompt, [], seed=env.config.generation_seed)
        path = Path(env.image_dir) / f"{task.id}.png"
        image.save(path)
        return str(path), env.image_judge.score(task, image).to_dict()


class LocalEpisodes:
    """Workers in the driver's process: they share its benchmark and write into ``image_dir``."""

    def __init__(self, cfg: EvalConfig, benchmark: Any, image_dir: Path, wise_judge: Any = None):
        self.cfg, self.benchmark, self.image_dir = cfg, benchmark, image_dir
        self.wise_judge = wise_judge

    def wants_gpu(self) -> list[str]:
        """Local workers take whatever device their backends choose."""
        return []

    def build(self, worker_id: int, bound: Callable[..., None] | None = None) -> Any:
        """A worker whose ``run(task)`` gives an :class:`EpisodeResult` (images already saved)."""
        return _LocalWorker(EpisodeWorker(self.cfg, self.benchmark, self.image_dir, worker_id,
                                          self.wise_judge))


class _LocalWorker:
    def __init__(self, worker: EpisodeWorker):
        self.worker = worker

    def run(self, task: Task) -> EpisodeResult:
        return EpisodeResult(self.worker.run(task))


@dataclass
class RemoteEpisodes:
    """Workers in Ray actors: each builds what a local run builds in the driver.

    Attributes:
        cfg: The run's settings.
        cwd: The driver's working folder; an actor on a machine that has it works there,
            so that relative paths in the settings mean what they mean to the driver.
    """

    cfg: EvalConfig
    cwd: str = field(default_factory=os.getcwd)

    def wants_gpu(self) -> list[str]:
        """The policy and the generator when they run a local model."""
        return gpu_reasons(self.cfg.policy, self.cfg.env.generator)

    def build(self, worker_id: int, bound: Callable[..., None] | None = None) -> Any:
        """A worker whose ``run(task_id)`` gives an :class:`EpisodeResult` carrying its image."""
        if os.path.isdir(self.cwd):
            os.chdir(self.cwd)
        return _RemoteWorker(self.cfg, worker_id, bound)


class _RemoteWorker:
    """An episode worker with a benchmark and an image folder of its own."""

    def __init__(self, cfg: EvalConfig, worker_id: int, bound: Callable[..., None] | None):
        benchmark = BENCHMARKS.create(cfg.env.benchmark)
        wise_judge = make_wise_judge(cfg.env.image_judge, benchmark.variant) if is_wise(
            benchmark) else None
        self.folder = Path(tempfile.mkdtemp(prefix="knowgen-actor-"))
        self.worker = EpisodeWorker(cfg, benchmark, self.folder, worker_id, wise_judge)
        if bound is not None:
            bound(self.worker.env.image_judge, self.worker.env.text_judge, wise_judge)
        self.tasks = {t.id: t for t in benchmark.tasks(cfg.env.split)}

    def run(self, task_id: str) -> EpisodeResult:
        record = self.worker.run(self.tasks[task_id])
        images: dict[str, bytes] = {}
        if record is not None and record.get("output_path"):
            path = self.folder / Path(record["output_path"]).name
            images[path.name] = path.read_bytes()
        for stale in self.folder.iterdir():  # this episode's files only: keep the folder small
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                stale.unlink(missing_ok=True)
        return EpisodeResult(record, images)
