"""Loop a seeded random policy over several episodes: the floor every agent should beat.

Run: python examples/random_agent.py [--episodes 5]
"""

from __future__ import annotations

import argparse
import json

import gymnasium as gym

import knowgen  # noqa: F401  (registers knowgen/SearchGen-v0)
from knowgen.registry import POLICIES


def main(episodes: int = 5, seed: int = 0, **env_kwargs) -> list[dict]:
    env = gym.make("knowgen/SearchGen-v0", split="test", **env_kwargs)
    policy = POLICIES.create("random", seed=seed)
    results = []
    for episode in range(episodes):
        obs, info = env.reset(seed=seed + episode)  # the seed draws the task
        policy.reset(obs, info)
        done, turns = False, 0
        while not done:
            obs, reward, terminated, truncated, info = env.step(policy.act(obs, info))
            done, turns = terminated or truncated, turns + 1
            print(f"  turn {turns}: {info['last_action']}")
        results.append({"task_id": info["task_id"], "reward": reward, "turns": turns,
                        "answered": terminated})
        print(json.dumps(results[-1]))
    env.close()
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    main(args.episodes, args.seed)
