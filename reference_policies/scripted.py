"""A general heuristic searcher that reads only its observations.

It has no knowledge of the world's task families. It reads a request with
:func:`knowgen.reference_policies.reading.read_request` (sentences about the
picture and about the text, one chunk per subject, the mentions of each),
then for each subject:

1. searches the chunk's salient words (one ``search`` call for all subjects);
2. takes a result whose title *is* a mention as the subject named outright,
   unless the chunk speaks of borders, in which case the mentions are the
   subject's neighbours;
3. otherwise links the entity whose page states every mention: a snippet that
   holds them all settles it, else it browses the best pages until one does;
4. works out derived text (the subject's name, its capital, "A VS B") from what
   it read, browsing the subject's page when the snippet does not say;
5. looks up the subject's official picture with ``image_search``, skipping
   look-alikes, and answers with a prompt that points at the references in
   order and quotes the text.

It stays a baseline: a request it misreads or a fact it cannot confirm within
its budget gives a wrong or partial answer.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from knowgen.envs.protocol import format_answer, format_tool_call, img_id_number
from knowgen.reference_policies import common as c
from knowgen.reference_policies.reading import (
    Chunk,
    Reading,
    fold,
    mentions,
    read_request,
    sentences,
)
from knowgen.types import Answer, ReferenceImage

logger = logging.getLogger(__name__)

Script = Generator[str, str, None]

_DISTRACTOR = re.compile(
    r"\(city|^Countries of |^Proposed flags? of |logo variants$|^Brands with |^List of ",
    re.IGNORECASE)
_CAPITAL_WORDS = re.compile(r"\bcapital\b|seat of government|governed from", re.IGNORECASE)


@dataclass
class Goal:
    """One subject to depict: the chunk that describes it and what was found."""

    chunk: Chunk
    kind: str
    name: str = ""
    capital: str = ""
    img_id: str = ""
    page_url: str = ""


def has(text: str, needle: str) -> bool:
    """True when ``needle`` occurs in ``text`` as whole words (accents ignored).

    Case is ignored too, except for a short all-capitals needle such as a
    currency code (``"ARS"`` must not match the word "Ars").
    """
    exact = needle.isupper() and len(needle.strip()) <= 4
    norm = (lambda s: " ".join(fold(s).split())) if exact else \
        (lambda s: " ".join(fold(s).casefold().split()))
    key = re.escape(norm(needle))
    return re.search(rf"(?<![\w]){key}(?![\w])", norm(text)) is not None


def readings(mention: str) -> list[list[str]]:
    """Ways to read a mention as a list of names: ``"A and B"`` may be one name or two."""
    pieces = mention.split(" and ")
    out = [[mention]]
    for i in range(1, len(pieces)):
        out.append([" and ".join(pieces[:i]), " and ".join(pieces[i:])])
    return out


def capital_in(text: str, country: str) -> str:
    """The capital that a sentence of ``text`` gives for ``country`` ("" when none does)."""
    for sentence in sentences(text.replace("\n", " ")):
        match = _CAPITAL_WORDS.search(sentence)
        if not match:
            continue
        after = [m for m in mentions(sentence[match.end():]) if not has(country, m)]
        before = [m for m in mentions(sentence[: match.start()]) if not has(country, m)]
        for name in after + before[::-1]:
            if name.casefold() not in {"the", "its", "it"}:
                return name
    return ""


class ScriptedPolicy:
    """Heuristic searcher: read -> search -> link (browse) -> text -> image search -> answer.

    Args:
        seed: Unused (the policy is deterministic).
        max_browse: Most pages read per subject before giving up on it.
        caps: Write text that must be in capital letters already capitalised
            (``"ALBANIA"``); when False, write it as the sources spell it and ask
            the generator for capital letters.
        top_k: Results asked for per search.
    """

    name = "scripted"

    def __init__(self, seed: int = 0, max_browse: int = 3, caps: bool = True, top_k: int = 8):
        self.seed = seed
        self.max_browse = max_browse
        self.caps = bool(caps)
        self.top_k = int(top_k)
        self.reading = Reading()
        self.goals: list[Goal] = []
        self._script: Script | None = None
        self._started = self._finished = False
        self._calls_left = 0

    def reset(self, observation: str, info: dict[str, Any]) -> None:
        """Read the request of the new episode and plan the searches."""
        self.reading = read_request(c.request_of(observation))
        self.goals = [Goal(chunk, self.reading.kind) for chunk in self.reading.chunks]
        logger.debug("scripted reading: %s", self.reading)
        self._script = self._run()
        self._started = self._finished = False

    def act(self, observation: str, info: dict[str, Any]) -> str:
        """The next tool call of the plan, or the answer when done or out of budget."""
        if self._script is None:
            self.reset(observation, info)
        self._calls_left = min(info.get("tool_calls_left", 1), info.get("turns_left", 2) - 1)
        if self._calls_left <= 0 or self._finished:
            return self._answer()
        try:
            action = self._script.send(observation) if self._started else next(self._script)
        except StopIteration:
            self._finished = True
            return self._answer()
        self._started = True
        return action

    # -- the script: a generator that yields tool calls and receives their observations
    def _run(self) -> Script:
        if not self.goals:
            return
        queries = list(dict.fromkeys(g.chunk.query() for g in self.goals))
        obs = yield format_tool_call("search", {"queries": queries, "top_k": self.top_k})
        hits = c.parse_search(obs)
        for goal in self.goals:
            mine = [h for h in hits if h.query == goal.chunk.query()]
            yield from self._resolve(goal, mine)
        if self.reading.derived == "capital":
            for goal in self.goals:
                if goal.name:
                    yield from self._find_capital(goal, hits)
        for goal in self.goals:
            if goal.name:
                yield from self._find_image(goal)

    def _resolve(self, goal: Goal, hits: list[c.TextResult]) -> Script:
        """Name the subject of ``goal``: named outright, or linked through its mentions."""
        said = goal.chunk.mentions
        if not goal.chunk.neighbours:
            for hit in hits:
                if not _DISTRACTOR.search(hit.title) and any(
                        fold(hit.title).casefold() == fold(m).casefold() for m in said):
                    goal.name, goal.page_url = hit.title, hit.url
                    return
        options = _combos(said)
        named = {fold(n).casefold() for opt in options for n in opt}
        candidates = [h for h in hits if not _DISTRACTOR.search(h.title)
                      and fold(h.title).casefold() not in named]
        if not candidates:
            obs = yield format_tool_call("search", {"queries": [" ".join(said)], "top_k": self.top_k})
            candidates = [h for h in c.parse_search(obs) if not _DISTRACTOR.search(h.title)
                          and fold(h.title).casefold() not in named]

        def states(text: str) -> bool:
            return any(all(has(text, n) for n in opt) for opt in options)

        for hit in candidates:
            if states(hit.snippet):
                goal.name, goal.page_url = hit.title, hit.url
                return
        for hit in candidates[: self.max_browse]:
            if self._calls_left <= len(self.goals):
                return
            obs = yield format_tool_call("browse", {"url": hit.url, "query": " ".join(said)})
            page = c.parse_page(obs)
            if page is not None and states(page.text):
                goal.name, goal.page_url = page.title, hit.url
                capital = capital_in(page.text, page.title)
                goal.capital = goal.capital or capital
                return

    def _find_capital(self, goal: Goal, hits: list[c.TextResult]) -> Script:
        """The capital of the subject, from a snippet or its page."""
        for hit in hits:
            if hit.title == goal.name and capital_in(hit.snippet, goal.name):
                goal.capital = capital_in(hit.snippet, goal.name)
                return
        if goal.capital:
            return
        obs = yield format_tool_call("search", {"queries": [f"capital of {goal.name}"],
                                                "top_k": 3})
        for hit in c.parse_search(obs):
            if hit.title == goal.name:
                goal.page_url = goal.page_url or hit.url
                goal.capital = capital_in(hit.snippet, goal.name)
        if not goal.capital and goal.page_url and self._calls_left > len(self.goals):
            obs = yield format_tool_call("browse", {"url": goal.page_url, "query": "capital city"})
            page = c.parse_page(obs)
            goal.capital = capital_in(page.text, goal.name) if page else ""

    def _find_image(self, goal: Goal) -> Script:
        # The name follows a word (never the opening quote), as in the request and the
        # results, so that a model imitating these turns copies the same tokens.
        query = f"{goal.kind.capitalize()} of {goal.name}"
        obs = yield format_tool_call("image_search", {"query": query})
        pick = _official(c.parse_images(obs), goal)
        if pick is None and self._calls_left > 1:
            obs = yield format_tool_call("image_search", {"query": f"Image of {goal.name}"})
            pick = _official(c.parse_images(obs), goal)
        if pick is not None:
            goal.img_id = pick.img_id
            goal.name = _title_name(pick.title, goal.kind) or goal.name

    # -- the answer
    def _answer(self) -> str:
        found = sorted((g for g in self.goals if g.img_id), key=lambda g: img_id_number(g.img_id))
        refs = tuple(ReferenceImage(g.img_id, f"official {g.kind} of {g.name}") for g in found)
        parts = [f"the {c.ordinal(n)} reference image (the official {g.kind} of {_plain(g.name)})"
                 for n, g in enumerate(found, 1)]
        if parts:
            prompt = "A clean poster showing " + " beside ".join(parts)
        else:
            names = [g.name for g in self.goals if g.name] or ["the requested subject"]
            prompt = f"A clean poster showing the official {self.reading.kind} of " + " and ".join(names)
        texts = self._texts()
        in_caps = " in capital letters" if self.reading.upper and not self.caps else ""
        if texts:
            prompt += ", with the text " + ", then ".join(f'"{_plain(t)}"{in_caps}' for t in texts)
            prompt += " on a banner below"
        return format_answer(Answer(prompt + ".", refs), think="Answering with what I found.")

    def _texts(self) -> list[str]:
        r = self.reading
        if r.literals:
            return r.literals

        def written(name: str) -> str:
            return c.caps(name) if r.upper and self.caps else " ".join(fold(name).split())

        names = [written(g.name) for g in self.goals if g.name]
        if r.derived == "versus" and len(names) == 2:
            return [f"{names[0]} VS {names[1]}"]
        if r.derived == "capital":
            return [written(g.capital) for g in self.goals if g.capital]
        if r.derived == "name":
            return names
        return []


def _combos(said: list[str]) -> list[list[str]]:
    """Every way to read the mentions, each ``"A and B"`` as one name or two."""
    out: list[list[str]] = [[]]
    for mention in said:
        out = [prev + split for prev in out for split in readings(mention)]
    return out[:8]


def _official(images: list[c.ImageResult], goal: Goal) -> c.ImageResult | None:
    """The official picture of ``goal`` among ``images`` (never a look-alike)."""
    key = fold(goal.name).casefold()
    for image in images:
        name = _title_name(image.title, goal.kind)
        if name and fold(name).casefold() == key:
            return image
    return None


def _title_name(title: str, kind: str) -> str:
    """The entity named by an official image title ("" for look-alikes and others)."""
    match = re.fullmatch(r"Flag of (.+)", title) if kind == "flag" else re.fullmatch(r"(.+) logo", title)
    return match.group(1) if match else ""


def _plain(text: str) -> str:
    return text.replace('"', "'")
