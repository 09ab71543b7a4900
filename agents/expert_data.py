"""SFT data from expert policies: episodes run through SearchGenEnv, kept when well paid.

An expert (``scripted`` or ``oracle``) plays tasks of the world's train split;
episodes whose reward reaches a threshold become chat records
``{"messages": [...], "tools": "<json>", "task_id": ..., "reward": ...}``:
system prompt, the user's request, assistant turns with Qwen3 ``tool_calls`` and
``tool`` messages holding the tool results (context, not targets), and a final
assistant turn ``<answer>{json}</answer>``. Each assistant turn carries a short
``<think>`` so that every turn renders the same way under training and
inference templates. Tool calls omit ``top_k``: the environment's default (3
here) keeps transcripts short enough for a tiny model on a CPU.

Example:
    >>> records, stats = generate_expert_data(ExpertDataConfig(limit=20))
"""

from __future__ import annotations

import json
import logging
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from knowgen.envs.messages import build_messages
from knowgen.envs.privileged import bind_policy
from knowgen.envs.protocol import IMG_ID_PATTERN, format_answer, format_tool_call, parse_action
from knowgen.envs.trl_env import DEFAULT_SYSTEM_PROMPT, tool_schemas
from knowgen.errors import ConfigError
from knowgen.fileio import atomic_write_text

logger = logging.getLogger(__name__)

THINK = {
    "search": "Search for the clues.",
    "browse": "Read the page.",
    "image_search": "Find the official image.",
    "fetch_image": "Load the image.",
    "answer": "Answer with the references.",
}
"""The expert's short reasoning per kind of turn."""

EXPERTS = ("scripted", "oracle", "guided")

#: Experts whose own ``<think>`` states what they read; their thoughts are kept.
REASONING_EXPERTS = ("guided",)


@dataclass
class ExpertDataConfig:
    """Settings of the expert data generator."""

    expert: str = "scripted"
    """Expert policy: ``scripted`` (searches like an agent), ``oracle`` (knows the answer)
    or ``guided`` (knows which clues matter, searches for them and says what it read)."""

    split: str = "train"
    """World split whose tasks are played (never the test split for training data)."""

    benchmark: str = "world"
    """Benchmark spec of the environment."""

    caps: bool = True
    """``scripted`` only: write banner names in capitals itself (``"ALBANIA"``); False
    copies them as the sources spell them and asks the generator for capital letters,
    which a small model trained from scratch can learn (copying, not upper-casing)."""

    plan_caption: bool = False
    """``guided`` only: plan the caption in the first ``<think>`` and spell it in the last,
    copying a quoted caption as quoted (tried once: the model trained on it scored lower
    on ``test-ood``; see perf/RESULTS_train.md)."""

    copy_quotes: bool = False
    """``guided`` only: write a caption the request quotes exactly as quoted. Without it a
    quote that is the entity's name in capitals ("ANDORRA") is written as the sources spell
    the name ("Andorra"): 442 of the 793 quoted captions of the smollm2 preset's transcripts,
    which teaches the model that a quote is not always copied."""

    count_subjects: bool = False
    """``guided`` only: count the pictures the request asks for in the first ``<think>`` and
    number each image search ("Next, flag 1 of 2: ..."). The model trained without it
    answers two- and three-picture requests after the first picture (tried with
    ``copy_quotes``: counting was not learnt and the clue families were lost; see
    perf/RESULTS_train.md)."""

    count_several: bool = False
    """``guided`` only: count and number the pictures of requests for more than one, said at
    the first image search once the clues are settled; one-picture transcripts are left as
    they are (the count stood before the clue search in ``count_subjects`` transcripts)."""

    top_k: int = 3
    """Results per search and image search (small keeps transcripts short)."""

    min_reward: float = 0.75
    """Episodes paid less than this are dropped."""

    limit: int | None = None
    """Play only the first N tasks of the split (all when unset)."""

    max_chars: int = 12000
    """Drop episodes whose transcript is longer than this many characters."""

    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    """System message of every record."""

    env_overrides: dict[str, Any] = field(default_factory=dict)
    """Further :class:`~knowgen.config.EnvConfig` fields for the environment."""


def _make_expert(config: ExpertDataConfig) -> Any:
    name = config.expert
    if name == "scripted":
        from knowgen.reference_policies.scripted import ScriptedPolicy

        return ScriptedPolicy(caps=config.caps)
    if name == "oracle":
        from knowgen.reference_policies.oracle import OraclePolicy

        return OraclePolicy()
    if name == "guided":
        from knowgen.reference_policies.guided import GuidedPolicy

        return GuidedPolicy(plan_caption=config.plan_caption, copy_quotes=config.copy_quotes,
                            count_subjects=config.count_subjects,
                            count_several=config.count_several)
    raise ConfigError(f"Unknown expert {name!r}; use one of {', '.join(EXPERTS)}.")


def compact_action(action: str, keep_think: bool = False) -> str:
    """Rewrite an expert action in the trained format: short think, no ``top_k``.

    Args:
        action: The expert's action.
        keep_think: Keep the expert's own ``<think>`` text (when it has one) instead of
            the generic one of :data:`THINK`.

    Invalid actions are returned unchanged.
    """
    parsed = parse_action(action, known_image_ids=_ids_in(action))
    if parsed.kind == "tool" and parsed.tool_call is not None:
        args = {k: v for k, v in parsed.tool_call.arguments.items() if k != "top_k"}
        think = parsed.think if keep_think and parsed.think else THINK[parsed.tool_call.name]
        return format_tool_call(parsed.tool_call.name, args, think=think)
    if parsed.kind == "answer" and parsed.answer is not None:
        think = parsed.think if keep_think and parsed.think else THINK["answer"]
        return format_answer(parsed.answer, think=think)
    return action


def _ids_in(action: str) -> list[str]:
    """Image ids cited in ``action`` (the environment checks them, not this rewrite)."""
    return [f"IMG_{m.group(1)}" for m in IMG_ID_PATTERN.finditer(action)]


def play_episode(env: Any, policy: Any, task_id: str) -> dict[str, Any]:
    """Play one task with ``policy`` (actions compacted) and return its record parts.

    Returns:
        ``{"task_id", "request", "turns": [(action, observation)], "reward", "info"}``.
    """
    bind_policy(policy, env)
    obs, info = env.reset(options={"task_id": task_id})
    policy.reset(obs, info)
    keep_think = getattr(policy, "name", "") in REASONING_EXPERTS
    turns: list[tuple[str, str]] = []
    reward, done = 0.0, False
    while not done:
        action = compact_action(policy.act(obs, info), keep_think=keep_think)
        obs, reward, terminated, truncated, info = env.step(action)
        turns.append((action, obs))
        done = terminated or truncated
    return {"task_id": task_id, "request": env.task.prompt, "turns": turns,
            "reward": float(reward), "info": info}


def turns_to_messages(request: str, turns: list[tuple[str, str]],
                      system: str | None = DEFAULT_SYSTEM_PROMPT,
                      parse: Any = None) -> list[dict[str, Any]]:
    """Chat messages (Hugging Face / TRL form) of an episode, for a ``datasets`` table.

    The messages are those of :func:`knowgen.envs.messages.build_messages`, except
    that tool-call arguments are JSON strings (which the chat template renders
    exactly as it renders a dict) so that records of different tools share one
    Arrow schema. ``parse`` is passed to ``build_messages`` (for transcripts whose tool
    results list image ids in another layout).
    """
    messages = build_messages(request, turns, fmt="hf", system=system, parse=parse)
    for message in messages:
        for call in message.get("tool_calls") or []:
            fn = call["function"]
            if not isinstance(fn["arguments"], str):
                fn["arguments"] = json.dumps(fn["arguments"], ensure_ascii=False)
    return messages


def generate_expert_data(config: ExpertDataConfig, executor: str = "local"
                         ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Play the split with the expert and keep the well-paid episodes as chat records.

    Args:
        config: The generator's settings.
        executor: ``local`` (this process) or ``ray[:key=value,...]`` (episodes in
            parallel on Ray actors; the same records in the same order).

    Returns:
        ``(records, stats)``; stats count played, kept and dropped episodes and
        describe transcript lengths in characters.

    Raises:
        ConfigError: for an unknown expert, an environment setting or an executor option.
        MissingDependencyError: for ``ray`` when Ray is not installed.
    """
    from knowgen.agents.expert_workers import play_tasks

    tools = json.dumps(tool_schemas(), ensure_ascii=False)
    records, rewards, dropped_long = [], [], 0
    for episode in play_tasks(config, executor):
        rewards.append(episode["reward"])
        if episode["reward"] < config.min_reward:
            continue
        messages = turns_to_messages(episode["request"], episode["turns"], config.system_prompt)
        if sum(len(str(m.get("content", ""))) for m in messages) > config.max_chars:
            dropped_long += 1
            continue
        records.append({"messages": messages, "tools": tools, "task_id": episode["task_id"],
                        "reward": episode["reward"], "expert": config.expert})
    stats = _stats(records, rewards, dropped_long)
    logger.info("Expert data: %s", stats)
    return records, stats


def _progress(items: list[Any], desc: str) -> Any:
    from tqdm.auto import tqdm

    from knowgen.agents.train.progress import bars_enabled

    return tqdm(items, desc=desc, unit="task", leave=False, disable=not bars_enabled())


def _stats(records: list[dict[str, Any]], rewards: list[float], dropped_long: int) -> dict:
    chars = [sum(len(str(m.get("content", ""))) for m in r["messages"]) for r in records]
    turns = [sum(1 for m in r["messages"] if m["role"] == "assistant") for r in records]
    return {
        "played": len(rewards), "kept": len(records), "dropped_long": dropped_long,
        "mean_reward_played": round(statistics.fmean(rewards), 4) if rewards else 0.0,
        "chars_mean": round(statistics.fmean(chars), 1) if chars else 0.0,
        "chars_max": max(chars, default=0),
        "assistant_turns_mean": round(statistics.fmean(turns), 2) if turns else 0.0,
    }


def write_jsonl(records: list[dict[str, Any]], path: str | Path) -> Path:
    """Write records as JSON lines (atomically)."""
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, text)
    return out


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read records written by :func:`write_jsonl`.

    Raises:
        ConfigError: when the file is missing or a line is not a JSON object with messages.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"SFT data file {str(p)!r} does not exist; make it with "
                          "`knowgen train data --out FILE`.")
    records = []
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{p}:{n} is not valid JSON ({exc.msg}).") from exc
        if not isinstance(record, dict) or not isinstance(record.get("messages"), list):
            raise ConfigError(f"{p}:{n} must be an object with a 'messages' list.")
        records.append(record)
    return records
