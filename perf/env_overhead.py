"""What SearchGenEnv adds on top of its tool backends, and tool steps per second for 1 and 8 envs.

Two measurements with the local (offline world) backends:

1. **Overhead ratio** per tool (``search``, ``image_search``, ``browse``):
   ``time of env.step(tool call) / time of the raw backend call that step makes``,
   the backend call being the very same backend object called with the same
   arguments (``search(q, top_k=5)``, ``search_images(q, top_k=5)``,
   ``browse(url, query)``). Steps and backend calls are interleaved item by item
   (alternating which goes first) after a warm-up pass over every item, so both
   see the same caches. Episodes are realistic: 8 tool calls, then ``reset``
   (not timed). Both the bare :class:`SearchGenEnv` and the ``gym.make`` form
   (with Gymnasium's wrappers) are timed.
2. **Throughput**: tool steps per second of whole episodes (``reset``, 8 tool
   calls of one kind, one final non-answer turn that truncates; all of it timed,
   only the 8 tool calls counted) for one environment, a sequential loop over 8
   environments, a synchronous vector of 8 (:func:`knowgen.envs.vector.make_vector_env`)
   and the asyncio batch of 8 (:func:`knowgen.envs.vector.run_batch`).

The pieces of a ``browse`` step (the cheapest backend, so the one where the
environment's own cost shows most) are also timed one by one. With
``--profile`` every tool's step loop is also run under :mod:`cProfile`
and the functions with the most own time are listed.

Run: python perf/env_overhead.py [--items 240] [--episodes 4] [--profile] [--json out.json]
     [--set tool_timeout_s=0]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import platform
import pstats
import statistics
import tempfile
import time
import timeit
from collections.abc import Callable
from typing import Any

import gymnasium as gym

import knowgen  # noqa: F401  (registers knowgen/SearchGen-v0)
from knowgen.benchmarks.world import WorldBenchmark
from knowgen.envs import ENV_ID
from knowgen.envs import observations as fmt
from knowgen.envs.protocol import format_tool_call, parse_action
from knowgen.envs.searchgen import SearchGenEnv
from knowgen.envs.vector import make_vector_env, run_batch
from knowgen.search.index import get_index
from knowgen.world.data import load_world

TOOLS = ("search", "image_search", "browse")
TOOL_CALLS = 8  # per episode, as upstream
TOP_K = 5
FINAL = "No answer."  # an invalid final turn: the episode ends truncated, nothing is drawn


# --------------------------------------------------------------------------- inputs
def tool_items(n: int) -> dict[str, list[dict[str, Any]]]:
    """``n`` argument dicts per tool, over the shipped world's countries and pages."""
    world = load_world()
    countries = world.entities_of("country")
    pages = list(world.pages.values())
    items: dict[str, list[dict[str, Any]]] = {tool: [] for tool in TOOLS}
    for i in range(n):
        country = countries[i % len(countries)]
        items["search"].append({"queries": [f"capital of {country.name}"]})
        items["image_search"].append({"query": f"flag of {country.name}"})
        items["browse"].append({"url": pages[i % len(pages)].url, "query": "capital"})
    return items


def backend_call(env: SearchGenEnv, tool: str) -> Callable[[dict[str, Any]], Any]:
    """The raw backend call ``env.step`` makes for ``tool``, on the env's own backend object."""
    if tool == "search":
        return lambda a: env.text_search.search(a["queries"][0], top_k=TOP_K)
    if tool == "image_search":
        return lambda a: env.image_search.search_images(a["query"], top_k=TOP_K)
    return lambda a: env.browser.browse(a["url"], a["query"])


def actions(tool: str, items: list[dict[str, Any]]) -> list[str]:
    return [format_tool_call(tool, args) for args in items]


# --------------------------------------------------------------------------- overhead
def overhead(env: gym.Env, tool: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    """Interleaved timings of ``env.step`` and the raw backend call on the same items."""
    base = env.unwrapped
    raw = backend_call(base, tool)
    acts = actions(tool, items)
    for i, (args, act) in enumerate(zip(items, acts)):  # warm-up: both paths see every item
        if i % TOOL_CALLS == 0:
            env.reset(seed=i)
        raw(args)
        env.step(act)
    step_t, raw_t = [], []
    for i, (args, act) in enumerate(zip(items, acts)):
        if i % TOOL_CALLS == 0:
            env.reset(seed=i)
        first_raw = i % 2 == 0
        if first_raw:
            raw_t.append(_time(raw, args))
        step_t.append(_time(env.step, act))
        if not first_raw:
            raw_t.append(_time(raw, args))
    return _ratio_summary(step_t, raw_t)


def _time(fn: Callable[[Any], Any], arg: Any) -> float:
    t0 = time.perf_counter()
    fn(arg)
    return time.perf_counter() - t0


def _ratio_summary(step_t: list[float], raw_t: list[float]) -> dict[str, Any]:
    def us(x: float) -> float:
        return round(x * 1e6, 1)

    step_p50, raw_p50 = statistics.median(step_t), statistics.median(raw_t)
    step_mean, raw_mean = statistics.fmean(step_t), statistics.fmean(raw_t)
    pair = [s / r for s, r in zip(step_t, raw_t)]
    return {
        "n": len(step_t),
        "step_p50_us": us(step_p50), "backend_p50_us": us(raw_p50),
        "step_mean_us": us(step_mean), "backend_mean_us": us(raw_mean),
        "added_p50_us": us(step_p50 - raw_p50),
        "ratio_p50": round(step_p50 / raw_p50, 2),
        "ratio_mean": round(step_mean / raw_mean, 2),
        "ratio_pairwise_p50": round(statistics.median(pair), 2),
    }


# --------------------------------------------------------------------------- throughput
class ToolPolicy:
    """Plays a fixed list of tool calls, then the final non-answer turn."""

    name = "fixed"

    def __init__(self, acts: list[str]):
        self.acts, self._turn = acts, 0

    def reset(self, obs: str, info: dict) -> None:
        self._turn = 0

    def act(self, obs: str, info: dict) -> str:
        self._turn += 1
        return self.acts[self._turn - 1] if self._turn <= len(self.acts) else FINAL


def _episode_actions(acts: list[str], episode: int) -> list[str]:
    start = (episode * TOOL_CALLS) % max(1, len(acts) - TOOL_CALLS)
    return acts[start:start + TOOL_CALLS]


def throughput_sequential(envs: list[gym.Env], acts: list[str], episodes: int) -> float:
    """Tool steps/s when ``envs`` are stepped one after another (1 env: a plain loop)."""
    t0 = time.perf_counter()
    for episode in range(episodes):
        for env in envs:
            env.reset(seed=episode)
        for act in _episode_actions(acts, episode) + [FINAL]:
            for env in envs:
                env.step(act)
    return episodes * len(envs) * TOOL_CALLS / (time.perf_counter() - t0)


def throughput_vector(kwargs: dict[str, Any], acts: list[str], episodes: int, n: int) -> float:
    """Tool steps/s of a synchronous vector environment of ``n``."""
    envs = make_vector_env(n, mode="sync", **kwargs)
    envs.reset(seed=0)
    t0 = time.perf_counter()
    for episode in range(episodes):
        envs.reset(seed=episode * n)
        for act in _episode_actions(acts, episode) + [FINAL]:
            envs.step([act] * n)
    rate = episodes * n * TOOL_CALLS / (time.perf_counter() - t0)
    envs.close()
    return rate


def throughput_batch(envs: list[gym.Env], acts: list[str], episodes: int) -> float:
    """Tool steps/s of :func:`run_batch` (each env call in a worker thread)."""
    tasks = [t.id for t in envs[0].unwrapped.tasks[: episodes * len(envs)]]
    policies = [ToolPolicy(acts[:TOOL_CALLS]) for _ in envs]
    t0 = time.perf_counter()
    results = asyncio.run(run_batch(envs, policies, tasks))
    elapsed = time.perf_counter() - t0
    assert all(r["truncated"] and r["turns"] == TOOL_CALLS + 1 for r in results), results
    return len(results) * TOOL_CALLS / elapsed


# --------------------------------------------------------------------------- profile
def profile(env: gym.Env, tool: str, items: list[dict[str, Any]], top: int = 14) -> str:
    """cProfile of the step loop for ``tool``: the functions with the most own time."""
    acts = actions(tool, items)
    prof = cProfile.Profile()
    env.reset(seed=0)
    prof.enable()
    for i, act in enumerate(acts):
        if i % TOOL_CALLS == 0:
            env.reset(seed=i)
        env.step(act)
    prof.disable()
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top + 10)
    return out.getvalue()


def breakdown(env: SearchGenEnv, items: dict[str, list[dict[str, Any]]],
              number: int = 5000) -> dict[str, float]:
    """Microseconds per call of the pieces of a ``browse`` step (best of 3 ``timeit`` runs)."""
    args = items["browse"][0]
    act = actions("browse", [args])[0]
    page = env.browser.browse(args["url"], args["query"])
    text = fmt.format_page(page)
    last = {"kind": "tool", "tool": "browse", "ok": True, "error": ""}
    calls = [0]

    def step() -> None:
        if calls[0] % TOOL_CALLS == 0:
            env.reset(seed=0)
        calls[0] += 1
        env.step(act)

    pieces: dict[str, Callable[[], Any]] = {
        "env.step(browse)": step,
        "backend browse()": lambda: env.browser.browse(args["url"], args["query"]),
        "  of which get_index()": get_index,
        "parse_action()": lambda: parse_action(act, []),
        "format_page + wrap_tool_response": lambda: fmt.wrap_tool_response(
            fmt.format_page(page), env.config.max_observation_chars),
    }
    # private helpers of the environment, timed while they exist under these names
    if hasattr(env, "_with_notices"):
        pieces["budget notices (_with_notices)"] = lambda: env._with_notices(text)
    if hasattr(env, "_info"):
        pieces["info dict (_info)"] = lambda: env._info(last)
    return {name: round(min(timeit.repeat(fn, number=number, repeat=3)) / number * 1e6, 2)
            for name, fn in pieces.items()}


# --------------------------------------------------------------------------- machine
def machine() -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            model = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")),
                         "")
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            kb = int(next(ln.split()[1] for ln in fh if ln.startswith("MemTotal")))
        mem = f"{kb / 2**20:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else ()
    return {"cpu": model, "cores": os.cpu_count(), "memory": mem,
            "python": platform.python_version(), "platform": platform.platform(),
            "gymnasium": gym.__version__, "load_avg_1_5_15": [round(x, 2) for x in load]}


def _settings(pairs: list[str]) -> dict[str, Any]:
    """``["field=value", ...]`` as keyword arguments (values read as JSON where possible)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value
    return out


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=240, help="timed steps per tool")
    parser.add_argument("--episodes", type=int, default=4,
                        help="episodes per environment in the throughput runs")
    parser.add_argument("--num-envs", type=int, default=8)
    parser.add_argument("--cache-dir", default=None, help="world benchmark cache folder")
    parser.add_argument("--profile", action="store_true", help="cProfile each tool's steps")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="an EnvConfig field for every environment (repeatable), "
                             "e.g. --set tool_timeout_s=0")
    args = parser.parse_args()

    cache = args.cache_dir or tempfile.mkdtemp(prefix="knowgen-perf-")
    bench = WorldBenchmark(cache_dir=cache)
    kwargs: dict[str, Any] = {"split": "test", "max_tool_calls": TOOL_CALLS,
                              "max_turns": TOOL_CALLS + 1, **_settings(args.set)}
    items = tool_items(args.items)
    out: dict[str, Any] = {"machine": machine(), "env_settings": kwargs,
                           "items_per_tool": args.items,
                           "tool_calls_per_episode": TOOL_CALLS, "overhead": {}}
    bare = SearchGenEnv(benchmark=bench, **kwargs)
    made = gym.make(ENV_ID, benchmark=bench, **kwargs)
    made.reset(seed=0)
    bare.reset(seed=0)
    for tool in TOOLS:
        out["overhead"][tool] = {"SearchGenEnv": overhead(bare, tool, items[tool]),
                                 "gym.make": overhead(made, tool, items[tool])}

    out["browse_step_breakdown_us"] = breakdown(bare, items)
    if not args.skip_throughput:
        n = args.num_envs
        one = [gym.make(ENV_ID, benchmark=bench, **kwargs)]
        many = [gym.make(ENV_ID, benchmark=bench, **kwargs) for _ in range(n)]
        spec_kwargs = {**kwargs, "benchmark": f"world:cache_dir={cache}"}
        out["throughput_steps_per_s"] = {}
        for tool in TOOLS:
            acts = actions(tool, items[tool])
            out["throughput_steps_per_s"][tool] = {
                "1_env": round(throughput_sequential(one, acts, args.episodes * n), 1),
                f"{n}_env_sequential_loop": round(throughput_sequential(many, acts,
                                                                        args.episodes), 1),
                f"{n}_env_sync_vector": round(throughput_vector(spec_kwargs, acts,
                                                                args.episodes, n), 1),
                f"{n}_env_asyncio_batch": round(throughput_batch(many, acts, args.episodes), 1),
            }
    out["machine"]["load_avg_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(out, indent=2))
    if args.profile:
        for tool in TOOLS:
            print(f"\n===== cProfile: env.step with {tool} ({args.items} steps) =====")
            print(profile(made, tool, items[tool]))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(out, fh, indent=2)
    return out


if __name__ == "__main__":
    main()
