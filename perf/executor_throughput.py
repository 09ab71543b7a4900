"""Tasks per second of ``knowgen eval`` under each executor, and Ray's per-task overhead.

Each configuration is a fresh ``knowgen eval`` process, as a user runs it, on
the same tasks (the world's test split, scripted policy, compositor
generator, offline judges) into a fresh run folder:

1. ``--workers 1``;  2. ``--executor ray:actors=1``;  3. ``--workers 2``;  4. ``--executor ray:actors=2``;

then, with ``--repeats 2`` (the default), the same four in reverse order, so
that a change of load during the run weighs on every configuration alike; each
configuration's figures are the means of its runs.

The Ray runs join one local cluster this script starts once (node address
127.0.0.2, 2 CPUs, no dashboard); each run starts its own actors, which load
the world, as the local process does. Reported per run: tasks/s end to end
(the process's wall time), tasks/s in the steady state (between the first and
the last sample line, polled every 20 ms), the time to the first sample, and
the CPU seconds per task of everything involved (the eval process and its
threads, exactly; the cluster's processes, actors, raylet and GCS, sampled
every 200 ms), which the machine's other load disturbs less than wall time.

Ray's per-task overhead is measured directly: the ray executor's loop on a
worker whose ``run`` returns at once (1 actor, ``--noop`` items, in this
process): the driver -> actor -> driver round trip plus the driver's
bookkeeping, per item, after the actor is up; and as a ratio to a local
episode.

Run: python perf/executor_throughput.py [--limit N] [--repeats 2] [--noop 500]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import ray

from knowgen.eval.executors import RayOptions
from knowgen.eval.ray_executor import RayExecutor

CONFIGS: dict[str, list[str]] = {
    "local_1_thread": ["--workers", "1"],
    "ray_1_actor": ["--executor", "ray:address={gcs},actors=1"],
    "local_2_threads": ["--workers", "2"],
    "ray_2_actors": ["--executor", "ray:address={gcs},actors=2"],
}


def _descendants_cpu() -> dict[int, float]:
    """CPU seconds (user + system) of each live descendant of this process, by pid."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[tuple[int, float]]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(
            (int(entry.name), (int(fields[11]) + int(fields[12])) / tick))
    out, todo = {}, [os.getpid()]
    while todo:
        for pid, cpu in children.get(todo.pop(), []):
            out[pid] = cpu
            todo.append(pid)
    return out


def _own_children_cpu() -> float:
    """CPU seconds of the child processes this one waited for."""
    t = os.times()
    return t.children_user + t.children_system


def _run(config: str, run: Path, limit: int | None, gcs: str) -> dict:
    """One ``knowgen eval`` process of ``config`` into ``run``; its timings and CPU."""
    cmd = [sys.executable, "-m", "knowgen", "eval", "--policy", "scripted", "--run-dir",
           str(run), "--no-progress", *(a.format(gcs=gcs) for a in CONFIGS[config])]
    if limit:
        cmd += ["--limit", str(limit)]
    err = run.with_suffix(".stderr")
    base, own0, t0 = _descendants_cpu(), _own_children_cpu(), time.perf_counter()
    last = dict(base)
    with err.open("w") as fh:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=fh)
        stamps, seen, log = [], 0, run / "samples.jsonl"
        for tick in itertools.count():
            if proc.poll() is not None:
                break
            lines = log.read_bytes().count(b"\n") if log.exists() else 0
            stamps += [time.perf_counter()] * (lines - seen)
            seen = lines
            if tick % 10 == 0:  # the cluster's processes (actors end with the run): 200 ms
                last.update(_descendants_cpu())
            time.sleep(0.02)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"{config} failed: {err.read_text()[-2000:]}")
    last.update(_descendants_cpu())
    cluster = sum(cpu - base.get(pid, 0.0) for pid, cpu in last.items() if pid != proc.pid)
    cpu = _own_children_cpu() - own0 + cluster
    summary = json.loads((run / "summary.json").read_text())
    n = summary["n_samples"]
    stamps += [time.perf_counter()] * (n - seen)
    return {"tasks": n, "wall_s": round(wall, 2), "tasks_per_s": round(n / wall, 3),
            "steady_tasks_per_s": round((n - 1) / (stamps[-1] - stamps[0]), 3),
            "first_sample_s": round(stamps[0] - t0, 2), "cpu_s_per_task": round(cpu / n, 4),
            "k_score": summary["k_score"]}


def _mean(results: list[dict]) -> dict:
    """Each figure's mean over a configuration's runs (tasks and K-Score are equal)."""
    out = {key: round(statistics.fmean(r[key] for r in results), 3) for key in results[0]}
    out["tasks"] = results[0]["tasks"]
    out["tasks_per_s_each_run"] = [r["tasks_per_s"] for r in results]
    return out


class Noop:
    """A worker factory whose workers return their item at once."""

    def wants_gpu(self) -> list[str]:
        return []

    def build(self, worker_id: int, bound: object = None) -> Noop:
        return self

    def run(self, item: int) -> int:
        return item


def _round_trip_ms(items: int) -> float:
    """Milliseconds per item of the ray executor's loop on a no-op worker (1 actor, warm)."""
    stamps = []
    for _ in RayExecutor(RayOptions(actors=1)).map(Noop(), list(range(items))):
        stamps.append(time.perf_counter())
    return 1000 * statistics.median(b - a for a, b in itertools.pairwise(stamps))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="tasks (default: all 160)")
    parser.add_argument("--repeats", type=int, default=2, help="passes (every other reversed)")
    parser.add_argument("--noop", type=int, default=500, help="items of the round-trip probe")
    args = parser.parse_args()
    load_before = os.getloadavg()
    ray.init(address="local", include_dashboard=False, num_cpus=2, _node_ip_address="127.0.0.2",
             log_to_driver=False)
    gcs = ray.get_runtime_context().gcs_address
    passes: dict[str, list[dict]] = {name: [] for name in CONFIGS}
    with tempfile.TemporaryDirectory(prefix="knowgen-perf-") as tmp:
        for repeat in range(args.repeats):
            order = list(CONFIGS) if repeat % 2 == 0 else list(CONFIGS)[::-1]
            for name in order:
                run = Path(tmp) / f"{name}-{repeat}"
                passes[name].append(_run(name, run, args.limit, gcs))
    runs = {name: _mean(results) for name, results in passes.items()}
    round_trip = _round_trip_ms(args.noop)
    ray.shutdown()

    def ratio(a: str, b: str, key: str) -> float:
        return round(runs[a][key] / runs[b][key], 3)

    local_episode_ms = 1000 / runs["local_1_thread"]["steady_tasks_per_s"]
    print(json.dumps({
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
                   f"{platform.python_version()}, ray {ray.__version__}",
        "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "repeats": args.repeats,
        "runs": runs,
        "ray_round_trip_ms_per_task": round(round_trip, 3),
        "ratio_round_trip_to_local_episode": round(round_trip / local_episode_ms, 4),
        "ratio_ray1_to_local1_tasks_per_s": ratio("ray_1_actor", "local_1_thread", "tasks_per_s"),
        "ratio_ray1_to_local1_steady_tasks_per_s": ratio("ray_1_actor", "local_1_thread",
                                                         "steady_tasks_per_s"),
        "ratio_ray1_to_local1_cpu_per_task": ratio("ray_1_actor", "local_1_thread",
                                                   "cpu_s_per_task"),
        "ratio_local2_to_local1_tasks_per_s": ratio("local_2_threads", "local_1_thread",
                                                    "tasks_per_s"),
        "ratio_ray2_to_ray1_tasks_per_s": ratio("ray_2_actors", "ray_1_actor", "tasks_per_s"),
        "ratio_ray2_to_local2_tasks_per_s": ratio("ray_2_actors", "local_2_threads",
                                                  "tasks_per_s"),
        "ratio_ray2_to_local2_cpu_per_task": ratio("ray_2_actors", "local_2_threads",
                                                   "cpu_s_per_task"),
    }, indent=2))


if __name__ == "__main__":
    main()
