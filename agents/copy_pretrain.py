"""Copy pre-training: teach a model built from scratch to repeat what its context holds.

An agent must carry names from a search result into its next query and into
its answer. A small transformer trained from scratch on a few thousand agent
transcripts learns the protocol but, in the few hundred optimiser steps a CPU
affords, not the attention circuit that copies ("induction heads": find the
earlier occurrence of the current token, predict the token that followed it).
That circuit forms far sooner on a synthetic task where nothing but copying
lowers the loss: random token spans that recur later in the same sequence.

:func:`copy_batch` builds such sequences from a tokenizer's ordinary tokens;
:func:`pretrain_copying` trains on them with a plain PyTorch loop before SFT,
and :func:`copy_accuracy` measures how well a model copies (greedy next-token
accuracy on the repeated spans, after the first token of each span).

Example:
    >>> stats = pretrain_copying(model, token_ids=list(range(10, 1000)), steps=300)
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from knowgen.errors import ConfigError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CopyTask:
    """Shape of the synthetic copying sequences.

    Attributes:
        length: Tokens per sequence.
        span_min: Shortest repeated span.
        span_max: Longest repeated span.
    """

    length: int = 128
    span_min: int = 2
    span_max: int = 8


def copy_sequence(rng: random.Random, token_ids: Sequence[int],
                  task: CopyTask) -> tuple[list[int], list[int]]:
    """One sequence of random tokens in which earlier spans recur, and its loss mask.

    The sequence is filled left to right: with probability one half (once there
    is something to repeat) a span already written is copied, otherwise a fresh
    random span is drawn. The mask is 1 on the tokens of copied spans after their
    first one (the first token of a copy cannot be predicted; the rest can).
    """
    ids: list[int] = []
    mask: list[int] = []
    while len(ids) < task.length:
        span = rng.randint(task.span_min, task.span_max)
        if len(ids) >= task.span_max and rng.random() < 0.5:
            start = rng.randrange(0, len(ids) - span + 1)
            piece = ids[start:start + span]
            ids.extend(piece)
            mask.extend([0] + [1] * (len(piece) - 1))
        else:
            ids.extend(rng.choice(token_ids) for _ in range(span))
            mask.extend([0] * span)
    return ids[: task.length], mask[: task.length]


def copy_batch(rng: random.Random, token_ids: Sequence[int], batch: int,
               task: CopyTask) -> tuple[Any, Any]:
    """``(input_ids, labels)`` tensors; labels are -100 where nothing can be predicted."""
    import torch

    rows = [copy_sequence(rng, token_ids, task) for _ in range(batch)]
    ids = torch.tensor([r[0] for r in rows], dtype=torch.long)
    mask = torch.tensor([r[1] for r in rows], dtype=torch.bool)
    labels = ids.masked_fill(~mask, -100)
    return ids, labels


def copy_accuracy(model: Any, token_ids: Sequence[int], task: CopyTask = CopyTask(),
                  batches: int = 4, batch: int = 16, seed: int = 12345) -> float:
    """Greedy next-token accuracy of ``model`` on the predictable tokens of copied spans."""
    import torch

    rng = random.Random(seed)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    right = total = 0
    with torch.no_grad():
        for _ in range(batches):
            ids, labels = copy_batch(rng, token_ids, batch, task)
            logits = model(input_ids=ids.to(device)).logits[:, :-1]
            target = labels[:, 1:].to(device)
            keep = target != -100
            right += int((logits.argmax(-1) == target)[keep].sum())
            total += int(keep.sum())
    model.train(was_training)
    return right / total if total else 0.0


def ordinary_token_ids(tokenizer: Any) -> list[int]:
    """Ids of the tokenizer's ordinary tokens (special and markup tokens left out)."""
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    added = set(getattr(tokenizer, "added_tokens_decoder", {}) or {})
    return [i for i in range(len(tokenizer)) if i not in special and i not in added]


def pretrain_copying(model: Any, token_ids: Sequence[int], steps: int = 300, batch: int = 32,
                     task: CopyTask = CopyTask(), learning_rate: float = 1e-3,
                     warmup: int = 20, seed: int = 0, log_every: int = 50,
                     eval_every: int = 0) -> dict[str, Any]:
    """Train ``model`` in place on synthetic copying for ``steps`` optimiser steps.

    Args:
        model: A causal LM (``model(input_ids=..., labels=...)`` returns a loss).
        token_ids: Token ids the random spans are drawn from.
        steps: Optimiser steps (0 does nothing).
        batch: Sequences per step.
        task: Sequence length and span lengths.
        learning_rate: Peak AdamW learning rate (linear warm-up, cosine decay).
        warmup: Warm-up steps.
        seed: Seed of the synthetic data.
        log_every: Log the loss every N steps.
        eval_every: Measure the copy accuracy every N steps (0: only before and after).

    Returns:
        ``{"steps", "loss_first", "loss_last", "copy_accuracy_before", "copy_accuracy_after",
        "curve"}``; ``curve`` lists ``[step, loss, copy accuracy]`` at each measurement.

    Raises:
        ConfigError: for a negative step count or fewer than two token ids.
    """
    import torch
    from tqdm.auto import tqdm

    from knowgen.agents.train.progress import bars_enabled

    if steps < 0:
        raise ConfigError(f"copy pre-training steps must be >= 0, got {steps}.")
    if len(token_ids) < 2:
        raise ConfigError("copy pre-training needs at least two token ids to draw from.")
    before = copy_accuracy(model, token_ids, task)
    if steps == 0:
        return {"steps": 0, "copy_accuracy_before": before, "copy_accuracy_after": before}
    device = next(model.parameters()).device
    rng = random.Random(seed)
    optimiser = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.01)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, schedule)
    model.train()
    losses: list[float] = []
    curve: list[list[float]] = []
    for step in tqdm(range(steps), desc="copy pre-training", unit="step", leave=False,
                     disable=not bars_enabled()):
        ids, labels = copy_batch(rng, token_ids, batch, task)
        loss = model(input_ids=ids.to(device), labels=labels.to(device)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        scheduler.step()
        optimiser.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        if log_every and (step + 1) % log_every == 0:
            logger.info("copy pre-training step %d/%d: loss %.3f", step + 1, steps, losses[-1])
        if eval_every and (step + 1) % eval_every == 0 and step + 1 < steps:
            accuracy = copy_accuracy(model, token_ids, task)
            curve.append([step + 1, round(losses[-1], 4), round(accuracy, 4)])
            logger.info("copy pre-training step %d: copy accuracy %.3f", step + 1, accuracy)
    after = copy_accuracy(model, token_ids, task)
    logger.info("Copy accuracy %.3f -> %.3f after %d steps", before, after, steps)
    return {"steps": steps, "loss_first": losses[0], "loss_last": losses[-1],
            "copy_accuracy_before": round(before, 4), "copy_accuracy_after": round(after, 4),
            "curve": curve + [[steps, round(losses[-1], 4), round(after, 4)]]}
