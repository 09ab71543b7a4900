"""Reading an image request the way a careful generalist would: no templates.

The ``scripted`` policy never matches whole sentences of known requests. It
splits a request into sentences, tells the sentence about *text* from the
sentences about the *picture* by the words they use, cuts the picture into one
chunk per subject by layout words ("on the left", "beside", "then", ...), and
takes from each chunk its *mentions*: names, codes and other salient phrases
that a search engine can look up. What the mentions mean is left to the
searches; the few relation words it knows (borders, capitals, names) are
English vocabulary, not request patterns.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

_QUOTED = re.compile(r'"([^"]+)"|\u201c([^\u201d]+)\u201d')
#: Words that make a sentence one about the text to write.
_TEXT_WORDS = re.compile(
    r"\b(?:write|written|caption|captioned|label|labelled|labeled|title|titled|headline|"
    r"lettering|letter|words|text|printed|print it|carry|slogan|wordless|writing|"
    r"banner|strip|giving)\b", re.IGNORECASE)
_SUBJECT_WORDS = re.compile(r"\b(?:flags?|logos?|emblems?|brand marks?)\b", re.IGNORECASE)
_LOGO_WORDS = re.compile(r"\b(?:logos?|emblems?|brand|brands|company|companies|label|"
                         r"brand marks?)\b", re.IGNORECASE)
_CAPS = re.compile(r"\b(?:capital letters|capitals|upper[- ]?case|all caps|caps)\b",
                   re.IGNORECASE)
_NO_TEXT = re.compile(r"\b(?:no (?:text|words|writing|lettering)|without (?:any )?(?:text|words)|"
                      r"wordless|leave out all text|not add any words|no writing)\b", re.IGNORECASE)
_CAPITAL_TEXT = re.compile(r"\bcapital(?: city)?(?:'s)? (?:name|is called)|name of (?:its|that "
                           r"country's|the country's|their) capital|\bits capital\b",
                           re.IGNORECASE)
_NAME_TEXT = re.compile(r"\bnames?\b", re.IGNORECASE)
_VERSUS = re.compile(r"\bVS\b|\bversus\b")
#: Layout words that separate subjects inside one picture sentence.
_SPLIT_PAIR = re.compile(r",? on the left(?: and|,)|,? then |,? beside |,? next to |"
                         r"\bfirst (?=the )|,? with the first on the left", re.IGNORECASE)
_TRIO = re.compile(r"(?:side by side|from left to right|lined up|in a row|a row of three)",
                   re.IGNORECASE)
_NEIGHBOUR = re.compile(r"\b(?:border|borders|bordering|neighbou?rs?|touching|shares? a land)\b",
                        re.IGNORECASE)
_CODE = re.compile(r"#[0-9A-Fa-f]{6}\b|\+\d{1,4}\b|(?<![\w.])\.[a-z]{2,3}\b|"
                   r"\b[a-z0-9][a-z0-9-]*(?:\.[a-z0-9-]+)*\.(?:com|org|net|io|dev|app|co|ai|"
                   r"[a-z]{2})\b")
_CAPWORD = r"(?:[A-Z0-9][\w'’.&-]*|d'\w+)"
_CONNECT = r"(?: (?:and|of|the|de|da|del|di|du|la|le|et|for|y|und|on|upon|des|dos|das)(?= [A-Z]))"
_PROPER = re.compile(rf"{_CAPWORD}(?:{_CONNECT}* {_CAPWORD})*")
#: English function words: never a name on their own, trimmed from both ends of one.
_FUNCTION = frozenset(["a", "an", "the", "and", "or", "of", "with", "for", "in", "on", "at", "by", "to", "from", "as", "is", "are", "be", "it", "its", "this", "that", "these", "those", "vs", "iso"])
#: Words that open a request sentence (verbs, pronouns, framings): trimmed from the front.
_GENERIC = _FUNCTION | frozenset(["i", "i'd", "i'm", "please", "design", "create", "make", "need", "draw", "produce", "generate", "could", "would", "you", "put", "together", "love", "write", "add", "label", "caption", "have", "letter", "leave", "no", "do", "keep", "there", "must", "one", "more", "thing", "show", "showing", "first", "then", "left", "right", "what", "which", "who", "whose", "where", "when", "flag", "flags", "logo", "logos", "emblem", "poster", "sticker", "mural", "billboard", "postcard", "banner", "t-shirt"])


@dataclass
class Chunk:
    """The part of a picture sentence about one subject.

    Attributes:
        text: The words of the chunk.
        mentions: Names, codes and phrases to look up, in order.
        neighbours: The chunk asks for a country through its land borders.
    """

    text: str
    mentions: list[str] = field(default_factory=list)
    neighbours: bool = False

    def query(self) -> str:
        """A search query: the chunk's mentions with the words around them."""
        words = [w for w in re.findall(r"[\w#+.'’-]+", self.text)
                 if fold(w).casefold().strip(".") not in _GENERIC and len(w) > 1]
        return " ".join(words)[:200] or " ".join(self.mentions)


@dataclass
class Reading:
    """What a request asks for.

    Attributes:
        kind: ``"flag"`` or ``"logo"``.
        chunks: One per subject, in layout order.
        literals: Quoted texts, in order.
        upper: The text must be in capital letters.
        derived: Text to work out: ``""``, ``"name"``, ``"capital"`` or ``"versus"``.
    """

    kind: str = "flag"
    chunks: list[Chunk] = field(default_factory=list)
    literals: list[str] = field(default_factory=list)
    upper: bool = False
    derived: str = ""


def fold(text: str) -> str:
    """ASCII-fold ``text``: accents dropped, other non-ASCII characters removed."""
    decomposed = unicodedata.normalize("NFKD", text)
    return decomposed.encode("ascii", "ignore").decode("ascii")


def sentences(text: str) -> list[str]:
    """Sentences of ``text`` (a stop after a short abbreviation such as "St." does not end one)."""
    parts = re.split(r"(?<=[.!?:;])\s+(?=[A-Z\"\u201c])", text.strip())
    out: list[str] = []
    for part in parts:
        if out and re.search(r"\b(?:St|Mt|Ft|Dr|U\.S|U\.K)\.$", out[-1]):
            out[-1] += " " + part
        else:
            out.append(part)
    return [s for s in out if s.strip()]


def mentions(text: str) -> list[str]:
    """Names, codes and other look-up-able phrases in ``text``, in order of appearance."""
    found: list[tuple[int, str]] = [(m.start(), m.group(0)) for m in _CODE.finditer(text)]
    taken = [(m.start(), m.end()) for m in _CODE.finditer(text)]
    for m in _PROPER.finditer(text):
        if any(a <= m.start() < b for a, b in taken):
            continue
        words = m.group(0).split(" ")
        while words and fold(words[0]).casefold().strip(".,'’") in _GENERIC:
            words.pop(0)
        while words and fold(words[-1]).casefold().strip(".,'’") in _FUNCTION:
            words.pop()
        phrase = " ".join(words).rstrip(".,;:")
        phrase = re.sub(r"['’]s$", "", phrase)
        if phrase and not re.fullmatch(r"\d+", phrase):
            found.append((m.start(), phrase))
    # A lower-case brand name right before "logo" ("the quicktype logo")
    for m in re.finditer(r"\bthe ([a-z][\w.-]*) (?:logo|brand mark)\b", text):
        if m.group(1) not in ("official", "real", "proper", "brand", "signature", "colour"):
            found.append((m.start(1), m.group(1)))
    for m in re.finditer(r"\b([a-z][\w.-]*)'s (?:brand mark|logo)\b", text):
        found.append((m.start(1), m.group(1)))
    seen, out = set(), []
    for _, phrase in sorted(found):
        if phrase.casefold() not in seen:
            seen.add(phrase.casefold())
            out.append(phrase)
    return out


def _chunks(picture: str) -> list[str]:
    """Split a picture sentence into one piece per subject."""
    if _TRIO.search(picture) and ":" in picture:
        body = picture.split(":", 1)[1]
        pieces = re.split(r",\s*(?:and\s+)?|\s+and\s+(?=the\b)", body)
        pieces = [p for p in pieces if _SUBJECT_WORDS.search(p)]
        if len(pieces) >= 2:
            return pieces
    if len(_SUBJECT_WORDS.findall(picture)) >= 2 or _SPLIT_PAIR.search(picture):
        pieces = [p for p in _SPLIT_PAIR.split(picture) if p and p.strip(" ,.")]
        pieces = [p for p in pieces if mentions(p)]
        if len(pieces) >= 2:
            return pieces
    return [picture]


def read_request(request: str) -> Reading:
    """Read the subjects, their clues and the text that ``request`` asks for."""
    literals = [a or b for a, b in _QUOTED.findall(request)]
    blank = _QUOTED.sub('""', request)
    text_parts, picture_parts = [], []
    for sentence in sentences(blank):
        is_text = (bool(_TEXT_WORDS.search(sentence)) or bool(_NO_TEXT.search(sentence))) and (
            not _SUBJECT_WORDS.search(sentence) or '""' in sentence)
        (text_parts if is_text else picture_parts).append(sentence)
    if not picture_parts:
        picture_parts, text_parts = [blank], []
    text = " ".join(text_parts)
    picture = " ".join(picture_parts)
    reading = Reading(kind="logo" if _LOGO_WORDS.search(picture) and not
                      re.search(r"\bflags?\b", picture, re.IGNORECASE) else "flag",
                      literals=literals, upper=bool(_CAPS.search(_CAPITAL_TEXT.sub("", text))))
    if not literals and text and not _NO_TEXT.search(text):
        if _VERSUS.search(text):
            reading.derived = "versus"
        elif _CAPITAL_TEXT.search(text):
            reading.derived = "capital"
        elif _NAME_TEXT.search(text):
            reading.derived = "name"
    for piece in _chunks(picture):
        chunk = Chunk(piece, mentions(piece), bool(_NEIGHBOUR.search(piece)))
        if chunk.mentions:
            reading.chunks.append(chunk)
    return reading
