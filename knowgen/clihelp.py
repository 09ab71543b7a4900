"""Help output of the ``knowgen`` command: plain text, defaults shown, errors at the right level.

* :class:`HelpFormatter` turns the reST markup that option help borrows from
  docstrings (````code````, ``:mod:`x```) into plain text, and appends
  ``(default: X)`` to every option whose help does not already give it.
* :class:`Parser` uses that formatter for itself and for every sub-command
  parser created under it, and reports an unknown flag with the usage of the
  sub-command that was typed (and a "Did you mean" suggestion), not the usage of
  the top-level command.
"""

from __future__ import annotations

import argparse
import difflib
import re
from collections.abc import Sequence
from typing import Any

_ROLE = re.compile(r":[a-z]+:`(~?)([^`]+)`")
_LITERAL = re.compile(r"``([^`]+)``")
_TITLE = re.compile(r"`([^`]+)`")


def plain(text: str) -> str:
    """``text`` without reST inline markup: ````x```` and ``:role:`x``` become ``x``."""
    # :class:`~a.b.C` shows C (the tilde asks for the last part), :mod:`a.b` shows a.b
    text = _ROLE.sub(lambda m: m.group(2).rsplit(".", 1)[-1] if m.group(1) else m.group(2), text)
    text = _LITERAL.sub(r"\1", text)
    return _TITLE.sub(r"\1", text)


class HelpFormatter(argparse.HelpFormatter):
    """Plain-text help with every option's default shown."""

    def _format_text(self, text: str) -> str:
        return super()._format_text(plain(text))

    def _expand_help(self, action: argparse.Action) -> str:
        return plain(super()._expand_help(action))

    def _get_help_string(self, action: argparse.Action) -> str:
        help_text = action.help or ""
        if "default" in help_text.lower() or not action.option_strings:
            return help_text
        default = action.default
        if default is argparse.SUPPRESS or default is None or isinstance(default, bool):
            return help_text
        if action.nargs == 0:
            return help_text
        return f"{help_text} (default: %(default)s)" if help_text else "(default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose sub-command parsers share its formatter and error handling."""

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def parse_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                   namespace: argparse.Namespace | None = None) -> argparse.Namespace:
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            target = self._innermost(parsed)
            hint = target._suggest(extras)
            target.error(f"unrecognized arguments: {' '.join(extras)}{hint}")
        return parsed

    def _innermost(self, parsed: argparse.Namespace) -> argparse.ArgumentParser:
        """The deepest sub-command parser that ``parsed`` selected."""
        current: argparse.ArgumentParser = self
        while True:
            subs = [a for a in current._actions if isinstance(a, argparse._SubParsersAction)]
            chosen = None
            for action in subs:
                name = getattr(parsed, action.dest, None) if action.dest else None
                if isinstance(name, str) and name in action.choices:
                    chosen = action.choices[name]
            if chosen is None:
                return current
            current = chosen

    def _suggest(self, extras: list[str]) -> str:
        flags = [s for a in self._actions for s in a.option_strings]
        for extra in extras:
            if extra.startswith("-"):
                close = difflib.get_close_matches(extra.split("=", 1)[0], flags, n=1)
                if close:
                    return f". Did you mean {close[0]}?"
        return ""
