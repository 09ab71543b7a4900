"""Decoding speed of one LoRA checkpoint under the transformers and the llama.cpp backends.

Plays the same even-stride tasks of a world split with the checkpoint under each
backend (the checkpoint's own decoding settings: greedy, grammar, retries) and
times every call the agent makes to its model: generated tokens per second (the
prompt's prefill included), seconds per episode, model calls per episode, the
episodes' mean reward, and how many of the llama.cpp episodes wrote exactly the
transformers episode's actions (llama.cpp computes with the quantised base, so
greedy choices can differ where two tokens are close).

Run: python perf/agent_backends.py --path runs/train-smollm2/grpo/final [--tasks 20]
     [--split test-ood] [--threads 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import time

from agent_decoding import timed


def play(policy, task_ids, env):
    """Mean reward, actions per episode and the model calls' (seconds, tokens)."""
    clock: list[tuple[float, int]] = []
    timed(policy.backend, "complete", clock)
    timed(policy.backend, "resample", clock)
    rewards, actions = [], []
    start = time.perf_counter()
    for task_id in task_ids:
        obs, info = env.reset(options={"task_id": task_id})
        policy.reset(obs, info)
        done, reward, episode = False, 0.0, []
        while not done:
            action = policy.act(obs, info)
            episode.append(action)
            obs, reward, terminated, truncated, info = env.step(action)
            done = terminated or truncated
        rewards.append(float(reward))
        actions.append(episode)
    wall = time.perf_counter() - start
    seconds = sum(s for s, _ in clock)
    tokens = sum(n for _, n in clock)
    return {"episodes": len(task_ids), "model_calls": len(clock), "tokens": tokens,
            "tokens_per_s": round(tokens / max(seconds, 1e-9), 1),
            "s_per_episode": round(wall / len(task_ids), 2),
            "calls_per_episode": round(len(clock) / len(task_ids), 2),
            "mean_reward": round(sum(rewards) / len(rewards), 4)}, actions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", required=True, help="LoRA checkpoint over a GGUF base")
    parser.add_argument("--tasks", type=int, default=20, help="tasks of the split, even stride")
    parser.add_argument("--split", default="test-ood", help="world split")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of each backend")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    import torch

    from knowgen.agents.policy import llamacpp_policy, transformers_policy
    from knowgen.config import EnvConfig
    from knowgen.envs.searchgen import SearchGenEnv

    torch.set_num_threads(args.threads)
    env = SearchGenEnv(EnvConfig(split=args.split))
    ids = [t.id for t in env.tasks]
    task_ids = ids[:: max(1, len(ids) // args.tasks)][: args.tasks]
    rows = []
    start = time.perf_counter()
    policy = transformers_policy(args.path, device="cpu", dtype="float32")
    load_hf = time.perf_counter() - start
    row, hf_actions = play(policy, task_ids, env)
    rows.append({"backend": "transformers (merged, float32)", "load_s": round(load_hf, 1), **row})
    del policy
    start = time.perf_counter()
    policy = llamacpp_policy(args.path, threads=args.threads)
    load_cpp = time.perf_counter() - start
    row, cpp_actions = play(policy, task_ids, env)
    same = sum(a == b for a, b in zip(hf_actions, cpp_actions))
    rows.append({"backend": "llama.cpp (Q4_1 base + LoRA)", "load_s": round(load_cpp, 1),
                 "same_actions_as_transformers": f"{same}/{len(task_ids)}", **row})
    print("| backend | load s | tokens/s | s/episode | calls/episode | mean reward |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['backend']} | {r['load_s']} | {r['tokens_per_s']} | {r['s_per_episode']} | "
              f"{r['calls_per_episode']} | {r['mean_reward']} |")
    print(f"llama.cpp episodes with the transformers episode's actions: {same}/{len(task_ids)}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(rows, fh, indent=2)


if __name__ == "__main__":
    main()
