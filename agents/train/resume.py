"""Resuming a training stage from its last checkpoint, also to a longer run.

A CPU trains in stages: a run stops after its checkpoint and goes on later with
``resume`` set and, often, a larger ``max_steps``. The Trainer restores the
optimizer's learning rate as it was when the checkpoint was written, which for a
run that had finished its schedule is 0; the scheduler recomputes it only after
the next step. :func:`keep_schedule_on_resume` sets the rate the restored
schedule gives at the restored step before the first step instead.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def last_checkpoint(out_dir: Path) -> str | None:
    """The newest ``checkpoint-N`` folder under ``out_dir``, or None."""
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(out_dir)) if out_dir.is_dir() else None


def scheduled_rates(optimizer: Any, scheduler: Any) -> list[float] | None:
    """Each parameter group's rate under ``scheduler`` at its current step, or None when
    the scheduler is not a per-step multiplier of the base rates (``LambdaLR``)."""
    lambdas = getattr(scheduler, "lr_lambdas", None)
    base = getattr(scheduler, "base_lrs", None)
    if not lambdas or not base or len(lambdas) != len(optimizer.param_groups):
        return None
    return [rate * fn(scheduler.last_epoch) for rate, fn in zip(base, lambdas)]


def keep_schedule_on_resume(trainer: Any) -> Any:
    """Make ``trainer`` start a resumed run at the scheduled rate of the restored step.

    The rate is the one the schedule of *this* run (its ``max_steps``) gives at the
    restored step, so a run extended past the ``max_steps`` it was saved with does not
    spend its first extra step at the rate 0 it ended on. A fresh run, or a resume with
    the same schedule, is unchanged. Returns ``trainer``.
    """
    from transformers import TrainerCallback

    class ScheduleOnResume(TrainerCallback):
        """Set the optimizer's rates from the schedule before the first resumed step."""

        def on_train_begin(self, args: Any, state: Any, control: Any, optimizer: Any = None,
                           lr_scheduler: Any = None, **kwargs: Any) -> None:
            if not state.global_step or optimizer is None or lr_scheduler is None:
                return
            rates = scheduled_rates(optimizer, lr_scheduler)
            if rates is None:
                return
            before = [group["lr"] for group in optimizer.param_groups]
            for group, rate in zip(optimizer.param_groups, rates):
                group["lr"] = rate
            lr_scheduler._last_lr = list(rates)
            if before != rates:
                logger.info("Resumed at step %d: learning rate %s (the checkpoint had %s).",
                            state.global_step, rates, before)

    trainer.add_callback(ScheduleOnResume())
    return trainer
