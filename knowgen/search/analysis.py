"""Text analysis of the local search: the terms every indexed or queried text becomes.

A text is NFKD-decomposed with accents dropped, case-folded and split on anything
that is not a letter or a digit, except that a code written with its sign (``.ar``,
``+66``) is kept whole as well; American spellings map to British ones and plurals
are stripped. A hex colour such as ``#FF9900`` becomes the term ``ff9900`` on both
sides and weighs more than plain words in a query. :mod:`knowgen.search.index`
indexes and ranks with these terms.
"""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata
from collections.abc import Iterator

#: Longest query, in tokens; the rest is ignored.
MAX_QUERY_TOKENS = 48
#: Weight of a hex colour code in a query.
HEX_WEIGHT = 3.0
#: Query words that carry no meaning for retrieval.
STOP_WORDS = frozenset({
    "a", "an", "the", "of", "in", "on", "at", "to", "for", "with", "by", "from", "and", "or",
    "is", "are", "was", "were", "be", "been", "its", "it", "whose", "which", "what", "who",
    "whom", "that", "this", "these", "those", "as", "into", "about", "has", "have",
})

#: A word, or a code written with its sign and standing on its own: a dot-label
#: (``.ar``, ``.NET``) or a plus-number (``+66``), with a space, a bracket, a quote or
#: nothing before it. Host names (``sponsor.example.com``) and sums (``2+2``) do not count.
_WORD_RE = re.compile(r"(?<![^\s(\[\"'\u201c\u2018])(?:\.[^\W_]+|\+\d+)|[^\W_]+")
_HEX_RE = re.compile(r"#([0-9a-fA-F]{6}|[0-9a-fA-F]{3})(?![0-9a-zA-Z])")
_BARE_HEX_RE = re.compile(r"(?=[a-f]*[0-9])[0-9a-f]{6}")
_SPELLING = {"color": "colour", "colors": "colours", "colored": "coloured", "gray": "grey",
             "favorite": "favourite", "center": "centre"}


def tokens(text: str) -> list[str]:
    """Accent-free, case-folded word tokens of ``text``, spellings unified.

    A code with its sign, like the country domain ``.ar``, the brand ``.NET`` or the
    calling code ``+66``, gives two tokens, ``.ar`` then ``ar``: the first finds the
    code even where the bare word is common (``ar``, ``66``) or a stop word (``.in``,
    ``.it``, ``.is``).
    """
    text = str(text)
    if text.isascii():  # most of the world: nothing to decompose
        plain = text.casefold()
    else:
        decomposed = unicodedata.normalize("NFKD", text)
        plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()
    out = []
    for t in _WORD_RE.findall(plain):
        if t[0] in ".+":
            out.append(t)
            t = t[1:]
        out.append(_SPELLING.get(t, t))
    return out


@functools.lru_cache(maxsize=1 << 16)
def stem(token: str) -> str:
    """A light English plural stripper (``countries`` -> ``country``, ``francs`` -> ``franc``)."""
    if len(token) > 4 and token.endswith("ies"):
        return token[:-3] + "y"
    if len(token) > 4 and token.endswith(("ches", "shes", "xes", "sses")):
        return token[:-2]
    if len(token) > 3 and token.endswith("s") and not token.endswith(("ss", "us", "is")):
        return token[:-1]
    return token


def terms(text: str) -> list[str]:
    """The index terms of ``text``: its tokens, stemmed."""
    return [stem(t) for t in tokens(text)]


def query_terms(text: str) -> list[tuple[str, float]]:
    """Distinct ``(term, weight)`` pairs of a free-text query, in query order.

    Stop words are dropped (unless nothing else is left); hex colours
    (``#FF9900``, ``#F90``, or a bare six-digit hex code with a digit in it) weigh
    :data:`HEX_WEIGHT`, other terms 1.
    """
    text = str(text)
    hexes = {_expand_hex(m.group(1)) for m in _HEX_RE.finditer(text)}
    text = _HEX_RE.sub(lambda m: " " + _expand_hex(m.group(1)) + " ", text)
    words = tokens(text)[:MAX_QUERY_TOKENS]
    content = [w for w in words if w not in STOP_WORDS] or words
    out: dict[str, float] = {}
    for word in content:
        weight = HEX_WEIGHT if word in hexes or _BARE_HEX_RE.fullmatch(word) else 1.0
        out.setdefault(stem(word), weight)
    return list(out.items())


def query_pairs(text: str) -> list[tuple[str, str]]:
    """Distinct pairs of neighbouring query terms, neither a stop word (for phrase bonuses)."""
    words = tokens(_HEX_RE.sub(" ", str(text)))[:MAX_QUERY_TOKENS]
    pairs = [(stem(a), stem(b)) for a, b in itertools.pairwise(words)
             if a not in STOP_WORDS and b not in STOP_WORDS]
    return list(dict.fromkeys(pairs))


def _expand_hex(code: str) -> str:
    code = code.lower()
    return "".join(c * 2 for c in code) if len(code) == 3 else code


def word_starts(text: str) -> Iterator[tuple[int, str]]:
    """``(character offset, first term)`` of each word of ``text``, in order."""
    for match in _WORD_RE.finditer(text):
        words = terms(match.group(0))
        yield match.start(), words[0] if words else ""
