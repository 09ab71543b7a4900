"""SFT records from an evaluation run's own episodes: the agent's solved tasks replayed.

A later training stage that learns new families tends to unlearn the ones an agent
already solves. Training on the agent's own well-paid episodes beside the new data is
meant to anchor what it does (self-distillation, as in rejection-sampling fine-tuning):
the loss on them is low from the start and rises only where the stage moves the agent
away from its own behaviour on those requests (tried once: see perf/RESULTS_train.md).

The episodes come from a finished ``knowgen eval`` run folder of the offline world
played on a training split (``--split train``); a run of a split held out for
measurement is refused, since training on it would measure nothing. Each sample's
trajectory becomes a chat record in the same form as
:func:`knowgen.agents.expert_data.generate_expert_data` writes, so
``knowgen train sft`` reads both alike.

Example:
    knowgen eval --policy transformers:path=agents/checkpoints/gen-searcher --split train \\
        --limit 60 --run-dir runs/own
    knowgen train data --from-run runs/own --out runs/own.jsonl
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from knowgen.agents.expert_data import compact_action, turns_to_messages
from knowgen.envs.trl_env import DEFAULT_SYSTEM_PROMPT, tool_schemas
from knowgen.errors import ConfigError, RunError
from knowgen.eval.rundir import read_samples

logger = logging.getLogger(__name__)

TRAINING_SPLIT = "train"
"""The world split whose runs may become training data (the others are held out)."""


def run_records(run_dir: str | Path, min_reward: float = 0.75, max_chars: int = 12000,
                system_prompt: str = DEFAULT_SYSTEM_PROMPT,
                ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The well-paid episodes of an evaluation run on a training split, as SFT records.

    Reads the samples a resume of the run would keep
    (:func:`knowgen.eval.rundir.read_samples`); lines a resume would set aside are named
    in a warning and left out. An episode is kept when its reward is at least
    ``min_reward``, the agent answered within its budget (no fallback generation) and its transcript is at most
    ``max_chars`` characters; actions are kept in the agent's own words, thinking
    included.

    Args:
        run_dir: Folder of a ``knowgen eval`` run of the offline world.
        min_reward: Episodes paid less are left out.
        max_chars: Episodes whose transcript is longer are left out.
        system_prompt: System message of every record.

    Returns:
        ``(records, stats)``; stats count read, kept and left-out samples by reason, and
        name the samples that could not be used.

    Raises:
        RunError: when the folder is not a readable run folder.
        ConfigError: for a run of another benchmark or of a held-out split, or for a
            ``min_reward`` that is not a number.
    """
    if not isinstance(min_reward, (int, float)) or not math.isfinite(min_reward):
        raise ConfigError(f"data.min_reward must be a finite number, got {min_reward!r}.")
    folder = Path(run_dir)
    meta, samples = _own_samples(folder)
    tools = json.dumps(tool_schemas(), ensure_ascii=False)
    records: list[dict[str, Any]] = []
    counts = {"low_reward": 0, "fallback": 0, "long": 0}
    unusable: list[str] = []
    policy = str(meta.get("policy"))
    for task_id, sample in samples.items():
        turns, problem = _turns(sample)
        if problem:
            unusable.append(f"{task_id}: {problem}")
            continue
        reward = float(sample["reward"])
        if sample.get("fallback_generation"):
            counts["fallback"] += 1
            continue
        if reward < min_reward:
            counts["low_reward"] += 1
            continue
        messages = turns_to_messages(sample["prompt"], turns, system_prompt)
        if sum(len(str(m.get("content", ""))) for m in messages) > max_chars:
            counts["long"] += 1
            continue
        records.append({"messages": messages, "tools": tools, "task_id": task_id,
                        "reward": reward, "expert": f"run:{policy}"})
    for line in unusable:
        logger.warning("A sample of %s cannot be replayed and is left out (%s)", folder, line)
    stats = {"read": len(samples), "kept": len(records), **counts,
             "unusable": len(unusable), "unusable_samples": unusable[:20]}
    logger.info("Replay data from %s: %s", folder, stats)
    return records, stats


def _check_split(folder: Path, meta: dict[str, Any]) -> None:
    benchmark = str(meta.get("benchmark", ""))
    split = str(meta.get("split", ""))
    if benchmark.split(":")[0] != "world":
        raise ConfigError(f"{folder} is a run of {benchmark!r}; replay data comes from runs "
                          "of the offline world ('knowgen eval --benchmark world --split "
                          "train').")
    if split != TRAINING_SPLIT:
        raise ConfigError(f"{folder} is a run of the {split!r} split, which is held out for "
                          "measurement: training on it would leave nothing to measure. "
                          "Evaluate the agent with '--split train' and replay that run.")


def _own_samples(folder: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The run's ``run.json`` and its samples, once its split is checked."""
    meta, own, problems = read_samples(folder)
    _check_split(folder, meta)
    if problems:
        shown = "; ".join(problems[:3])
        logger.warning("Left out %d line(s) of %s that are not samples (%s); 'knowgen eval "
                       "--resume %s' sets such lines aside and plays their tasks again.",
                       len(problems), folder / "samples.jsonl", shown, folder)
    if not own:
        raise RunError(f"{folder / 'samples.jsonl'} holds no finished sample of its run; "
                       f"finish the run with 'knowgen eval --resume {folder}' first.")
    return meta, own


def _turns(sample: dict[str, Any]) -> tuple[list[tuple[str, str]], str]:
    """The sample's ``(action, observation)`` turns, or why they cannot be used."""
    if not isinstance(sample.get("prompt"), str) or not sample["prompt"].strip():
        return [], "no request text"
    reward = sample.get("reward")
    if isinstance(reward, bool) or not isinstance(reward, (int, float)) \
            or not math.isfinite(reward):
        return [], f"reward {reward!r} is not a number"
    steps = sample.get("trajectory")
    if not isinstance(steps, list) or not steps:
        return [], "no trajectory"
    turns: list[tuple[str, str]] = []
    for number, step in enumerate(steps, 1):
        if not isinstance(step, dict) or not isinstance(step.get("action"), str) \
                or not isinstance(step.get("observation"), str):
            return [], f"step {number} lacks an action or observation text"
        turns.append((compact_action(step["action"], keep_think=True), step["observation"]))
    return turns, ""
