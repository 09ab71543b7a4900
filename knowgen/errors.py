"""One exception class per kind of failure.

Every message says what went wrong and what to do about it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class KnowgenError(Exception):
    """Base class of every error knowgen raises on purpose."""


class ConfigError(KnowgenError, ValueError):
    """A configuration value, flag or YAML file is invalid."""


class UnknownNameError(KnowgenError, KeyError):
    """A registry was asked for a name it does not hold."""

    def __init__(self, kind: str, name: str, available: Iterable[str]):
        self.kind, self.name, self.available = kind, name, sorted(available)
        super().__init__(self._message())

    def _message(self) -> str:
        msg = f"Unknown {self.kind} {self.name!r}."
        close = difflib.get_close_matches(self.name, self.available, n=1)
        if close:
            msg += f" Did you mean {close[0]!r}?"
        return msg + f" Available: {', '.join(self.available) or '(none)'}."

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return self._message()


class MissingDependencyError(KnowgenError, ImportError):
    """An optional dependency is not installed."""

    def __init__(self, package: str, extra: str, feature: str):
        self.package, self.extra = package, extra
        super().__init__(
            f"{feature} needs the '{package}' package, which is not installed. "
            f"Install it with: pip install 'knowgen[{extra}]'"
        )


class ActionParseError(KnowgenError):
    """An agent's action could not be parsed (reported to the agent, never raised by step)."""


class ToolError(KnowgenError):
    """A tool call failed; the message becomes the agent's observation."""


class DataError(KnowgenError):
    """A data file (world, benchmark, results) is missing or malformed."""


class RunError(KnowgenError):
    """An evaluation run cannot start or resume."""


class SessionError(KnowgenError):
    """A served environment session cannot take the request (no episode running, or expired)."""
