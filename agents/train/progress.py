"""What training prints: one progress bar per stage, or none; no warnings a user cannot act on.

* :func:`training_output` wraps a ``knowgen train`` command. It hides the
  dataset-preparation and shard-writing bars of ``datasets``/``transformers``
  (internal steps of a few milliseconds each), silences the deprecation
  warnings that TRL's own calls into ``transformers`` raise (``gradient_checkpointing``
  renamed to ``activation_checkpointing``: nothing in a knowgen config can change
  them), and with ``progress=False`` turns every progress bar off, knowgen's
  included (:func:`bars_enabled`).
* :func:`use_stage_progress` replaces the Trainer's progress callback, which
  re-prints its bar with every logged metrics dict, by one bar per stage whose
  postfix shows the loss; the metrics go to the log (``-v`` shows them).
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from typing import Any

logger = logging.getLogger(__name__)

#: Deprecations raised inside TRL / transformers, not by anything a knowgen config sets.
_LIBRARY_DEPRECATIONS = r"`(is_)?gradient_checkpointing\w*` is deprecated"
#: Notices the transformers Trainer logs about its own internals (metrics TRL reports as
#: None for tensorboard, checkpoint ordering on some filesystems): nothing to act on.
_LIBRARY_NOTICES = ('Trainer is attempting to log a value of "None"',
                    "mtime may not be reliable on this filesystem")
_state = {"bars": True}


class _DropNotices(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(_LIBRARY_NOTICES)


def bars_enabled() -> bool:
    """Whether training code shows progress bars (false inside ``training_output(False)``)."""
    return _state["bars"]


@contextlib.contextmanager
def training_output(progress: bool = True) -> Iterator[None]:
    """Tidy the output of one training command (see the module docstring)."""
    saved = _state["bars"]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_LIBRARY_DEPRECATIONS, category=FutureWarning)
        _library_bars(enabled=False)
        _state["bars"] = bool(progress)
        handlers = logging.getLogger("transformers").handlers
        notices = _DropNotices()
        for handler in handlers:
            handler.addFilter(notices)
        try:
            yield
        finally:
            _state["bars"] = saved
            _library_bars(enabled=True)
            for handler in handlers:
                handler.removeFilter(notices)


def _library_bars(enabled: bool) -> None:
    try:
        import datasets
        from transformers.utils import logging as hf_logging
    except ImportError:  # the train extra is checked before any training starts
        return
    if enabled:
        datasets.enable_progress_bars()
        hf_logging.enable_progress_bar()
    else:
        datasets.disable_progress_bars()
        hf_logging.disable_progress_bar()


def use_stage_progress(trainer: Any, desc: str) -> Any:
    """Give ``trainer`` one progress bar named ``desc`` instead of the Trainer's own."""
    from tqdm.auto import tqdm
    from transformers import ProgressCallback, TrainerCallback

    class StageProgress(TrainerCallback):
        """One bar per training stage; the loss in its postfix, metrics in the log."""

        def __init__(self) -> None:
            self.bar: Any = None

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.is_world_process_zero and bars_enabled():
                self.bar = tqdm(total=state.max_steps, desc=desc, unit="step", leave=False,
                                initial=state.global_step)

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.bar is not None:
                self.bar.update(state.global_step - self.bar.n)

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None,
                   **kwargs: Any) -> None:
            if not state.is_world_process_zero or not logs:
                return
            logger.info("%s step %d: %s", desc, state.global_step, logs)
            if self.bar is not None and "loss" in logs:
                self.bar.set_postfix(loss=logs["loss"], refresh=False)

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.bar is not None:
                self.bar.close()
                self.bar = None

    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(StageProgress())
    return trainer
