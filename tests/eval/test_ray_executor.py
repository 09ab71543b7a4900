"""``--executor ray`` on a real one-machine Ray cluster started in this process.

The cluster's node address is 127.0.0.2: Ray rewrites 127.0.0.1 into the
machine's routable address, while any other loopback address is kept, so
every connection stays on 127.0.0.0/8. It has 2 CPUs and one logical GPU
(Ray schedules it and sets ``CUDA_VISIBLE_DEVICES``; no CUDA is needed).
Runs are compared with local runs of the same world tasks, an actor process
is killed with SIGKILL mid-run, and real OpenAI-wire judges served on
127.0.0.1 count the requests in flight.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from knowgen.config import EvalConfig
from knowgen.errors import RunError
from knowgen.eval.executors import parse_executor
from knowgen.eval.runner import run_eval

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow

NODE_IP = "127.0.0.2"



@pytest.fixture(scope="module")
def cluster():
    with pytest.MonkeyPatch.context() as mp:  # Ray turns token authentication on for itself
        mp.delenv("RAY_AUTH_MODE", raising=False)
        ray.init(address="local", include_dashboard=False, num_cpus=2, num_gpus=1,
                 _node_ip_address=NODE_IP, log_to_driver=False)
        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # _GpuProbe
        try:
            assert {n["NodeManagerAddress"] for n in ray.nodes()} == {NODE_IP}
            yield
        finally:
            ray.shutdown()


def _cfg(tmp_path: Path, **kw) -> EvalConfig:
    cfg = EvalConfig(policy="scripted", limit=6, seed=0)
    cfg.env.benchmark = f"world:cache_dir={tmp_path.parent / 'gt-cache'}"
    for key, value in kw.items():
        setattr(cfg, key, value)
    return cfg


def _samples(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]


def _by_id(run: Path) -> dict[str, dict]:
    return {s["id"]: {k: v for k, v in s.items() if k != "run_id"} for s in _samples(run)}


def _scores(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k != "written_at"}


def test_local_and_ray_runs_write_the_same_samples_images_and_scores(cluster, tmp_path):
    local = run_eval(_cfg(tmp_path), run_dir=tmp_path / "local", progress=False,
                     write_html=False)
    remote = run_eval(_cfg(tmp_path, executor="ray:actors=2"), run_dir=tmp_path / "ray",
                      progress=False, write_html=False)
    assert remote.n_new == local.n_new == 6
    a, b = _by_id(tmp_path / "local"), _by_id(tmp_path / "ray")
    assert a.keys() == b.keys() and len(a) == 6
    assert a == b
    for sample in a.values():  # the driver wrote every image the actors drew
        path = sample["output_path"]
        assert (tmp_path / "ray" / path).read_bytes() == (tmp_path / "local" / path).read_bytes()
    assert _scores(remote.summary) == _scores(local.summary)
    assert json.loads((tmp_path / "ray" / "results.json").read_text()) == json.loads(
        (tmp_path / "local" / "results.json").read_text())
    # resuming the ray run folder with the local executor finds nothing left to do
    again = run_eval(_cfg(tmp_path), run_dir=tmp_path / "ray", progress=False, write_html=False)
    assert (again.n_new, again.n_resumed) == (0, 6)


def _my_processes(title: str) -> list[int]:
    """Pids of this test's descendants whose process title starts with ``title``."""
    parents, titles = {}, {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            titles[int(entry.name)] = (entry / "cmdline").read_bytes().split(b"\0")[0].decode()
        except (OSError, UnicodeDecodeError):
            continue
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    me, found = os.getpid(), []
    for pid, name in titles.items():
        ancestor = parents.get(pid)
        while ancestor not in (None, 0, 1, me):
            ancestor = parents.get(ancestor)
        if ancestor == me and name.startswith(title):
            found.append(pid)
    return found


def test_a_killed_actor_loses_no_sample_and_its_retry_is_logged_once(cluster, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="knowgen.eval.ray_executor")
    run, limit = tmp_path / "run", 10
    outcome: dict = {}
    worker = threading.Thread(target=lambda: outcome.update(run=run_eval(
        _cfg(tmp_path, limit=limit, executor="ray:actors=2"), run_dir=run, progress=False,
        write_html=False)))
    worker.start()
    log, victim = run / "samples.jsonl", None
    deadline = time.monotonic() + 240
    while victim is None and time.monotonic() < deadline and worker.is_alive():
        running = _my_processes("ray::EpisodeActor.run")
        if log.exists() and log.read_bytes().count(b"\n") >= 1 and running:
            victim = running[0]
            os.kill(victim, signal.SIGKILL)  # an actor process, mid-episode
        time.sleep(0.05)
    worker.join(600)
    assert victim is not None, "no actor was running a task to kill"
    assert outcome["run"].n_new == limit and outcome["run"].n_failed == 0
    lines = Counter(s["id"] for s in _samples(run))
    results = Counter(r["id"] for r in json.loads((run / "results.json").read_text()))
    assert len(lines) == len(results) == limit
    assert set(lines.values()) == set(results.values()) == {1}
    retries = [r for r in caplog.records if "died while running" in r.getMessage()]
    assert len(retries) == 1 and f"pid {victim}" in retries[0].getMessage()
    assert "runs again on another actor (attempt 2 of 3)" in retries[0].getMessage()


class CountingChatServer:
    """An OpenAI-wire chat endpoint on 127.0.0.1 that counts requests in flight at once."""

    def __init__(self, delay: float):
        self.delay, self.lock = delay, threading.Lock()
        self.in_flight = self.peak = self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                server.handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def handle(self, h):
        body = json.loads(h.rfile.read(int(h.headers["Content-Length"])))
        with self.lock:
            self.requests += 1
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        time.sleep(self.delay)
        texts = " ".join(p.get("text", "") for p in body["messages"][-1]["content"])
        if "The assistant's answer" in texts:
            reply = {"rationale": "enough", "score": 0.75}
        else:
            reply = {"rationale": "close", "faithfulness": 1, "visual_correctness": 0.5,
                     "text_accuracy": 1, "text_accuracy_na": False, "aesthetics": 1}
        raw = json.dumps({"id": "c", "object": "chat.completion", "model": body["model"],
                          "choices": [{"index": 0, "finish_reason": "stop", "message": {
                              "role": "assistant", "content": json.dumps(reply)}}]}).encode()
        with self.lock:
            self.in_flight -= 1
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(raw)))
        h.end_headers()
        h.wfile.write(raw)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_api_judges_keep_their_concurrency_across_the_whole_cluster(cluster, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="knowgen.eval.ray_executor")
    server = CountingChatServer(delay=0.4)
    try:
        judge = f"openai:model=judge,base_url={server.base_url},api_key_env=,concurrency=1"
        cfg = _cfg(tmp_path, limit=6, executor="ray:actors=2")
        cfg.env.image_judge = cfg.env.text_judge = judge
        outcome = run_eval(cfg, run_dir=tmp_path / "run", progress=False, write_html=False)
    finally:
        server.close()
    samples = _samples(tmp_path / "run")
    assert outcome.n_new == len(samples) == 6
    judged = sum(s["image_judgement"] is not None for s in samples) + sum(
        s["text_judgement"] is not None for s in samples)
    assert server.requests == judged >= 6  # every judgement was one request to the server
    assert all(s["image_judgement"]["evidence"]["model"] == "judge" for s in samples)
    assert server.peak == 1  # concurrency=1 held across both actor processes
    # every request took a slot of the cluster-wide limiter
    assert (f"API judge {server.base_url}/chat/completions: {server.requests} request(s), at "
            "most 1 at once across the cluster") in caplog.text
    assert "Ray: 2 actor(s)" in caplog.text


def test_expert_data_on_ray_matches_the_local_records(cluster):
    from knowgen.agents.expert_data import ExpertDataConfig, generate_expert_data

    local, local_stats = generate_expert_data(ExpertDataConfig(limit=6))
    remote, remote_stats = generate_expert_data(ExpertDataConfig(limit=6),
                                                executor="ray:actors=2")
    assert len(local) == local_stats["kept"] > 0
    assert remote == local and remote_stats == local_stats


class _GpuProbe:
    """A worker factory whose workers report the GPUs Ray gave their actor."""

    def __init__(self, wants: bool):
        self.wants = wants

    def wants_gpu(self):
        return ["policy transformers"] if self.wants else []

    def build(self, worker_id, bound=None):
        return self

    def run(self, item):
        return tuple(ray.get_gpu_ids()), os.environ.get("CUDA_VISIBLE_DEVICES"), os.getpid()


def _placements(spec: str, wants: bool, caplog) -> tuple[str, set]:
    """The executor's placement log line and the (GPU ids, CUDA_VISIBLE_DEVICES) its items saw."""
    from knowgen.eval.ray_executor import RayExecutor

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="knowgen.eval.ray_executor"):
        results = dict(RayExecutor(parse_executor(spec)[1]).map(_GpuProbe(wants), [0, 1, 2, 3]))
    assert sorted(results) == [0, 1, 2, 3]
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Ray: ")]
    return line, {(ids, visible) for ids, visible, _ in results.values()}


def test_actors_of_local_model_backends_get_a_gpu_and_others_none(cluster, caplog):
    # one GPU in the cluster: one actor, which holds it
    assert _placements("ray", True, caplog) == (
        "Ray: 1 actor(s), 1 CPU and 1 GPU each, for 4 task(s)", {((0,), "0")})
    # two CPUs: two actors, neither with a GPU
    line, seen = _placements("ray", False, caplog)
    assert line.startswith("Ray: 2 actor(s), 1 CPU and 0 GPU each") and {i for i, _ in seen} == {()}
    # fractions share the GPU
    line, seen = _placements("ray:num_gpus=0.5", False, caplog)
    assert line.startswith("Ray: 2 actor(s), 1 CPU and 0.5 GPU each") and seen == {((0,), "0")}
    with pytest.raises(RunError, match="num_gpus=2 per actor, but the Ray cluster has 1 GPU"):
        _placements("ray:num_gpus=2", False, caplog)  # refused: no node could hold an actor
