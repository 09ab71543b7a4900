"""Greedy rollouts of a trained checkpoint on a world split, with copy-skill measures.

The checkpoint is rendered exactly as at inference: the messages of
:func:`knowgen.envs.messages.build_messages` with the system prompt and tool
schemas of ``knowgen_agent.json``, the tokenizer's chat template, generation up
to ``<|im_end|>``; the decoded text is the action given to ``env.step``.

Besides the reward, it reports how often the model copied the required
entities' names into an ``image_search`` query and into the answer's prompt,
the skill a trained agent needs on entities it never saw.

Example:
    >>> summary = evaluate_checkpoint("runs/tiny/sft/final", split="test", limit=50)
"""

from __future__ import annotations

import json
import logging
import statistics
from pathlib import Path
from typing import Any

from knowgen.agents.tiny import load_tokenizer
from knowgen.config import EnvConfig
from knowgen.envs.messages import build_messages
from knowgen.envs.protocol import parse_action
from knowgen.errors import ConfigError

logger = logging.getLogger(__name__)


def load_agent(path: str | Path) -> tuple[Any, Any, dict[str, Any]]:
    """Model, tokenizer and ``knowgen_agent.json`` of a checkpoint folder.

    Raises:
        ConfigError: when the folder has no ``knowgen_agent.json``.
    """
    from transformers import AutoModelForCausalLM

    from knowgen.agents.train.sft import AGENT_FILE

    folder = Path(path)
    meta_path = folder / AGENT_FILE
    if not meta_path.is_file():
        raise ConfigError(f"{str(folder)!r} is not a knowgen checkpoint (no {AGENT_FILE}); "
                          "train one with `knowgen train sft`.")
    import torch

    # Full precision for CPU evaluation even when the checkpoint is stored in float16.
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
    model.eval()
    return model, load_tokenizer(folder), json.loads(meta_path.read_text(encoding="utf-8"))


def next_action(model: Any, tokenizer: Any, meta: dict[str, Any], request: str,
                turns: list[tuple[str, str]], max_new_tokens: int | None = None) -> str:
    """The model's next assistant turn (greedy), as text for ``env.step``."""
    import torch

    messages = build_messages(request, turns, fmt="hf", system=meta["system_prompt"])
    text = tokenizer.apply_chat_template(messages, tools=meta["tools"],
                                         add_generation_prompt=True, tokenize=False)
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    limit = max_new_tokens or meta["generation"]["max_new_tokens"]
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                             max_new_tokens=limit, do_sample=False,
                             eos_token_id=tokenizer.eos_token_id,
                             pad_token_id=tokenizer.pad_token_id)
    return tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


def rollout(model: Any, tokenizer: Any, meta: dict[str, Any], env: Any,
            task_id: str) -> dict[str, Any]:
    """Play one task; returns ``{"task_id", "reward", "turns", "info"}``."""
    env.reset(options={"task_id": task_id})
    request = env.task.prompt
    turns: list[tuple[str, str]] = []
    while True:
        action = next_action(model, tokenizer, meta, request, turns)
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
    from knowgen.envs.searchgen import SearchGenEnv

    model, tokenizer, meta = load_agent(path)
    env = SearchGenEnv(env_config or EnvConfig(split=split, top_k=3))
    tasks = env.tasks
    if limit and limit < len(tasks):
        tasks = [tasks[i * len(tasks) // limit] for i in range(limit)]
    rows = []
    for task in tasks:
        result = rollout(model, tokenizer, meta, env, task.id)
        rows.append({"reward": result["reward"],
                     **copy_measures(task, result["turns"], result["info"])})
    summary = {"tasks": len(rows),
               "mean_reward": round(statistics.fmean(r["reward"] for r in rows), 4)}
    for key in ("answered", "query_has_names", "answer_has_names"):
        summary[key] = round(sum(r[key] for r in rows) / len(rows), 4)
    logger.info("Evaluation of %s on %s: %s", path, split, summary)
    return summary
