"""A heuristic multi-hop searcher that reads only its observations.

It reads the request with a few patterns (which entity kind, which clue, which
text), searches for each clue, reads the best page when the snippet is not
enough, takes the answer entity's name from page titles and sentences, looks
up the entity's official picture with ``image_search`` (skipping look-alikes)
and answers with a prompt that names the entities, points at the references
in order and quotes the required text.

It never sees the task's hidden facts; on the offline world it shows what a
simple, well-behaved search workflow achieves.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from knowgen.envs.protocol import format_answer, format_tool_call, img_id_number
from knowgen.reference_policies import common as c
from knowgen.types import Answer, ReferenceImage

logger = logging.getLogger(__name__)

Script = Generator[str, str, None]

_QUOTED = re.compile(r'"([^"]+)"|\u201c([^\u201d]+)\u201d')
_DISTRACTOR = re.compile(
    r"\(city|^Countries of |^Proposed flags? of |logo variants$|^Brands with ", re.IGNORECASE)
_BORDER_LIST = re.compile(
    r"(?:land borders? with(?: one country only:)?|On land, .+? borders|"
    r"land neighbou?rs? of .+? (?:are|is)) (.+?)\.(?=\s|$)")

#: (clue, pattern) pairs tried in order on the request (quotes blanked out). Group
#: names: ``a``/``b`` the clue values, ``r`` a region.
_CLUES: list[tuple[str, re.Pattern[str]]] = [(clue, re.compile(p, re.IGNORECASE | re.DOTALL)) for clue, p in [
    ("capitals", r"whose capital is (?P<a>.+?), on the right .*?whose capital is (?P<b>.+?)\. "),
    ("capitals", r"capitals (?:are )?(?P<a>[^,]+?) and (?P<b>[^,]+?)(?:,|\.\s|$)"),
    ("capital", r"capital(?: city)? is (?P<a>.+?)\. (?:Under|Below|Beneath|Add|Put|Write)"),
    ("capital", r"capital(?: city)? is (?P<a>[^,]+?)(?:,|\.\s|\.$| with )"),
    ("currency", r"(?:ISO 4217 )?(?:currency )?code (?P<a>[A-Z]{3})\b"),
    ("currency", r"(?:currency|money) (?:is |called |named )?(?:the )?(?P<a>[^,]+?)(?:,|\.\s| with )"),
    ("borders", r"border with both (?P<a>.+?) and (?P<b>.+?), with "),
    ("borders", r"(?:bordering|borders) both (?P<a>.+?) and (?P<b>[^,]+?)(?:,|\.\s)"),
    ("neighbour", r"the only country that (?P<a>.+?) shares a land border with\b"),
    ("neighbour", r"the only (?:land )?neighbou?r of (?P<a>[^,]+?)(?:,|\.\s| with )"),
    ("language", r"only country in (?P<r>.+?) where (?P<a>.+?) is an official language"),
    ("language", r"in (?P<r>[^,]+?) (?:whose|with|where) .*?official language (?:is )?(?P<a>[^,]+?)(?:,|\.\s)"),
    ("hex", r"(?P<a>#[0-9A-Fa-f]{6})\b"),
]]
_NAMED: list[re.Pattern[str]] = [re.compile(p, re.IGNORECASE | re.DOTALL) for p in [
    r"with the (?P<a>.+?) logo on the left and the (?P<b>.+?) logo on the right",
    r"(?:featuring the official|featuring the|with the|the official) (?P<a>.+?) logo\b",
    r"flag of (?P<a>.+?)(?:, with | waving | flying |, and |\.\s|\.$|;)",
    r"logos? of (?P<a>[^,]+?)(?: and (?P<b>[^,]+?))?(?:,|\.\s|\.$)",
]]


@dataclass
class Goal:
    """One entity to depict: its kind, and either its name or the clue leading to it."""

    kind: str
    name: str = ""
    clue: str = ""
    args: tuple[str, ...] = ()
    img_id: str = ""


@dataclass
class Plan:
    """What the request asks for."""

    goals: list[Goal] = field(default_factory=list)
    captions: list[str] = field(default_factory=list)
    caps_names: bool = False
    versus: bool = False


def plan_request(request: str) -> Plan:
    """Read the entities, clues and text that ``request`` asks for."""
    kind = "logo" if re.search(r"\blogos?\b|\bbrand", request, re.IGNORECASE) else "flag"
    quoted = [a or b for a, b in _QUOTED.findall(request)]
    text = _QUOTED.sub('""', request)
    plan = Plan(
        caps_names=bool(re.search(r"capital letters|in capitals|upper-?case|all caps", text, re.IGNORECASE)),
        versus=bool(re.search(r"\bVS\b|\bversus\b", text)),
    )
    for clue, pattern in _CLUES:
        match = pattern.search(text)
        if match:
            groups = match.groupdict()
            if clue == "capitals":
                plan.goals = [Goal(kind, clue="capital", args=(groups[k].strip(),)) for k in "ab"]
            elif clue == "language":
                plan.goals = [Goal(kind, clue=clue, args=(groups["r"].strip(), groups["a"].strip()))]
            else:
                args = tuple(groups[k].strip() for k in "ab" if groups.get(k))
                plan.goals = [Goal(kind, clue=clue, args=args)]
            break
    if not plan.goals:
        plan.goals = [Goal(kind, name=n) for n in _named_entities(text)]
    if not plan.caps_names and not plan.versus:
        plan.captions = quoted
    return plan


def _named_entities(text: str) -> list[str]:
    for pattern in _NAMED:
        match = pattern.search(text)
        if match:
            return [v.strip() for k, v in sorted(match.groupdict().items()) if v and v.strip()]
    return []


# ----------------------------------------------------------------------------- text checks


def _has(text: str, needle: str) -> bool:
    """True when ``needle`` occurs in ``text`` as whole words (accents and case ignored)."""
    key = re.escape(c.fold(needle).casefold())
    return re.search(rf"(?<!\w){key}(?!\w)", c.fold(text).casefold()) is not None


def _sentences(text: str) -> list[str]:
    # A stop ends a sentence after a lower-case word or a bracket, not after "St." or "U.S."
    return re.split(r"(?:(?<=[a-z]{2}[.!?])|(?<=\)[.]))\s+(?=[A-Z0-9#])", text.replace("\n", " "))


def _sentence_with(text: str, needle: str, *words: str) -> bool:
    return any(_has(s, needle) and (not words or any(w in s.casefold() for w in words))
               for s in _sentences(text))


def neighbour_lists(text: str) -> list[str]:
    """The neighbour lists (``"A, B and C"``) of the land-border sentences in ``text``."""
    return [m.group(1) for m in _BORDER_LIST.finditer(text.replace("\n", " "))]


def in_list(list_text: str, name: str) -> bool:
    """True when ``name`` is one item of ``list_text`` (``"A, B and C"``)."""
    pattern = rf"(?:^|, | and ){re.escape(c.fold(name))}(?=,| and |$)"
    return re.search(pattern, c.fold(list_text)) is not None


def split_list(list_text: str) -> list[str]:
    """Items of ``"A, B and C"``, keeping every reading of an ambiguous ``and``."""
    parts = [p.strip() for p in list_text.split(", ") if p.strip()]
    if not parts:
        return []
    last = parts.pop()
    pieces = last.split(" and ")
    items = parts + [last]
    for i in range(1, len(pieces)):
        items += [" and ".join(pieces[:i]), " and ".join(pieces[i:])]
    return items


_CITY_OF = re.compile(r"(?:government|capital(?: city)?) of (.+?)\.(?=\s|$)")


def _country_of_city(city: str, hits: list[c.TextResult]) -> str:
    """The country a city page (titled ``"<city> (city...)"``) says the city governs."""
    key = c.fold(city).casefold() + " (city"
    for hit in hits:
        if c.fold(hit.title).casefold().startswith(key):
            match = _CITY_OF.search(hit.snippet)
            if match:
                return match.group(1).strip()
    return ""


def _pairs(text: str) -> list[tuple[str, str]]:
    """Every way to read ``"A and B"`` as two names (names may hold "and" themselves)."""
    pieces = text.split(" and ")
    return [(" and ".join(pieces[:i]), " and ".join(pieces[i:])) for i in range(1, len(pieces))]


def _checker(goal: Goal) -> Callable[[str, str], bool]:
    """Does ``text`` (a snippet or page of the entity titled ``title``) satisfy the clue?"""
    a = goal.args
    if goal.clue == "capital":
        return lambda text, title: _sentence_with(text, a[0], "capital", "governed")
    if goal.clue == "currency":
        return lambda text, title: _sentence_with(text, a[0])
    if goal.clue == "hex":
        return lambda text, title: _has(text, a[0])
    if goal.clue == "language":
        region, language = a
        return lambda text, title: _sentence_with(text, language, "language") and _has(text, region)
    if goal.clue == "borders":
        pairs = _pairs(" and ".join(a))
        return lambda text, title: any(
            title not in pair and in_list(lst, pair[0]) and in_list(lst, pair[1])
            for pair in pairs for lst in neighbour_lists(text))
    return lambda text, title: False


def _query(goal: Goal) -> tuple[str, str]:
    """(search query, browse query) for a clue."""
    a, clue = goal.args, goal.clue
    if clue == "capital":
        return f"capital {a[0]}", "capital"
    if clue == "currency":
        return f"currency code {a[0]}", f"currency {a[0]}"
    if clue == "hex":
        return f"official colour {a[0]}", f"colour {a[0]}"
    if clue == "language":
        return f"official language {a[1]} {a[0]}", f"official language {a[1]} {a[0]}"
    if clue == "borders":
        return f"land borders {' '.join(a)}", "land borders neighbours"
    if clue == "neighbour":
        return f"{a[0]} land borders", "land borders neighbours"
    return " ".join(a), " ".join(a)


# ----------------------------------------------------------------------------- the policy


class ScriptedPolicy:
    """Heuristic searcher: clue -> text search -> (browse) -> name -> image search -> answer.

    Args:
        seed: Unused (the policy is deterministic).
        max_browse: Most pages read per clue before giving up on it.
        caps: Write names that must appear in capitals already capitalised
            (``"ALBANIA"``); when False, write them as the sources spell them and
            ask the generator for capital letters (``"Albania" in capital
            letters``), which a model can copy from its context.
    """

    name = "scripted"

    def __init__(self, seed: int = 0, max_browse: int = 4, caps: bool = True):
        self.seed = seed
        self.max_browse = max_browse
        self.caps = bool(caps)
        self.plan = Plan()
        self._script: Script | None = None
        self._started = self._finished = False

    def reset(self, observation: str, info: dict[str, Any]) -> None:
        """Read the request of the new episode and plan the searches."""
        self.plan = plan_request(c.request_of(observation))
        logger.debug("scripted plan: %s", self.plan)
        self._script = self._run()
        self._started = self._finished = False

    def act(self, observation: str, info: dict[str, Any]) -> str:
        """The next tool call of the plan, or the answer when done or out of budget."""
        if self._script is None:
            self.reset(observation, info)
        out_of_budget = info.get("tool_calls_left", 1) <= 0 or info.get("turns_left", 2) <= 1
        if out_of_budget or self._finished:
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
        yield from self._resolve_clues()
        for goal in self.plan.goals:
            if goal.name:
                yield from self._find_image(goal)

    def _resolve_clues(self) -> Script:
        open_goals = [g for g in self.plan.goals if not g.name and g.clue]
        if not open_goals:
            return
        queries = [_query(g)[0] for g in open_goals]
        obs = yield format_tool_call("search", {"queries": queries, "top_k": 8})
        hits = c.parse_search(obs)
        for goal, query in zip(open_goals, queries):
            mine = [h for h in hits if h.query == query]
            if goal.clue == "neighbour":
                listed = yield from self._neighbours_of(goal.args[0], mine)
                goal.name = (listed or "").strip()
            elif goal.clue == "borders":
                yield from self._common_neighbour(goal, mine)
            else:
                yield from self._resolve_one(goal, mine)

    def _resolve_one(self, goal: Goal, hits: list[c.TextResult]) -> Generator[str, str, bool]:
        """Find the entity page whose snippet (or, failing that, text) satisfies the clue."""
        check = _checker(goal)
        entity_hits = [h for h in hits if not _DISTRACTOR.search(h.title)]
        for hit in entity_hits:
            if check(hit.snippet, hit.title):
                goal.name = hit.title
                return True
        if goal.clue == "capital":  # the city's own page names its country
            goal.name = _country_of_city(goal.args[0], hits)
            if goal.name:
                return True
        for hit in entity_hits[: self.max_browse]:
            obs = yield format_tool_call("browse", {"url": hit.url, "query": _query(goal)[1]})
            page = c.parse_page(obs)
            if page is not None and check(page.text, page.title):
                goal.name = page.title
                return True
        return False

    def _neighbours_of(self, country: str, hits: list[c.TextResult]) -> Generator[str, str, str | None]:
        """The neighbour list of ``country``: from a snippet, its page, or a new search."""
        key = c.fold(country).casefold()
        own = [h for h in hits if c.fold(h.title).casefold() == key]
        if not own:
            obs = yield format_tool_call("search", {"queries": [f"{country} land borders"]})
            own = [h for h in c.parse_search(obs) if c.fold(h.title).casefold() == key]
        if not own:
            return None
        lists = neighbour_lists(own[0].snippet)
        if not lists:
            obs = yield format_tool_call("browse", {"url": own[0].url,
                                                     "query": "land borders neighbours"})
            page = c.parse_page(obs)
            lists = neighbour_lists(page.text) if page else []
        return lists[0] if lists else None

    def _common_neighbour(self, goal: Goal, hits: list[c.TextResult]) -> Script:
        """The country bordering both named ones: intersect their neighbour lists."""
        check = _checker(goal)
        for hit in hits:  # the answer's own page may already say it
            if not _DISTRACTOR.search(hit.title) and check(hit.snippet, hit.title):
                goal.name = hit.title
                return
        titles = {c.fold(h.title).casefold() for h in hits}
        pairs = sorted(_pairs(" and ".join(goal.args)), key=lambda p: -sum(
            c.fold(n).casefold() in titles for n in p))
        for first, second in pairs[:2]:
            one = yield from self._neighbours_of(first, hits)
            two = (yield from self._neighbours_of(second, hits)) if one else None
            if one and two:
                common = [n for n in split_list(one) if in_list(two, n) and n not in (first, second)]
                if common:
                    goal.name = max(common, key=len)
                    return

    def _find_image(self, goal: Goal) -> Script:
        # The name follows a word (never the opening quote), as in the request and the
        # results, so that a model imitating these turns copies the same tokens.
        query = f"{goal.kind.capitalize()} of {goal.name}"
        obs = yield format_tool_call("image_search", {"query": query})
        pick = _official(c.parse_images(obs), goal)
        if pick is None:
            obs = yield format_tool_call("image_search", {"query": f"Image of {goal.name}"})
            pick = _official(c.parse_images(obs), goal)
        if pick is not None:
            goal.img_id = pick.img_id
            goal.name = _title_name(pick.title, goal.kind) or goal.name

    # -- the answer
    def _answer(self) -> str:
        found = sorted((g for g in self.plan.goals if g.img_id), key=lambda g: img_id_number(g.img_id))
        refs = tuple(ReferenceImage(g.img_id, f"official {g.kind} of {g.name}") for g in found)
        what = self.plan.goals[0].kind if self.plan.goals else "picture"
        parts = [f"the {c.ordinal(n)} reference image (the official {g.kind} of {_plain(g.name)})"
                 for n, g in enumerate(found, 1)]
        if parts:
            prompt = "A clean poster showing " + " beside ".join(parts)
        else:
            names = [g.name for g in self.plan.goals if g.name] or ["the requested subject"]
            prompt = f"A clean poster showing the official {what} of " + " and ".join(names)
        texts = self._texts()
        in_caps = " in capital letters" if self._named_texts() and not self.caps else ""
        if texts:
            prompt += ", with the text " + ", then ".join(f'"{_plain(t)}"{in_caps}' for t in texts)
            prompt += " on a banner below"
        return format_answer(Answer(prompt + ".", refs), think="Answering with what I found.")

    def _named_texts(self) -> bool:
        """True when the banner texts are the entities' names (not quoted captions)."""
        return self.plan.versus or self.plan.caps_names

    def _texts(self) -> list[str]:
        names = [c.caps(g.name) if self.caps else g.name for g in self.plan.goals if g.name]
        if self.plan.versus and len(names) == 2:
            return [f"{names[0]} VS {names[1]}"]
        if self.plan.caps_names:
            return names
        return self.plan.captions


def _official(images: list[c.ImageResult], goal: Goal) -> c.ImageResult | None:
    """The official picture of ``goal`` among ``images`` (never a look-alike)."""
    expected = f"Flag of {goal.name}" if goal.kind == "flag" else f"{goal.name} logo"
    for image in images:
        if image.title == expected:
            return image
    key = c.fold(goal.name).casefold()
    for image in images:
        name = _title_name(image.title, goal.kind)
        if name and c.fold(name).casefold() == key:
            return image
    return None


def _title_name(title: str, kind: str) -> str:
    """The entity named by an official image title ("" for look-alikes and others)."""
    match = re.fullmatch(r"Flag of (.+)", title) if kind == "flag" else re.fullmatch(r"(.+) logo", title)
    return match.group(1) if match else ""


def _plain(text: str) -> str:
    return text.replace('"', "'")
