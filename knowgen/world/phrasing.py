"""The request grammar: how a task's request is worded.

A request is composed, not picked from a list of sentences. Each *slot* (the
framing, the verb that asks for it, how the subject is referred to, how a clue
relation is stated, how and where the text goes, the case instruction, scene
words that change nothing, the clause order) has several options, and a
:class:`Phraser` picks one per slot with a seeded RNG, recording which.

Some options are **held out**: they never appear in the ``train`` or ``test``
splits and every ``test-ood`` request uses held-out options in the slots that
matter most (the framing and the clue's relation, or for requests that name
their subject outright, the way the subject is referred to). A score on
``test-ood`` therefore measures whether an agent reads requests, not whether it
recognises the phrasings it was trained on. Which options are held out is
stated here, in code, by ``ood=True``; :func:`held_out_ids` lists them and a
test checks that no ``train`` request uses one.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

#: Phrasing modes: ``"seen"`` for train and test, ``"ood"`` for test-ood.
MODES = ("seen", "ood")


@dataclass(frozen=True)
class Option:
    """One way to fill a slot.

    Attributes:
        id: Stable id, ``"<slot>.<name>"``.
        text: A format string; its ``{fields}`` are filled by the caller.
        ood: Held out of ``train`` and ``test``: only ``test-ood`` requests use it.
    """

    id: str
    text: str
    ood: bool = False


@dataclass(frozen=True)
class Slot:
    """A named choice between options.

    Attributes:
        name: Slot name (the prefix of its options' ids).
        options: Every option, seen and held out.
        key: The slot's part in making a request out of distribution: in
            ``"ood"`` mode a *key* slot always takes a held-out option, other
            slots take any option.
    """

    name: str
    options: tuple[Option, ...]
    key: bool = False

    def seen(self) -> list[Option]:
        """Options that ``train`` and ``test`` may use."""
        return [o for o in self.options if not o.ood]

    def held_out(self) -> list[Option]:
        """Options reserved for ``test-ood``."""
        return [o for o in self.options if o.ood]


def slot(name: str, seen: Iterable[str], held_out: Iterable[str] = (), key: bool = False) -> Slot:
    """Build a slot from its seen and held-out texts (ids are numbered in order).

    Args:
        name: Slot name.
        seen: Texts of the options every split may use.
        held_out: Texts of the options only ``test-ood`` uses.
        key: Whether ``test-ood`` must use a held-out option in this slot.
    """
    opts = [Option(f"{name}.{i}", t) for i, t in enumerate(seen)]
    opts += [Option(f"{name}.x{i}", t, ood=True) for i, t in enumerate(held_out)]
    return Slot(name, tuple(opts), key)


@dataclass
class Phraser:
    """Picks options with a seeded RNG and records every pick.

    Args:
        rng: The task's random generator.
        mode: ``"seen"`` (never a held-out option) or ``"ood"`` (key slots
            always held out, other slots either).

    Attributes:
        used: Ids of the options picked, in order.
    """

    rng: random.Random
    mode: str = "seen"
    used: list[str] = field(default_factory=list)

    def option(self, s: Slot) -> Option:
        """Pick an option of ``s`` for this mode."""
        if self.mode == "ood":
            pool = s.held_out() if s.key and s.held_out() else list(s.options)
        else:
            pool = s.seen()
        opt = pool[self.rng.randrange(len(pool))]
        self.used.append(opt.id)
        return opt

    def say(self, s: Slot, **fields: str) -> str:
        """The text of an option of ``s`` with ``fields`` filled in."""
        return self.option(s).text.format(**fields)

    def chance(self, p: float) -> bool:
        """True with probability ``p`` (from the task's RNG)."""
        return self.rng.random() < p

    def choice(self, items: list):
        """One of ``items`` (from the task's RNG; not a phrasing choice)."""
        return items[self.rng.randrange(len(items))]


def held_out_ids(slots: Iterable[Slot]) -> set[str]:
    """Ids of every held-out option of ``slots``."""
    return {o.id for s in slots for o in s.options if o.ood}


def capitalise(text: str) -> str:
    """``text`` with its first letter in upper case (the rest untouched)."""
    return text[:1].upper() + text[1:]


# ----------------------------------------------------------------------------- shared slots
#: The medium the picture is for ("{a}" is the article-bearing noun phrase).
FRAME = slot("frame", [
    "a poster", "a sticker", "a news graphic", "a presentation slide", "a postcard",
    "a book cover", "an infographic card", "a banner for a website", "a flyer",
    "a classroom wall chart",
], [
    "a postage stamp", "a T-shirt print", "a mural", "a billboard", "an enamel pin",
], key=True)

#: How the request asks for it: "{frame}" is the medium.
ASK = slot("ask", [
    "Design {frame}", "Create {frame}", "Make {frame}", "I need {frame}", "Please draw {frame}",
    "Produce {frame}", "Generate {frame}",
], [
    "Could you put together {frame}", "I'd love {frame}",
])

#: The verb that links the medium to its subject.
SHOWING = slot("showing", [
    "showing", "featuring", "that shows", "depicting", "with",
], [
    "built around", "that puts front and centre",
])

#: Scene words that change nothing about what must be drawn.
SCENE = slot("scene", [
    "", "", " in a clean flat style", " on a plain background", " for a school geography project",
    " for a travel agency window", " in a modern minimal look",
], [
    " in bright, cheerful colours", " for a community festival", " with a lot of empty space",
])

#: Where the text goes.
PLACE = slot("place", [
    "below it", "underneath", "beneath the picture", "at the bottom", "under the image",
], [
    "along the bottom edge", "in a strip at the foot of the design",
])

#: How a generator is told to use capital letters.
CASE = slot("case", [
    " in capital letters", " in upper case", " in all caps",
], [
    " in block capitals", " entirely in uppercase letters",
])

#: A literal text, quoted: "{text}" is the quoted string, "{place}" where it goes.
QUOTE_SENTENCE = slot("quote", [
    'Write "{text}" {place}.', 'Add the caption "{text}" {place}.',
    'Put the words "{text}" on a dark banner {place}.', 'The title "{text}" goes {place}.',
], [
    'Letter the slogan "{text}" {place}.', 'Have "{text}" printed {place}.',
], key=True)

#: A text the agent must work out: "{what}" names it ("that country's name").
DERIVED_SENTENCE = slot("derived", [
    "Write {what}{case} {place}.", "Add a banner {place} giving {what}{case}.",
    "Label it with {what}{case}, placed {place}.", "Put {what}{case} on a dark strip {place}.",
], [
    "The picture should carry {what}{case} {place}.", "Caption it {place} with {what}{case}.",
], key=True)

#: Requests that want no text at all.
NO_TEXT_SENTENCE = slot("notext", [
    "Do not add any words.", "Leave out all text and lettering.", "No text anywhere, please.",
    "",
], [
    "Keep it wordless.", "There must be no writing on it.",
])

#: The order of the clauses: "{main}" is the picture sentence, "{text}" the text one.
ORDER = slot("order", [
    "{main} {text}", "{main} {text}", "{text} {main}",
], [
    "{main} One more thing: {text_lower}",
])

#: Every slot shared by all families.
SHARED_SLOTS = (FRAME, ASK, SHOWING, SCENE, PLACE, CASE, QUOTE_SENTENCE, DERIVED_SENTENCE,
                NO_TEXT_SENTENCE, ORDER)


def compose(ph: Phraser, subject: str, text_sentence: str) -> str:
    """A whole request: framing, subject, scene and text sentence in a picked order.

    Args:
        ph: The task's phraser.
        subject: The noun phrase of what must be shown.
        text_sentence: A full sentence about the text ("" when none is said).
    """
    frame = ph.say(FRAME)
    main = ph.say(ASK, frame=frame) + " " + ph.say(SHOWING) + " " + subject + ph.say(SCENE) + "."
    if not text_sentence:
        return capitalise(main)
    order = ph.option(ORDER).text
    text = text_sentence
    return capitalise(order.format(main=capitalise(main), text=capitalise(text),
                                   text_lower=text[:1].lower() + text[1:]))


def text_sentence(ph: Phraser, style: str, text: str = "", what: str = "",
                  upper: bool = False) -> str:
    """The sentence that says what to write.

    Args:
        ph: The task's phraser.
        style: ``"literal"`` (``text`` is quoted), ``"derived"`` (``what`` names
            what to write) or ``"none"`` (no text wanted).
        text: The literal text.
        what: A noun phrase naming the text to work out.
        upper: Ask for capital letters.
    """
    if style == "none":
        return ph.say(NO_TEXT_SENTENCE)
    place = ph.say(PLACE)
    if style == "literal":
        return ph.say(QUOTE_SENTENCE, text=text, place=place)
    case = ph.say(CASE) if upper else ""
    return ph.say(DERIVED_SENTENCE, what=what, case=case, place=place)


Phrase = Callable[[Phraser], str]
