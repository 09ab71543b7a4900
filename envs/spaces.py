"""Gymnasium spaces for free-form text."""

from __future__ import annotations

from typing import Any

from gymnasium.spaces import Text


class UnicodeText(Text):
    """A :class:`gymnasium.spaces.Text` that holds any unicode string up to ``max_length``.

    Gymnasium's ``Text`` only contains strings drawn from its charset. Observations
    of :class:`~knowgen.envs.searchgen.SearchGenEnv` are arbitrary text (page
    excerpts, names with accents, JSON), so membership here checks only the type
    and the length. Sampling still draws from the (alphanumeric) charset, which is
    a subset of the space.

    Args:
        max_length: Longest string in the space (characters).
        min_length: Shortest string in the space (characters).
        seed: Seed of the space's sampler.

    Example:
        >>> space = UnicodeText(100)
        >>> space.contains("Côte d'Ivoire — <tool_response>")
        True
    """

    def __init__(self, max_length: int, *, min_length: int = 0, seed: Any = None):
        super().__init__(max_length, min_length=min_length, seed=seed)

    def contains(self, x: Any) -> bool:
        """True for any ``str`` whose length lies within the bounds."""
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length

    @property
    def is_np_flattenable(self) -> bool:
        """Arbitrary unicode cannot be mapped onto the charset's indices."""
        return False

    def __repr__(self) -> str:
        return f"UnicodeText({self.min_length}, {self.max_length})"

    def __eq__(self, other: object, /) -> bool:
        return (
            isinstance(other, UnicodeText)
            and self.min_length == other.min_length
            and self.max_length == other.max_length
        )
