"""Tool steps per second: one SearchGenEnv against 8 as a sync vector, an async vector and an asyncio batch.

Every mode plays the same episodes: ``--tools`` tool calls cycling through
search / image_search / browse (queries and URLs from the shipped world), then
one final non-answer turn that ends the episode (truncation: no generation or
judging, so only tool steps are measured). The single environment plays as many
episodes as the 8 together. Environment construction is not timed.

Run: python perf/vector_throughput.py [--episodes 4] [--tools 6] [--num-envs 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import tempfile
import time

import gymnasium as gym

import knowgen  # noqa: F401  (registers knowgen/SearchGen-v0)
from knowgen.envs import ENV_ID
from knowgen.envs.protocol import format_tool_call
from knowgen.envs.vector import make_vector_env, run_batch
from knowgen.registry import TEXT_SEARCH
from knowgen.world.data import load_world

FINAL = "No answer."  # an invalid final turn: the episode ends truncated, nothing is drawn


def _action_mix(n: int) -> list[str]:
    """``n`` tool calls cycling search / image_search / browse over world entities."""
    countries = load_world().entities_of("country")
    search = TEXT_SEARCH.create("local")
    urls = [h.url for c in countries[:20] for h in list(search.search(f"flag of {c.name}"))[:1]]
    actions = []
    for i in range(n):
        country = countries[i % len(countries)]
        kind = ("search", "image_search", "browse")[i % 3]
        if kind == "search":
            actions.append(format_tool_call("search", {"queries": [f"capital of {country.name}"]}))
        elif kind == "image_search":
            actions.append(format_tool_call("image_search", {"query": f"flag of {country.name}"}))
        else:
            actions.append(format_tool_call("browse", {"url": urls[i % len(urls)],
                                                       "query": "capital"}))
    return actions


class MixPolicy:
    """Plays a fixed list of tool calls, then the final non-answer turn."""

    name = "mix"

    def __init__(self, actions: list[str]):
        self.actions = actions
        self._turn = 0

    def reset(self, obs: str, info: dict) -> None:
        self._turn = 0

    def act(self, obs: str, info: dict) -> str:
        self._turn += 1
        return self.actions[self._turn - 1] if self._turn <= len(self.actions) else FINAL


def _single(kwargs: dict, actions: list[str], episodes: int) -> float:
    env = gym.make(ENV_ID, **kwargs)
    env.reset(seed=0)
    t0 = time.perf_counter()
    for episode in range(episodes):
        env.reset(seed=episode)
        for action in actions + [FINAL]:
            env.step(action)
    elapsed = time.perf_counter() - t0
    env.close()
    return episodes * len(actions) / elapsed


def _vector(kwargs: dict, actions: list[str], episodes: int, n: int, mode: str) -> float:
    envs = make_vector_env(n, mode=mode, **kwargs)
    envs.reset(seed=0)
    t0 = time.perf_counter()
    for episode in range(episodes):
        envs.reset(seed=episode * n)
        for action in actions + [FINAL]:
            envs.step([action] * n)
    elapsed = time.perf_counter() - t0
    envs.close()
    return episodes * n * len(actions) / elapsed


def _batch(kwargs: dict, actions: list[str], episodes: int, n: int) -> float:
    envs = [gym.make(ENV_ID, **kwargs) for _ in range(n)]
    tasks = [t.id for t in envs[0].unwrapped.tasks[: episodes * n]]
    policies = [MixPolicy(actions) for _ in range(n)]
    t0 = time.perf_counter()
    results = asyncio.run(run_batch(envs, policies, tasks))
    elapsed = time.perf_counter() - t0
    assert all(r["truncated"] and r["turns"] == len(actions) + 1 for r in results)
    for env in envs:
        env.close()
    return len(results) * len(actions) / elapsed


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=4, help="episodes per environment")
    parser.add_argument("--tools", type=int, default=6, help="tool calls per episode")
    parser.add_argument("--num-envs", type=int, default=8)
    parser.add_argument("--cache-dir", default=None, help="world cache (default: a tmp folder)")
    args = parser.parse_args()
    cache = args.cache_dir or tempfile.mkdtemp(prefix="knowgen-perf-")
    kwargs = {"split": "test", "benchmark": f"world:cache_dir={cache}",
              "max_turns": args.tools + 1, "max_tool_calls": args.tools}
    actions = _action_mix(args.tools)
    n = args.num_envs
    out = {
        "machine": f"{platform.machine()}, Python {platform.python_version()}",
        "episodes_per_env": args.episodes, "tool_calls_per_episode": args.tools, "num_envs": n,
        "steps_per_s": {
            "single_env": round(_single(kwargs, actions, args.episodes * n), 1),
            f"sync_vector_{n}": round(_vector(kwargs, actions, args.episodes, n, "sync"), 1),
            f"async_vector_{n}": round(_vector(kwargs, actions, args.episodes, n, "async"), 1),
            f"asyncio_batch_{n}": round(_batch(kwargs, actions, args.episodes, n), 1),
        },
    }
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
