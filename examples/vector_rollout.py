"""Run 8 SearchGenEnv copies as one Gymnasium vector environment with scripted policies.

Each sub-environment runs in its own process (``mode="async"``). Gymnasium 1.x
autoresets a finished sub-environment on the *next* step, so its policy is reset
then. Run: python examples/vector_rollout.py
"""

from __future__ import annotations

import json

from knowgen.envs.vector import env_info, make_vector_env
from knowgen.registry import POLICIES


def main(num_envs: int = 8, mode: str = "async", **env_kwargs) -> list[dict]:
    envs = make_vector_env(num_envs, mode=mode, split="test", **env_kwargs)
    policies = [POLICIES.create("scripted") for _ in range(num_envs)]
    obs, infos = envs.reset(seed=0)
    for i, policy in enumerate(policies):
        policy.reset(obs[i], env_info(infos, i))
    finished: list[dict | None] = [None] * num_envs  # the first episode of each env
    ended = [False] * num_envs  # ended on the last step: autoreset on this one
    while any(f is None for f in finished):
        actions = ["" if ended[i] else p.act(obs[i], env_info(infos, i))  # "" is ignored
                   for i, p in enumerate(policies)]
        obs, rewards, terminated, truncated, infos = envs.step(actions)
        for i in range(num_envs):
            info = env_info(infos, i)
            if ended[i]:  # this sub-environment was just reset: a new episode
                ended[i] = False
                policies[i].reset(obs[i], info)
            elif terminated[i] or truncated[i]:
                ended[i] = True
                if finished[i] is None:
                    finished[i] = {"env": i, "task_id": info["task_id"],
                                   "reward": float(rewards[i]), "turns": info["turn"]}
                    print(json.dumps(finished[i]))
    envs.close()
    return [f for f in finished if f is not None]


if __name__ == "__main__":
    main()
