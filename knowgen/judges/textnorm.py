"""Text normalisation shared by the offline judges.

Two texts are compared after :func:`normalize`, which removes everything that
neither a reader nor an OCR engine can be expected to get right: accents, case,
spaces and punctuation, and the shapes that OCR engines confuse with each
other. The same folding is applied to both sides, so it never turns a correct
reading into a wrong one; it only forgives confusions that a human reader
would forgive too (``I`` / ``l`` / ``1``, ``O`` / ``0``, ``rn`` / ``m``).

Example:
    >>> normalize("Côte d'Ivoire")
    'cotedivoire'
    >>> contains_text(["WELCOME TO", "BURKINA FAS0!"], "Burkina Faso")
    True
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

#: Single characters that OCR engines read interchangeably, folded to one form.
#: Applied after case folding, so only lower-case keys are needed.
_CONFUSABLE = str.maketrans({
    "1": "i", "l": "i", "|": "i", "ı": "i",
    "0": "o", "ø": "o",
    "5": "s",
    "ß": "ss",
})
#: Character pairs read as one letter (and vice versa), folded after single characters.
_PAIRS = (("rn", "m"), ("vv", "w"))

_WORD_RE = re.compile(r"[^\W_]+")


def strip_accents(text: str) -> str:
    """Decompose ``text`` (NFKD) and drop the combining marks."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def normalize(text: str) -> str:
    """Fold ``text`` to a comparison key.

    Steps: NFKD with combining marks dropped, case folding, OCR-confusable
    characters folded (``l``/``1``/``|`` -> ``i``, ``0`` -> ``o``, ``5`` -> ``s``,
    ``rn`` -> ``m``, ``vv`` -> ``w``), then everything that is not a letter or a
    digit removed (spaces and punctuation included).

    Args:
        text: Any string.

    Returns:
        The key; ``""`` when ``text`` holds no letter or digit.
    """
    folded = strip_accents(str(text)).casefold().translate(_CONFUSABLE)
    kept = "".join(ch for ch in folded if ch.isalnum())
    for pair, single in _PAIRS:
        kept = kept.replace(pair, single)
    return kept


def words(text: str) -> list[str]:
    """Accent-free, case-folded words of ``text`` (no confusable folding).

    Used where word boundaries matter, e.g. to find a name inside a prompt.
    """
    return _WORD_RE.findall(strip_accents(str(text)).casefold())


def contains_text(ocr_lines: Iterable[str], required: str) -> bool:
    """True when ``required`` can be read in ``ocr_lines``.

    The lines are normalised and joined without separators, so a caption that
    the OCR engine split over two lines (or into two boxes) still counts; the
    required text must then appear as one contiguous run. Accented letters may
    be read either as their base letter or not at all (OCR alphabets without
    them drop them), so ``Côte`` matches ``Cote`` and ``Cte`` but not ``Cute``.
    A required text with no letter or digit is trivially present.

    Args:
        ocr_lines: Text lines read from an image, top to bottom.
        required: The text that must be legible.
    """
    key = normalize(required)
    if not key:
        return True
    lines = [str(line) for line in ocr_lines]
    # Lines folded one by one (a stray letter at the end of one line must not pair
    # up with the next line's first), and folded as one text (a pair split by a break).
    haystacks = ("".join(normalize(line) for line in lines), normalize("".join(lines)))
    if any(key in hay for hay in haystacks):
        return True
    dropped = normalize("".join(ch for ch in str(required) if ch.isascii()))
    return (bool(dropped) and len(dropped) >= 0.6 * len(key)
            and any(dropped in hay for hay in haystacks))


#: How a required text was read: on its own, only inside longer text, in the wrong case, or not.
EXACT, BURIED, WRONG_CASE, ABSENT = "exact", "buried", "wrong_case", "absent"
#: Credit per reading, on the KnowGen scale.
READING_CREDIT = {EXACT: 1.0, BURIED: 0.5, WRONG_CASE: 0.5, ABSENT: 0.0}
#: Share of letters that must be capitals when the request asks for capital letters.
UPPER_SHARE = 0.9


def mostly_capitals(text: str) -> bool:
    """Whether at least :data:`UPPER_SHARE` of the letters of ``text`` are capitals (True
    for a text with no letters: there is no case to get wrong)."""
    letters = [ch for ch in text if ch.isalpha()]
    return not letters or sum(ch.isupper() for ch in letters) >= UPPER_SHARE * len(letters)


def _runs(lines: list[str]) -> Iterable[tuple[int, int, set[str]]]:
    """Every run of consecutive lines, as ``(first, last, keys)``: the lines folded one by
    one and joined, and folded as one text (a confusable pair split by a break)."""
    keys = [normalize(line) for line in lines]
    for i in range(len(lines)):
        joined = ""
        for j in range(i, len(lines)):
            joined += keys[j]
            yield i, j, {joined, normalize("".join(lines[i:j + 1]))}


def read_text(ocr_lines: Iterable[str], required: str, upper: bool = False) -> str:
    """How ``required`` can be read in ``ocr_lines``: :data:`EXACT`, :data:`BURIED`,
    :data:`WRONG_CASE` or :data:`ABSENT`.

    * **exact**: some run of whole consecutive lines reads as ``required`` and
      nothing else (after :func:`normalize`; a caption split over two lines counts);
    * **buried**: ``required`` only appears inside longer text (an OCR read of
      ``United States), with the text`` does not show ``UNITED STATES`` on its own);
    * **wrong case**: read exactly, but the request asked for capital letters and in
      every exact reading fewer than :data:`UPPER_SHARE` of the letters are capitals;
    * **absent**: not read at all (:func:`contains_text` is false).

    Args:
        ocr_lines: Text lines read from an image, top to bottom.
        required: The text that must be legible.
        upper: The request asked for the text in capital letters.
    """
    lines = [str(line) for line in ocr_lines]
    key = normalize(required)
    if not key:
        return EXACT
    dropped = normalize("".join(ch for ch in str(required) if ch.isascii()))
    targets = {key} | ({dropped} if dropped and len(dropped) >= 0.6 * len(key) else set())
    wrong_case = False
    for i, j, joined in _runs(lines):
        if joined & targets:
            if upper and not mostly_capitals("".join(lines[i:j + 1])):
                # another reading may still be in capitals (a logo's own wordmark, then the banner)
                wrong_case = True
                continue
            return EXACT
        if min(map(len, joined)) > len(key) + 64:
            break
    if wrong_case:
        return WRONG_CASE
    return BURIED if contains_text(lines, required) else ABSENT
