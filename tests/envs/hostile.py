"""Values whose methods raise, for hardening tests and ``perf/fuzz_probe.py``.

A parser that touches one of these in a way it should not (``repr``, ``==``, ``len``,
``strip``, ``deepcopy``) raises instead of quietly going on, so a test can show that the
environment turns such an action into an invalid turn rather than a crash.
"""


class Hostile:
    """An object whose every method a parser might call raises."""

    def __repr__(self):
        raise RuntimeError("repr")

    __str__ = __repr__

    def __eq__(self, other):
        raise RuntimeError("eq")

    __hash__ = object.__hash__

    def __deepcopy__(self, memo):
        raise RuntimeError("deepcopy")


class EvilStr(str):
    """A string whose length and ``strip`` raise."""

    def strip(self, *args):
        raise RuntimeError("strip")

    def __len__(self):
        raise RuntimeError("len")
