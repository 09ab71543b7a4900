"""SearchGenEnv in-process against ``knowgen serve env`` over HTTP sessions and over WebSocket.

Scripted episodes of the offline world's test split are recorded in-process
first; every mode then replays exactly those turns (``reset`` with the same
seed, the same actions), and each observation is checked against the recording.
Timed per call: ``reset``, tool steps, and the answer step (which draws and
judges the image). Modes:

* ``in-process``: ``SearchGenEnv.step`` called directly in this process;
* ``http``: :class:`~knowgen.envs.openenv_client.SearchGenHttpSession` (the
  server's ``/sessions`` routes, one keep-alive connection);
* ``websocket``: :class:`~knowgen.envs.openenv_client.SearchGenEnvClient`
  (OpenEnv's ``EnvClient``, the ``/ws`` session).

The server is a real ``knowgen serve env`` process on 127.0.0.1 (same settings).
One client plays the episodes one after another; then ``--clients`` threads play
them at once (in-process: one environment per thread). A warm-up pass runs first
in every mode, so the offline judge's OCR cache is warm on both sides alike.

Run: python perf/env_server.py [--episodes 8] [--rounds 3] [--clients 8] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from knowgen.envs.backends import build_backends
from knowgen.envs.openenv_client import SearchGenEnvClient, SearchGenHttpSession
from knowgen.envs.openenv_models import SearchGenAction
from knowgen.envs.searchgen import SearchGenEnv
from knowgen.registry import POLICIES

MODES = ("in-process", "http", "websocket")


def record(env: SearchGenEnv, seeds: list[int]) -> list[dict]:
    """Scripted episodes: the seed, the actions and the observations that came back."""
    episodes = []
    for seed in seeds:
        obs, info = env.reset(seed=seed)
        policy = POLICIES.create("scripted", seed=0)
        policy.reset(obs, info)
        actions, observations, done = [], [obs], False
        while not done:
            actions.append(policy.act(obs, info))
            obs, _r, terminated, truncated, info = env.step(actions[-1])
            observations.append(obs)
            done = terminated or truncated
        episodes.append({"seed": seed, "actions": actions, "observations": observations})
    return episodes


class InProcess:
    """The in-process environment behind the clients' ``reset`` / ``step`` / ``close``."""

    def __init__(self, env: SearchGenEnv):
        self.env = env

    def reset(self, seed: int) -> str:
        return self.env.reset(seed=seed)[0]

    def step(self, action: str) -> str:
        return self.env.step(action)[0]

    def close(self) -> None:
        pass


class Remote:
    """A client of the server, with the in-process call shapes."""

    def __init__(self, client):
        self.client = client

    def reset(self, seed: int) -> str:
        return self.client.reset(seed=seed).observation.text

    def step(self, action: str) -> str:
        return self.client.step(SearchGenAction(text=action)).observation.text

    def close(self) -> None:
        self.client.close()


def play(player, episodes: list[dict], times: dict[str, list[float]]) -> int:
    """Replay ``episodes``; appends each call's seconds to ``times``; returns mismatches."""
    wrong = 0
    for ep in episodes:
        start = time.perf_counter()
        wrong += player.reset(ep["seed"]) != ep["observations"][0]
        times["reset"].append(time.perf_counter() - start)
        for k, action in enumerate(ep["actions"], start=1):
            start = time.perf_counter()
            wrong += player.step(action) != ep["observations"][k]
            kind = "answer" if k == len(ep["actions"]) else "tool"
            times[kind].append(time.perf_counter() - start)
    return wrong


def make_player(mode: str, url: str, shared: dict):
    if mode == "in-process":
        return InProcess(SearchGenEnv(**shared))
    if mode == "http":
        session = SearchGenHttpSession(url)
        session.open()
        return Remote(session)
    client = SearchGenEnvClient(base_url=url, message_timeout_s=600).sync()
    client.connect()
    return Remote(client)


def sequential(mode: str, url: str, shared: dict, episodes: list[dict], rounds: int) -> dict:
    player = make_player(mode, url, shared)
    try:
        play(player, episodes, {"reset": [], "tool": [], "answer": []})  # warm-up
        times: dict[str, list[float]] = {"reset": [], "tool": [], "answer": []}
        wrong = 0
        for _ in range(rounds):
            wrong += play(player, episodes, times)
    finally:
        player.close()
    return {"times": times, "wrong": wrong}


def concurrent(mode: str, url: str, shared: dict, episodes: list[dict], clients: int) -> dict:
    """``clients`` threads, each its own session, each playing every episode once."""
    players = [make_player(mode, url, shared) for _ in range(clients)]
    results = [{"reset": [], "tool": [], "answer": []} for _ in range(clients)]
    wrong = [0] * clients
    barrier = threading.Barrier(clients + 1)

    def run(i: int) -> None:
        barrier.wait()
        wrong[i] = play(players[i], episodes, results[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    for player in players:
        player.close()
    steps = sum(len(r["tool"]) + len(r["answer"]) for r in results)
    return {"steps_per_s": steps / wall, "wrong": sum(wrong), "steps": steps}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def start_server(port: int, cache_dir: str, max_sessions: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "knowgen", "serve", "env", "--port", str(port),
         "--benchmark", f"world:cache_dir={cache_dir}", "--max-sessions", str(max_sessions)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the server exited; run knowgen serve env by hand to see why")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    proc.terminate()
    raise SystemExit("the server did not start within 300 s")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rate(values: list[float]) -> float:
    """Calls per second of calls that took ``values`` seconds, one after another."""
    return len(values) / sum(values)


def table(seq: dict, conc: dict, clients: int) -> str:
    """Markdown: one row per mode, every figure also as a ratio to in-process."""
    base = seq["in-process"]["times"]
    header = ("| mode | tool steps/s | vs in-process | tool step p50 (ms) | p90 (ms) | "
              "p50 vs in-process | answer step p50 (ms) | reset p50 (ms) | all steps/s | "
              f"vs in-process | all steps/s, {clients} sessions | vs in-process |")
    lines = [header, "| --- |" + " ---: |" * 11]
    for mode in MODES:
        t = seq[mode]["times"]
        every = t["tool"] + t["answer"]
        p50 = statistics.median(t["tool"])
        lines.append(
            f"| {mode} | {rate(t['tool']):.0f} | {rate(t['tool']) / rate(base['tool']):.2f}x | "
            f"{p50 * 1000:.2f} | {pct(t['tool'], 0.9) * 1000:.2f} | "
            f"{p50 / statistics.median(base['tool']):.1f}x | "
            f"{statistics.median(t['answer']) * 1000:.0f} | "
            f"{statistics.median(t['reset']) * 1000:.2f} | {rate(every):.1f} | "
            f"{rate(every) / rate(base['tool'] + base['answer']):.2f}x | "
            f"{conc[mode]['steps_per_s']:.1f} | "
            f"{conc[mode]['steps_per_s'] / conc['in-process']['steps_per_s']:.2f}x |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--episodes", type=int, default=8, help="scripted episodes (seeds 0..N-1)")
    parser.add_argument("--rounds", type=int, default=3, help="timed passes over the episodes")
    parser.add_argument("--clients", type=int, default=8, help="concurrent sessions")
    parser.add_argument("--out", type=Path, help="also write the markdown table here")
    args = parser.parse_args()
    from knowgen.benchmarks.world import WorldBenchmark

    cache_dir = tempfile.mkdtemp(prefix="knowgen-perf-world-")
    shared = {"benchmark": WorldBenchmark(cache_dir=cache_dir), **build_backends()}
    episodes = record(SearchGenEnv(**shared), list(range(args.episodes)))
    port = free_port()
    load = os.getloadavg()[0]
    server = start_server(port, cache_dir, max(args.clients, 2))
    url = f"http://127.0.0.1:{port}"
    try:
        seq = {m: sequential(m, url, shared, episodes, args.rounds) for m in MODES}
        conc = {m: concurrent(m, url, shared, episodes, args.clients) for m in MODES}
    finally:
        server.terminate()
        server.wait(timeout=60)
    wrong = {m: seq[m]["wrong"] + conc[m]["wrong"] for m in MODES}
    steps = sum(len(e["actions"]) for e in episodes)
    machine = (f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
               f"{platform.python_version()}; load average {load:.1f} at start.")
    runs = (f"{args.episodes} scripted episodes ({steps} steps, {steps - args.episodes} of them "
            f"tool calls) x {args.rounds} rounds, after one warm-up pass; observations "
            f"differing from the recording: {wrong}.")
    text = "\n".join([machine, runs, "", table(seq, conc, args.clients)])
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
