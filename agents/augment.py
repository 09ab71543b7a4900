"""Entity-name augmentation of SFT records: the same episode with invented names.

A model trained from scratch on a few hundred entities memorises their names
instead of reading them from its context, and then fails on entities it never
saw. Each augmented copy of a record replaces every surface form of the
entities the task is about (the name, its upper-case form, its page slug, the
capital, neighbours, language and currency code used as clues) by a pseudo-name
made of random syllables, consistently across the request, the tool results and
the assistant turns. A memorised name then no longer lowers the loss; copying
it from the context does.

Entities are found from the record's ``task_id`` through the world benchmark's
task facts (both splits are searched, the train split first).

Pseudo-names come in two styles. ``syllables`` builds words from random
syllables. ``pieces`` builds them from the tokenizer's own word pieces (one to
three per word, kept only when the tokenizer splits the word back into exactly
those pieces), so that every piece a name can be made of is an assistant target
somewhere in the data. A piece that is never a target has its output logit
pushed down by every update, and the model cannot write a name containing it
even while it attends to it; names never seen in training are full of such
pieces. A whole pseudo word is still never a real name.

Example:
    >>> records = augment_records(read_jsonl("sft.jsonl"), copies=2, seed=0)
"""

from __future__ import annotations

import copy
import json
import logging
import random
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from knowgen.errors import ConfigError
from knowgen.types import Task
from knowgen.world.data import World, load_world

logger = logging.getLogger(__name__)

ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z",
          "br", "dr", "kl", "st", "tr", "sh", "ch")
"""Syllable onsets of pseudo-names."""
VOWELS = ("a", "e", "i", "o", "u", "ai", "ou")
"""Syllable nuclei of pseudo-names."""
CODAS = ("", "", "", "n", "r", "s", "l", "m")
"""Syllable codas (often none)."""
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True)
class Surface:
    """One string of a record to replace and the kind of pseudo string it gets.

    Attributes:
        text: The original text (e.g. ``"Abu Dhabi"``).
        kind: ``"name"`` (pseudo words) or ``"code"`` (random upper-case letters).
    """

    text: str
    kind: str = "name"


def real_names(world: World) -> set[str]:
    """Case-folded names the world knows (entities, aliases, capitals, languages, codes)."""
    names: set[str] = set()
    for entity in world.entities.values():
        names.add(entity.name.casefold())
        names.update(a.casefold() for a in entity.aliases)
        facts = entity.facts
        if facts.get("capital"):
            names.add(str(facts["capital"]).casefold())
        names.update(str(lang).casefold() for lang in facts.get("languages") or ())
        for cur in facts.get("currencies") or ():
            names.update(str(cur.get(k, "")).casefold() for k in ("code", "name"))
    names.discard("")
    return names


def pseudo_word(rng: random.Random) -> str:
    """A capitalised word of two or three random syllables."""
    syllables = rng.choice((2, 2, 3))
    word = "".join(rng.choice(ONSETS) + rng.choice(VOWELS) + rng.choice(CODAS)
                   for _ in range(syllables))
    return word.capitalize()


WordMaker = Callable[[random.Random], str]
"""Makes one pseudo word from a random source."""


class PieceWords:
    """Pseudo words made of a tokenizer's alphabetic word pieces.

    A word is a word-initial piece that starts with a capital letter (``" Arm"``)
    followed by zero to two continuation pieces (``"flow"``); it is kept only
    when the tokenizer splits it back into exactly those pieces.

    Args:
        tokenizer: A Hugging Face tokenizer whose pieces decode to text.

    Raises:
        ConfigError: when the vocabulary has no such pieces.
    """

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.starts: list[int] = []
        self.continuations: list[int] = []
        from knowgen.agents.copy_pretrain import ordinary_token_ids

        for i in ordinary_token_ids(tokenizer):
            text = tokenizer.decode([i])
            if not text.isascii():
                continue
            if text[:1] == " " and text[1:].isalpha() and text[1].isupper():
                self.starts.append(i)
            elif text.isalpha():
                self.continuations.append(i)
        if not self.starts or not self.continuations:
            raise ConfigError("The tokenizer has no alphabetic word pieces to make pseudo-names "
                              "of; use sft.augment_names=syllables.")

    def __call__(self, rng: random.Random) -> str:
        """A pseudo word (without its leading space); syllables when no draw splits back."""
        for _ in range(20):
            ids = [rng.choice(self.starts)]
            ids += [rng.choice(self.continuations) for _ in range(rng.choice((0, 1, 1, 2)))]
            word = self.tokenizer.decode(ids)
            if self.tokenizer(word, add_special_tokens=False)["input_ids"] == ids:
                return word[1:]
        return pseudo_word(rng)


def pseudo_for(surface: Surface, rng: random.Random, forbidden: set[str],
               word: WordMaker = pseudo_word) -> str:
    """A pseudo string for ``surface``, never in ``forbidden`` (case-folded).

    Names keep their number of words; codes keep their length.
    """
    for _ in range(1000):
        if surface.kind == "code":
            out = "".join(rng.choice(LETTERS) for _ in surface.text)
        else:
            words = max(1, len(surface.text.split()))
            out = " ".join(word(rng) for _ in range(words))
        parts = {out.casefold(), *(w.casefold() for w in out.split())}
        if not parts & forbidden:
            return out
    raise ConfigError(f"Could not invent a pseudo-name for {surface.text!r}; "
                      "the syllable inventory is exhausted.")


def task_surfaces(task: Task, world: World) -> list[Surface]:
    """Strings naming what ``task`` is about: entity names, capitals and clue values."""
    out: list[Surface] = []
    for required in task.facts.entities if task.facts else ():
        entity = world.entities.get(required.entity_id)
        out.append(Surface(required.name))
        if entity is not None and entity.facts.get("capital"):
            out.append(Surface(str(entity.facts["capital"])))
    for hop in task.facts.hops if task.facts else ():
        out.extend(_hop_surfaces(hop, world))
    unique: dict[str, Surface] = {}
    for s in out:
        if s.text.strip() and s.text not in unique:
            unique[s.text] = s
    return list(unique.values())


def _hop_surfaces(hop: str, world: World) -> list[Surface]:
    """Clue values of one hop such as ``capital:Kabul`` or ``borders:Spain+France``."""
    key, sep, value = hop.partition(":")
    if not sep:
        return []
    if key in ("name", "capital"):
        return [Surface(value)]
    if key == "language":
        return [Surface(value.partition("@")[0])]
    if key == "currency" and value.isalpha():
        return [Surface(value, "code")]
    if key == "borders":
        return [Surface(v) for v in value.split("+") if v]
    return []


def _variants(original: str, pseudo: str, kind: str) -> dict[str, str]:
    """Surface forms of one replacement: as written, upper case, page slug."""
    forms = {original: pseudo}
    if kind == "name":
        forms[original.upper()] = pseudo.upper()
        if " " in original:
            forms[original.replace(" ", "_")] = pseudo.replace(" ", "_")
    return forms


def build_mapping(surfaces: Iterable[Surface], rng: random.Random,
                  forbidden: set[str], word: WordMaker = pseudo_word) -> dict[str, str]:
    """Original surface form -> pseudo form, distinct pseudo strings per record."""
    mapping: dict[str, str] = {}
    used = set(forbidden)
    for surface in surfaces:
        if surface.text in mapping:
            continue
        pseudo = pseudo_for(surface, rng, used, word)
        used.add(pseudo.casefold())
        used.update(w.casefold() for w in pseudo.split())
        for original, replacement in _variants(surface.text, pseudo, surface.kind).items():
            mapping.setdefault(original, replacement)
    return mapping


def make_replacer(mapping: dict[str, str]) -> Callable[[str], str]:
    """A function replacing every key of ``mapping`` as a whole word (longest first)."""
    if not mapping:
        return lambda text: text
    keys = sorted(mapping, key=len, reverse=True)
    pattern = re.compile(r"(?<![^\W_])(?:" + "|".join(re.escape(k) for k in keys) + r")(?![^\W_])")
    return lambda text: pattern.sub(lambda m: mapping[m.group(0)], text)


def replace_in_record(record: dict[str, Any], replace: Callable[[str], str]) -> dict[str, Any]:
    """A deep copy of ``record`` with ``replace`` applied to every message text and tool call."""
    out = copy.deepcopy(record)
    for message in out["messages"]:
        if isinstance(message.get("content"), str):
            message["content"] = replace(message["content"])
        for call in message.get("tool_calls") or []:
            fn = call.get("function", call)
            args = fn.get("arguments")
            if isinstance(args, str):
                fn["arguments"] = replace(args)
            elif isinstance(args, dict):
                fn["arguments"] = json.loads(replace(json.dumps(args, ensure_ascii=False)))
    return out


def task_index(world: World, seed: int = 0) -> dict[str, Task]:
    """Tasks of the world benchmark by id (train split first, then test)."""
    from knowgen.world.tasks import SPLITS, generate_tasks

    index: dict[str, Task] = {}
    for split in sorted(SPLITS, key=lambda s: s != "train"):
        for task in generate_tasks(world, split, seed):
            index.setdefault(task.id, task)
    return index


def augment_records(records: list[dict[str, Any]], copies: int, seed: int = 0,
                    world: World | None = None, task_seed: int = 0,
                    word: WordMaker = pseudo_word) -> list[dict[str, Any]]:
    """The records followed by ``copies`` pseudo-named copies of each.

    Args:
        records: Chat records with a ``task_id`` of the world benchmark.
        copies: Augmented copies per record (0 returns the records unchanged).
        seed: Seed of the pseudo-names (the result is deterministic per seed).
        world: The world (the shipped one when None).
        task_seed: Seed of the world benchmark whose task ids the records carry.
        word: Maker of pseudo words (:func:`pseudo_word`, or a :class:`PieceWords`).

    Returns:
        The original records, then the copies, each with ``"augmented": k`` and
        ``"pseudo_names"``, its mapping of original surface forms to pseudo forms.

    Raises:
        ConfigError: for a negative ``copies`` or a record whose task id is unknown.
    """
    if copies < 0:
        raise ConfigError(f"augment copies must be >= 0, got {copies}.")
    if copies == 0:
        return list(records)
    world = world or load_world()
    tasks = task_index(world, task_seed)
    forbidden = real_names(world)
    rng = random.Random(seed)
    out = list(records)
    for k in range(1, copies + 1):
        for n, record in enumerate(records):
            task = tasks.get(str(record.get("task_id")))
            if task is None:
                raise ConfigError(f"Record {n} has task_id {record.get('task_id')!r}, which is no "
                                  "world task; augmentation needs records from `knowgen train data`.")
            mapping = build_mapping(task_surfaces(task, world), rng, forbidden, word)
            augmented = replace_in_record(record, make_replacer(mapping))
            augmented["augmented"] = k
            augmented["pseudo_names"] = mapping
            out.append(augmented)
    logger.info("Augmented %d records with %d pseudo-named copies each (%d in all)",
                len(records), copies, len(out))
    return out
