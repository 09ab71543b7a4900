"""Greedy rollouts of a trained checkpoint on a world split, with copy-skill measures.

The checkpoint plays through the agent that ``--policy transformers:path=DIR``
builds (:func:`knowgen.agents.policy.transformers_policy`), so it sees its
system prompt, tool schemas and context view exactly as at inference; decoding
is greedy.

Besides the reward, it reports how often the model copied the required
entities' names into an ``image_search`` query and into the answer's prompt,
the skill a trained agent needs on entities it never saw.

Example:
    >>> summary = evaluate_checkpoint("runs/tiny/sft/final", split="test", limit=50)
"""

from __future__ import annotations

import logging
import statistics
from pathlib import Path
from typing import Any

from knowgen.config import EnvConfig
from knowgen.envs.protocol import parse_action

logger = logging.getLogger(__name__)


def rollout(agent: Any, env: Any, task_id: str) -> dict[str, Any]:
    """Play one task with ``agent``; returns ``{"task_id", "reward", "turns", "info"}``."""
    obs, info = env.reset(options={"task_id": task_id})
    agent.reset(obs, info)
    turns: list[tuple[str, str]] = []
    while True:
        action = agent.act(obs, info)
        obs, reward, terminated, truncated, info = env.step(action)
        turns.append((action, obs))
        if terminated or truncated:
            return {"task_id": task_id, "reward": float(reward), "turns": turns, "info": info}


def copy_measures(task: Any, turns: list[tuple[str, str]], info: dict[str, Any]) -> dict:
    """Did the entity names reach an image_search query, and the answer's prompt?"""
    names = [e.name.casefold() for e in (task.facts.entities if task.facts else ())]
    queries = []
    for action, _ in turns:
        parsed = parse_action(action)
        if parsed.kind == "tool" and parsed.tool_call and parsed.tool_call.name == "image_search":
            queries.append(parsed.tool_call.arguments["query"].casefold())
    prompt = ((info.get("answer") or {}).get("gen_prompt") or "").casefold()
    return {
        "query_has_names": bool(names) and all(any(n in q for q in queries) for n in names),
        "answer_has_names": bool(names) and all(n in prompt for n in names),
        "answered": info.get("answer") is not None,
    }


def evaluate_checkpoint(path: str | Path, split: str = "test", limit: int | None = 50,
                        env_config: EnvConfig | None = None) -> dict[str, Any]:
    """Roll the checkpoint out greedily on a split and summarise.

    Args:
        path: Checkpoint folder (with ``knowgen_agent.json``).
        split: World split (``test`` holds entities unseen in training).
        limit: Tasks spread evenly over the split (all when None).
        env_config: Environment settings (``top_k=3`` as in training by default).

    Returns:
        ``{"tasks", "mean_reward", "answer_rate", "query_has_names", "answer_has_names"}``.
    """
    from knowgen.agents.policy import transformers_policy
    from knowgen.envs.searchgen import SearchGenEnv

    agent = transformers_policy(str(path), device="cpu", do_sample=False)
    env = SearchGenEnv(env_config or EnvConfig(split=split, top_k=3))
    tasks = env.tasks
    if limit and limit < len(tasks):
        tasks = [tasks[i * len(tasks) // limit] for i in range(limit)]
    rows = []
    for task in tasks:
        result = rollout(agent, env, task.id)
        rows.append({"reward": result["reward"],
                     **copy_measures(task, result["turns"], result["info"])})
    summary = {"tasks": len(rows),
               "mean_reward": round(statistics.fmean(r["reward"] for r in rows), 4)}
    for key in ("answered", "query_has_names", "answer_has_names"):
        summary[key] = round(sum(r[key] for r in rows) / len(rows), 4)
    logger.info("Evaluation of %s on %s: %s", path, split, summary)
    return summary
