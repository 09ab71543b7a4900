"""Request rewording of SFT records: the same episode, its request said in other words.

The world words its requests with a grammar of slots (:mod:`knowgen.world.phrasing`);
``train`` uses only the *seen* options of each slot, and ``test-ood`` holds others out.
A small model fine-tuned on train transcripts learns the seen wordings, not the task:
asked in words it never met, it skips the clue or drops the caption.

This module owns a second, trainer-only set of wordings for every slot
(:data:`EXTRA_WORDINGS`; none of them is a world option, seen or held out). A reworded
record has its request rebuilt from the same candidate by the task's own family, each
slot taking one of these wordings with chance ``rate``; what the request asks for (the
subjects, the clue, the caption and its case) is unchanged and checked to be, so the
expert's turns still answer it.

Only records of experts whose turns do not depend on the request's words may be
reworded: ``guided`` and ``oracle`` read the hidden facts (and, for the caption, the
quoted words, which rewording keeps); ``scripted`` parses the request itself.

Example:
    >>> records = reword_records(read_jsonl("sft.jsonl"), rate=0.5, seed=0)
"""

from __future__ import annotations

import copy
import logging
import random
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from knowgen.errors import ConfigError
from knowgen.world.data import World, load_world
from knowgen.world.phrasing import Option, Phraser, Slot

logger = logging.getLogger(__name__)

#: Experts whose turns follow from the task's hidden facts, not from the request's words.
REWORDABLE_EXPERTS = ("guided", "oracle")

#: The trainer's own wordings, by slot name; each has the fields of that slot's options.
EXTRA_WORDINGS: dict[str, tuple[str, ...]] = {
    "frame": ("a magazine cover", "a greeting card", "a tote bag design", "a phone wallpaper",
              "a calendar page", "a museum placard", "a bookmark", "a trading card",
              "an album cover", "a desktop background", "a shop window sign", "a leaflet",
              "a school notebook cover", "a fridge magnet"),
    "ask": ("Can you make {frame}", "Please create {frame}", "Draw me {frame}", "I want {frame}",
            "We need {frame}", "Render {frame}", "Would you design {frame}", "Sketch {frame}",
            "Make me {frame}", "Help me make {frame}", "Craft {frame}", "Paint {frame}",
            "My class needs {frame}", "Our team wants {frame}"),
    "showing": ("that displays", "containing", "centred on", "that features", "presenting",
                "of", "displaying", "that depicts", "highlighting", "which shows", "about"),
    "scene": (" with soft pastel tones", " for a sports event", " in a vintage style",
              " on a white background", " for a museum exhibit", " in a watercolour look",
              " with a bold border", " for a classroom", " in a retro style",
              " for an airport lounge", " at high resolution", " in a simple vector style"),
    "place": ("below the artwork", "beneath it", "across the bottom", "under the main picture",
              "in the lower part", "at the base of the picture", "underneath the artwork",
              "in the bottom margin", "near the bottom", "below everything else"),
    "case": (" all in capitals", " using only capital letters", " in caps",
             " with every letter capitalised", " in CAPS"),
    "quote": ('Include the text "{text}" {place}.', 'Show the words "{text}" {place}.',
              'Set the heading "{text}" {place}.', 'It should say "{text}" {place}.',
              'Place the text "{text}" {place}.', 'Display "{text}" {place}.',
              'Use "{text}" as the tagline {place}.', 'The words "{text}" should appear {place}.',
              'Spell out "{text}" {place}.', 'Make it read "{text}" {place}.',
              'Add "{text}" as a line of text {place}.', 'Include a label reading "{text}" {place}.'),
    "derived": ("Include {what}{case} {place}.", "Show {what}{case} {place}.",
                "It should also say {what}{case} {place}.", "Add {what}{case} as text {place}.",
                "Display {what}{case} {place}.", "Put a label {place} with {what}{case}.",
                "The text {place} should be {what}{case}.", "Spell out {what}{case} {place}.",
                "Please add {what}{case} {place}.", "Set {what}{case} as a heading {place}."),
    "notext": ("Please leave it without text.", "Avoid any lettering.", "No words at all.",
               "Text-free, please.", "Skip any writing."),
    "order": ("{main} Also, {text_lower}", "Here is the idea. {main} {text}",
              "{main} And {text_lower}", "{main} Then: {text_lower}"),
    "flag": ("the country flag of {ref}", "the flag used by {ref}",
             "the flag that represents {ref}", "the flag belonging to {ref}",
             "the national colours of {ref} as a flag"),
    "rel.capital": ("the country with {v} as its capital", "the nation governed from {v}",
                    "the country run from the capital {v}", "the land whose capital city is {v}"),
    "rel.currency_code": ("the country whose currency code is {v}",
                          "the only nation with currency code {v}",
                          "the country that alone uses the code {v} for its money"),
    "rel.currency_name": ("the country that uses the {v} as money", "the nation paying in the {v}",
                          "the one country whose money is the {v}"),
    "rel.demonym": ("the country of the {v}", "the homeland of people called {v}",
                    "the country whose population is called {v}"),
    "rel.calling_code": ("the country with calling code {v}",
                         "the country that has {v} as its phone code",
                         "the country whose phone numbers start with {v}"),
    "rel.tld": ("the country whose web domain is {v}", "the country assigned the internet suffix {v}",
                "the country with the country-code domain {v}"),
    "rel.city": ("the country where {v} is located", "the country in which {v} is found",
                 "the country of the city {v}", "the country that includes the city {v}"),
    "rel.borders2": ("the single country bordering both {a} and {b}",
                     "the nation that shares borders with both {a} and {b}",
                     "the one country next to both {a} and {b} by land"),
    "rel.border1": ("the only neighbour of {a} on land", "the one country bordering {a}",
                    "the only country with a land border to {a}"),
    "rel.language": ("the sole country in {r} that has {lang} as an official language",
                     "the country of {r} where {lang} is official",
                     "the only {r} country with {lang} as an official tongue"),
    "text.capital": ("the capital's name", "the name of the capital city", "its capital city",
                     "the capital of that country"),
    "logo": ("the brand logo of {ref}", "the logo used by {ref}", "the mark of {ref}",
             "the logo that represents {ref}"),
    "logo.named": ("the logo {name} uses", "{name}'s logo", "the brand logo of {name}",
                   "the {name} brand logo"),
    "colour": (" in its own brand colour", " coloured as the brand colours it",
               " in the official brand colour", " in the brand's colour"),
    "rel.hex": ("the brand with the colour {v}", "the brand that is coloured {v}",
                "the company identified by the colour {v}"),
    "rel.former_name": ("the brand formerly called {v}", "the company once known as {v}",
                        "the brand that used to be named {v}"),
    "rel.website": ("the brand that runs {v}", "the company whose web address is {v}",
                    "the brand at {v}"),
    "pair": ("{a} to the left of {b}", "{a} and then {b}, left to right",
             "{a} at left and {b} at right", "{a} followed by {b} on its right"),
    "trio": ("{a}, {b} and {c} from left to right", "{a}, then {b}, then {c}, in a row",
             "left to right: {a}, {b}, {c}"),
    "versus": ("the left country's name, the word VS, and the right country's name",
               "a VS title with the left country's name first and the right one's second"),
    "trap.flag": ("the current official flag of {name}, not a proposed design",
                  "the flag {name} actually uses, not a rejected proposal"),
    "trap.logo": ("the {name} logo in colour, not the black version",
                  "the {name} logo in its true colours, not monochrome"),
}


def fields_of(text: str) -> frozenset[str]:
    """Names of the ``{fields}`` of a format string."""
    return frozenset(name for _, name, _, _ in string.Formatter().parse(text) if name)


@dataclass
class Rewording(Phraser):
    """A phraser that picks as the world's does, then swaps some picks for extra wordings.

    The world's own RNG is drawn exactly as in :class:`~knowgen.world.phrasing.Phraser`,
    so every other choice a family makes (capital letters or not, which noun phrase) is
    the same as in the original request; a second RNG decides the swaps.

    Args:
        extra: Wordings by slot name (:data:`EXTRA_WORDINGS`).
        rate: Chance that a slot with extra wordings takes one of them.
        swap_rng: The RNG of the swaps.
    """

    extra: Mapping[str, Sequence[str]] = field(default_factory=dict)
    rate: float = 0.5
    swap_rng: random.Random = field(default_factory=random.Random)

    def option(self, s: Slot) -> Option:
        """The world's pick for ``s``, or with chance ``rate`` one of its extra wordings."""
        picked = super().option(s)
        wordings = self.extra.get(s.name) or ()
        if not wordings or self.swap_rng.random() >= self.rate:
            return picked
        i = self.swap_rng.randrange(len(wordings))
        swapped = Option(f"{s.name}.r{i}", wordings[i])
        self.used[-1] = swapped.id
        return swapped


class Rewriter:
    """Rebuilds requests of the world's train tasks in other words.

    Args:
        world: The world (the shipped one when None).
        task_seed: Seed of the world benchmark whose task ids the records carry.
        extra: Wordings by slot name.
    """

    def __init__(self, world: World | None = None, task_seed: int = 0,
                 extra: Mapping[str, Sequence[str]] = EXTRA_WORDINGS):
        from knowgen.world.tasks import candidate_pools, generate_tasks
        from knowgen.world.templates import TEMPLATES, WorldFacts

        self.world = world or load_world()
        self.task_seed = task_seed
        self.extra = extra
        self.facts = WorldFacts(self.world)
        pools = candidate_pools(self.world, "train", task_seed, self.facts)
        self.candidates = {TEMPLATES[name].task_id(c): (TEMPLATES[name], c)
                           for name, pool in pools.items() for c in pool}
        self.tasks = {t.id: t for t in generate_tasks(self.world, "train", task_seed)}

    def reword(self, task_id: str, rate: float, rng: random.Random) -> str | None:
        """A new request for ``task_id`` asking for exactly what the original asks.

        Returns:
            The request, or None when ``task_id`` is no train task or the rebuilt
            request would ask for other text (which the checks refuse).
        """
        from knowgen.world.tasks import build_task, wording_rng

        found, task = self.candidates.get(task_id), self.tasks.get(task_id)
        if found is None or task is None:
            return None
        template, cand = found
        ph = Rewording(wording_rng(self.task_seed, "seen", task_id), "seen", extra=self.extra,
                       rate=rate, swap_rng=random.Random(rng.random()))
        rebuilt = build_task(template, self.facts, cand, self.task_seed, "seen", phraser=ph)
        if rebuilt.facts != task.facts:
            return None
        return rebuilt.prompt


def check_rate(rate: float, setting: str) -> None:
    """Refuse a rewording rate outside [0, 1], naming the ``setting`` that carries it.

    Raises:
        ConfigError: for such a rate.
    """
    if not 0.0 <= rate <= 1.0:
        raise ConfigError(f"{setting} must be between 0 and 1, got {rate}.")


def reword_records(records: list[dict[str, Any]], rate: float, seed: int = 0,
                   world: World | None = None, task_seed: int = 0) -> list[dict[str, Any]]:
    """The records with their requests reworded (see the module doc).

    Args:
        records: Chat records of ``knowgen train data`` (a ``task_id`` of the world's
            train split and an ``expert`` in :data:`REWORDABLE_EXPERTS`).
        rate: Chance per slot of an extra wording (0 returns the records unchanged).
        seed: Seed of the swaps (the result is deterministic per seed).
        world: The world (the shipped one when None).
        task_seed: Seed of the world benchmark whose task ids the records carry.

    Returns:
        New records (the inputs are not changed); each reworded one has ``"reworded"``
        set to its original request.

    Raises:
        ConfigError: for a rate outside [0, 1], a record of another expert, or a record
            whose task id is no train task of the world.
    """
    check_rate(rate, "sft.reword")
    if rate == 0.0:
        return list(records)
    rewriter = Rewriter(world, task_seed)
    rng = random.Random(seed)
    out, unchanged = [], 0
    for n, record in enumerate(records):
        expert = record.get("expert")
        if expert not in REWORDABLE_EXPERTS:
            raise ConfigError(
                f"Record {n} comes from expert {expert!r}, whose turns read the request's words; "
                f"rewording needs records of {' or '.join(REWORDABLE_EXPERTS)} "
                "(`knowgen train data --expert guided`), or set sft.reword to 0.")
        task_id = str(record.get("task_id"))
        if task_id not in rewriter.tasks:
            raise ConfigError(f"Record {n} has task_id {task_id!r}, which is no train task of the "
                              "world; rewording needs records from `knowgen train data`.")
        original = rewriter.tasks[task_id].prompt
        request = rewriter.reword(task_id, rate, rng)
        new = copy.deepcopy(record)
        if request is None or request == original or not _swap_request(new, original, request):
            unchanged += 1
            out.append(new)
            continue
        new["reworded"] = original
        out.append(new)
    logger.info("Reworded %d of %d records (rate %.2f)", len(out) - unchanged, len(out), rate)
    return out


def _swap_request(record: dict[str, Any], original: str, request: str) -> bool:
    """Replace the request in the record's first user message; False when it is not there."""
    for message in record.get("messages") or []:
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            if message["content"].count(original) != 1:
                return False
            message["content"] = message["content"].replace(original, request)
            return True
    return False
