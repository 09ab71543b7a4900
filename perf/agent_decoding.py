"""Decoding speed of the packaged agent with and without constrained decoding.

Plays the same even-stride test-split tasks with ``gen-searcher-tiny`` (greedy,
CPU) once per setting and times every call the agent makes to its model
(``complete`` and the ``resample`` of a retry): milliseconds per generated token,
tokens per reply, model calls per episode and the episodes' mean reward.

Run: python perf/agent_decoding.py [--tasks 20] [--threads 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import time

SETTINGS = {
    "unconstrained": {"grammar": False, "drop_invalid_turns": False},
    "grammar": {"grammar": True, "drop_invalid_turns": False},
    "grammar + drop_invalid_turns": {"grammar": True, "drop_invalid_turns": True},
}


def timed(backend, name, clock):
    """Wrap ``backend.<name>`` so that each call adds its time and token count to ``clock``."""
    inner = getattr(backend, name)

    def call(*args, **kwargs):
        start = time.perf_counter()
        out = inner(*args, **kwargs)
        clock.append((time.perf_counter() - start, backend.last_new_tokens))
        return out

    setattr(backend, name, call)


def measure(setting, task_ids, env):
    from knowgen.agents.policy import tiny_policy

    policy = tiny_policy(**SETTINGS[setting])
    clock: list[tuple[float, int]] = []
    timed(policy.backend, "complete", clock)
    timed(policy.backend, "resample", clock)
    rewards = []
    for task_id in task_ids:
        obs, info = env.reset(options={"task_id": task_id})
        policy.reset(obs, info)
        done, reward = False, 0.0
        while not done:
            obs, reward, terminated, truncated, info = env.step(policy.act(obs, info))
            done = terminated or truncated
        rewards.append(float(reward))
    seconds = sum(s for s, _ in clock)
    tokens = sum(n for _, n in clock)
    return {"setting": setting, "episodes": len(task_ids), "model_calls": len(clock),
            "tokens": tokens, "ms_per_token": round(1000 * seconds / max(tokens, 1), 2),
            "tokens_per_reply": round(tokens / max(len(clock), 1), 1),
            "calls_per_episode": round(len(clock) / len(task_ids), 2),
            "mean_reward": round(sum(rewards) / len(rewards), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20, help="test-split tasks, even stride")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    import torch

    from knowgen.config import EnvConfig
    from knowgen.envs.searchgen import SearchGenEnv

    torch.set_num_threads(args.threads)
    env = SearchGenEnv(EnvConfig(split="test"))
    ids = [t.id for t in env.tasks]
    step = max(1, len(ids) // args.tasks)
    task_ids = ids[::step][:args.tasks]
    rows = [measure(name, task_ids, env) for name in SETTINGS]
    print("| setting | episodes | model calls/episode | tokens/reply | ms/token | mean reward |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['setting']} | {r['episodes']} | {r['calls_per_episode']} | "
              f"{r['tokens_per_reply']} | {r['ms_per_token']} | {r['mean_reward']} |")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(rows, fh, indent=2)


if __name__ == "__main__":
    main()
