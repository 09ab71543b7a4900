"""One switch for the progress bars that library code draws on its own.

A command's ``--no-progress`` (or ``run_eval(progress=False)``) hides the bars of the
work it runs, including those of parts it does not call directly, such as a benchmark
rendering its ground-truth images on first use. Such parts ask :func:`progress_enabled`.

Example:
    >>> with progress_bars(False):
    ...     progress_enabled()
    False
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_ENABLED: ContextVar[bool] = ContextVar("knowgen_progress", default=True)


def progress_enabled() -> bool:
    """Whether progress bars may show here: False inside ``progress_bars(False)``."""
    return _ENABLED.get()


@contextmanager
def progress_bars(enabled: bool) -> Iterator[None]:
    """Show or hide the bars drawn inside the ``with`` block; the innermost block wins."""
    token = _ENABLED.set(enabled)
    try:
        yield
    finally:
        _ENABLED.reset(token)
