"""Step through one SearchGenEnv episode by hand, then let a policy finish another.

Run: python examples/quickstart.py
"""

from __future__ import annotations

import json

import gymnasium as gym

import knowgen  # noqa: F401  (registers knowgen/SearchGen-v0)
from knowgen.registry import POLICIES


def main() -> dict:
    env = gym.make("knowgen/SearchGen-v0", split="test")
    obs, info = env.reset(seed=0, options={"task_index": 0})
    print(obs[-400:])

    # A hand-written first turn in the Gen-Searcher protocol.
    action = ('<think>I should find what the request refers to.</think>'
              '<tool_call>{"name": "search", "arguments": {"queries": ["capital city"]}}</tool_call>')
    obs, reward, terminated, truncated, info = env.step(action)
    print(obs[:600])

    # Let the scripted searcher play a full episode.
    policy = POLICIES.create("scripted")
    obs, info = env.reset(seed=0, options={"task_index": 1})
    policy.reset(obs, info)
    done = False
    while not done:
        obs, reward, terminated, truncated, info = env.step(policy.act(obs, info))
        done = terminated or truncated
    summary = {"task_id": info["task_id"], "reward": reward, "terms": info.get("reward_terms")}
    print(json.dumps(summary, indent=2))
    env.close()
    return summary


if __name__ == "__main__":
    main()
