"""Write your own policy: one image search for the request, then an answer citing the top image.

Any object with ``reset(obs, info)`` and ``act(obs, info) -> str`` is a policy.
Run: python examples/custom_policy.py
"""

from __future__ import annotations

import json

import gymnasium as gym

import knowgen  # noqa: F401  (registers knowgen/SearchGen-v0)
from knowgen.envs.protocol import format_answer, format_tool_call
from knowgen.reference_policies.common import request_of
from knowgen.types import Answer, ReferenceImage


class SearchOnceThenAnswer:
    """Searches images with the request's own words once, then draws with the first hit."""

    name = "search-once"

    def reset(self, obs: str, info: dict) -> None:
        self.request = request_of(obs)  # the user's request inside the first observation

    def act(self, obs: str, info: dict) -> str:
        if info["tool_calls_used"] == 0 and info["turns_left"] > 1:
            return format_tool_call("image_search", {"query": self.request[:200]},
                                    think="Find a picture matching the request.")
        refs = tuple(ReferenceImage(i, "the main subject") for i in info["image_ids"][:1])
        return format_answer(Answer(gen_prompt=self.request, reference_images=refs),
                             think="Draw the request with the picture I found.")


def main(episodes: int = 3, **env_kwargs) -> list[dict]:
    env = gym.make("knowgen/SearchGen-v0", split="test", **env_kwargs)
    policy = SearchOnceThenAnswer()
    results = []
    for index in range(episodes):
        obs, info = env.reset(seed=0, options={"task_index": index})
        policy.reset(obs, info)
        done = False
        while not done:
            obs, reward, terminated, truncated, info = env.step(policy.act(obs, info))
            done = terminated or truncated
        results.append({"task_id": info["task_id"], "reward": reward, "turns": info["turn"],
                        "references": [r["img_id"] for r in info["references"]],
                        "terms": info["reward_terms"]})
        print(json.dumps(results[-1]))
    env.close()
    return results


if __name__ == "__main__":
    main()
