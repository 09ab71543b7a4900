"""A real two-node Ray cluster: ``ray start --head`` plus one worker node, as separate processes.

The head listens on 127.0.0.2 and the worker node on 127.0.0.3 (loopback
addresses: Ray would rewrite 127.0.0.1 into the machine's routable address),
one CPU each, so the run's two actors sit on different nodes. The driver is
``knowgen eval`` in a subprocess; it is killed with SIGKILL after its first
samples and the same command is run again, which must finish the run with
every sample exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
pytest.importorskip("ray")

HEAD_IP, WORKER_IP = "127.0.0.2", "127.0.0.3"
RAY = str(Path(sys.executable).with_name("ray"))


def _free_port(ip: str) -> int:
    with socket.socket() as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


class Node:
    """One ``ray start --block`` process in a session of its own (stopped by its pids)."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path):
        self.log = log.open("w")
        self.proc = subprocess.Popen([RAY, "start", "--block", "--disable-usage-stats", *args],
                                     env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def stop(self) -> None:
        pids = [self.proc.pid, *_descendants(self.proc.pid)]
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                continue
        self.log.close()


def _alive_nodes(address: str, env: dict[str, str]) -> list[str]:
    probe = (f"import ray; ray.init(address={address!r}, log_to_driver=False); "
             "print(sorted(n['NodeManagerAddress'] for n in ray.nodes() if n['Alive']))")
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                         timeout=120, check=False)
    return json.loads(out.stdout.strip().splitlines()[-1].replace("'", '"')) if \
        out.returncode == 0 else []


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory):
    """``(address, env)`` of a running head plus worker node; both stopped afterwards."""
    logs = tmp_path_factory.mktemp("ray-logs")
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": uuid.uuid4().hex}
    port = _free_port(HEAD_IP)
    address = f"{HEAD_IP}:{port}"
    nodes = [Node(["--head", f"--node-ip-address={HEAD_IP}", f"--port={port}", "--num-cpus=1",
                   "--include-dashboard=false",
                   f"--ray-client-server-port={_free_port(HEAD_IP)}"], env, logs / "head.log")]
    try:
        nodes.append(Node([f"--address={address}", f"--node-ip-address={WORKER_IP}",
                           "--num-cpus=1"], env, logs / "worker.log"))
        deadline = time.monotonic() + 180
        while _alive_nodes(address, env) != [HEAD_IP, WORKER_IP]:
            assert time.monotonic() < deadline, (logs / "head.log").read_text()[-2000:]
            time.sleep(2)
        yield address, env
    finally:
        for node in reversed(nodes):
            node.stop()


def test_a_killed_driver_resumes_on_the_cluster_with_every_sample_once(two_nodes, tmp_path):
    address, env = two_nodes
    run, limit = tmp_path / "run", 10
    cmd = [sys.executable, "-m", "knowgen", "-v", "eval", "--policy", "scripted", "--limit",
           str(limit), "--benchmark", f"world:cache_dir={tmp_path / 'cache'}", "--executor",
           f"ray:address={address},actors=2", "--run-dir", str(run), "--no-progress"]
    driver = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    log = run / "samples.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and driver.poll() is None:
        if log.exists() and log.read_bytes().count(b"\n") >= 2:
            break
        time.sleep(0.05)
    assert driver.poll() is None, "the driver ended before it could be killed"
    driver.send_signal(signal.SIGKILL)
    driver.wait(30)
    kept = Counter(json.loads(line)["id"] for line in log.read_text().splitlines())
    assert 2 <= len(kept) < limit and set(kept.values()) == {1}

    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"({limit - len(kept)} new, {len(kept)} resumed)" in done.stdout
    assert "Ray: 2 actor(s), 1 CPU and 0 GPU each" in done.stderr  # one actor per node
    lines = Counter(json.loads(line)["id"] for line in log.read_text().splitlines())
    results = Counter(r["id"] for r in json.loads((run / "results.json").read_text()))
    assert len(lines) == len(results) == limit
    assert set(lines.values()) == set(results.values()) == {1}
    assert sorted(p.name for p in (run / "images").iterdir()) == sorted(
        Path(r["output_path"]).name for r in json.loads((run / "results.json").read_text()))


def test_a_driver_without_the_cluster_token_is_told_what_to_set(two_nodes, tmp_path):
    address, env = two_nodes
    bare = {k: v for k, v in env.items() if k not in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
    run = tmp_path / "run"
    out = subprocess.run([sys.executable, "-m", "knowgen", "eval", "--limit", "1", "--executor",
                          f"ray:address={address}", "--run-dir", str(run), "--no-progress"],
                         env=bare, capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 2
    assert "uses token authentication: set RAY_AUTH_MODE=token" in out.stderr
    assert not run.exists()  # a failed start leaves nothing behind
