"""The guided expert: knows which facts a task hinges on, but must find them by searching.

The oracle looks each answer up by its image title, which no reader of the
request could know. The guided expert is a teacher for imitation learning: it
reads the task's hidden reasoning chain (privileged, like the oracle) only to
decide *what to look up*, then plays like an agent that reads:

1. one ``search`` with one query per clue, each query made of the clue's own
   words from the request plus a word naming what it is ("Jakarta capital",
   "AED currency", "Spain and France borders");
2. it accepts an entity only when the results it was shown name it (a title or
   a snippet); otherwise it gives up on the task, so that its transcripts never
   teach a guess;
3. its ``<think>`` says what it looks for and what the results settled ("the
   country whose capital is Jakarta is Indonesia"), which is the reading a
   model imitating it must learn;
4. a capital the caption needs is read from the results, or searched for;
5. ``image_search`` for each entity's official picture, then an answer that
   cites the pictures in order and quotes the caption (names as the sources
   spell them, "in capital letters" when the request asks for capitals);
6. with ``plan_caption``, the caption is also planned out loud in the first
   ``<think>`` (the words the request quotes, or whose name it wants: the
   entity's, its capital's), a capital it looked up is stated before it moves on,
   the last ``<think>`` spells the caption out, and a quoted caption is copied
   exactly as the request quotes it;
7. with ``copy_quotes`` (and no plan), a quoted caption is copied exactly as the
   request quotes it too: without it a quote that is the entity's name in capitals
   ("ANDORRA") is written as the sources spell the name ("Andorra"), which the text
   judge accepts but which teaches an imitating model that a quote is not always
   copied;
8. with ``count_subjects``, the first ``<think>`` counts the pictures the request
   asks for ("The request asks for two flags.") and each image search says which
   one it is after ("Next, flag 1 of 2: the official flag of Togo."), so that a
   model imitating it keeps count of the subjects instead of answering after the
   first picture;
9. with ``count_several``, only a request for more than one picture is counted, and
   the count is said at the first image search, once the clues are settled ("The
   request asks for two flags. Next, flag 1 of 2: the official flag of Togo."): a
   one-picture transcript reads as without it, so the count never stands before the
   search that settles a clue.

It is an expert for training data (``knowgen train data --set data.expert=guided``)
and, like the oracle, a privileged policy: it must be bound to its environment.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from knowgen.envs.privileged import OfficialImage, privileged_view
from knowgen.envs.protocol import format_answer, format_tool_call, img_id_number
from knowgen.errors import ConfigError, DataError
from knowgen.quoting import quoted_texts
from knowgen.reference_policies import common as c
from knowgen.types import Answer, ReferenceImage, TaskFacts

logger = logging.getLogger(__name__)

Script = Generator[str, str, None]

#: Word added to a clue's value in the search query, per kind of clue.
QUERY_WORD = {
    "capital": "capital", "currency_code": "currency", "currency_name": "currency",
    "demonym": "people", "borders": "borders", "language": "language",
    "calling_code": "calling code", "tld": "domain", "city": "city",
    "hex": "brand colour", "former_name": "also known as", "website": "website",
}


@dataclass
class Clue:
    """What identifies one required entity in the request."""

    kind: str
    value: str

    def query(self) -> str:
        """Search words: the clue's value as the request gives it, then its kind."""
        return f"{self.shown()} {QUERY_WORD.get(self.kind, self.kind.replace('_', ' '))}"

    def shown(self) -> str:
        """The value as a request states it (``Spain+France`` -> ``Spain and France``)."""
        if self.kind == "borders":
            return " and ".join(self.value.split("+"))
        return self.value.split("@")[0]

    def describe(self, noun: str) -> str:
        """Plain words for the entity this clue picks out."""
        v = self.shown()
        return {
            "capital": f"the {noun} whose capital is {v}",
            "currency_code": f"the {noun} whose currency code is {v}",
            "currency_name": f"the {noun} that pays with the {v}",
            "demonym": f"the {noun} whose people are called {v}",
            "borders": f"the {noun} that borders {v}",
            "language": f"the {noun} where {v} is spoken",
            "calling_code": f"the {noun} with the calling code {v}",
            "tld": f"the {noun} behind the web domain {v}",
            "city": f"the {noun} that has the city {v}",
            "hex": f"the {noun} whose colour is {v}",
            "former_name": f"the {noun} also called {v}",
            "website": f"the {noun} at {v}",
        }.get(self.kind, f"the {noun} with {self.kind} {v}")


@dataclass
class Goal:
    """One required entity: its clue, its official picture, what was found."""

    clue: Clue
    official: OfficialImage
    kind: str
    img_id: str = ""

    @property
    def name(self) -> str:
        return self.official.name

    @property
    def noun(self) -> str:
        return "country" if self.kind == "flag" else "brand"


def plan(facts: TaskFacts, officials: tuple[OfficialImage, ...]) -> tuple[list[Goal], bool]:
    """Goals of a task from its hop chain, and whether the caption needs a capital.

    A hop ``kind:value`` followed by an entity hop (``country/..``, ``brand/..``) is
    that entity's clue; a trailing ``capital:..`` hop is text the caption needs.
    """
    goals: list[Goal] = []
    hops = list(facts.hops)
    wants_capital = False
    pending: Clue | None = None
    for i, hop in enumerate(hops):
        if ":" in hop:
            kind, _, value = hop.partition(":")
            follows = hops[i + 1] if i + 1 < len(hops) else ""
            if "/" in follows and not follows.startswith(("flag/", "logo/")):
                pending = Clue(kind, value)
            elif kind == "capital":
                wants_capital = True
        elif hop.startswith(("flag/", "logo/")) and pending is not None:
            if len(goals) < len(officials):
                goals.append(Goal(pending, officials[len(goals)], hop.split("/")[0]))
            pending = None
    return goals, wants_capital


class GuidedPolicy:
    """Privileged expert that searches for each clue and reasons out loud (see module doc).

    Args:
        seed: Unused (the policy is deterministic).
        plan_caption: Plan the caption in the first thought and spell it in the last
            (see module doc, step 6).
        copy_quotes: Copy a quoted caption as quoted, also without the plan (step 7).
        count_subjects: Count the pictures out loud and number each image search (step 8).
        count_several: Count and number only several pictures, at the first image search
            (step 9).
        **_: Other settings are accepted and ignored.
    """

    name = "guided"
    privileged = True

    def __init__(self, seed: int = 0, plan_caption: bool = False, copy_quotes: bool = False,
                 count_subjects: bool = False, count_several: bool = False, **_: Any):
        self.seed = seed
        self.plan_caption = bool(plan_caption)
        self.copy_quotes = bool(copy_quotes)
        self.count_subjects = bool(count_subjects)
        self.count_several = bool(count_several)
        self._env: Any = None
        self._facts = TaskFacts()
        self._goals: list[Goal] = []
        self._wants_capital = False
        self._capitals: dict[str, str] = {}
        self._quoted: list[str] = []
        self._planned = False
        self._lost = False
        self._script: Script | None = None
        self._started = False

    def bind(self, env: Any) -> None:
        """Read hidden facts from ``env`` from now on (see :mod:`knowgen.envs.privileged`)."""
        self._env = env

    def reset(self, observation: str, info: dict[str, Any]) -> None:
        """Plan the searches of the task the bound environment now serves.

        Raises:
            ConfigError: when the policy was never bound to an environment.
            DataError: when the task carries no hidden facts.
        """
        if self._env is None:
            raise ConfigError("The guided expert reads hidden facts through the environment: call "
                              "knowgen.envs.privileged.bind_policy(policy, env) before playing.")
        view = privileged_view(self._env)
        if view is None:
            raise DataError(f"Task {info.get('task_id')!r} carries no hidden facts; the guided "
                            "expert plays the world benchmark and world task files.")
        self._facts = view.facts
        self._goals, self._wants_capital = plan(view.facts, view.official_images)
        self._capitals = {}
        self._quoted = quoted_texts(str(info.get("request") or observation))
        self._planned = False
        self._lost = not self._goals
        self._script = self._run()
        self._started = False

    def act(self, observation: str, info: dict[str, Any]) -> str:
        """The next call of the plan; the answer when done, lost or out of budget."""
        if self._script is None:
            self.reset(observation, info)
        budget = min(info.get("tool_calls_left", 1), info.get("turns_left", 2) - 1)
        if budget <= 0 or self._lost:
            return self._answer()
        try:
            action = self._script.send(observation) if self._started else next(self._script)
        except StopIteration:
            return self._answer()
        self._started = True
        return self._with_plan(action)

    def _with_plan(self, action: str) -> str:
        """``action`` with the subject count and the caption plan (as asked for) put before
        its first thought (first turn only)."""
        if self._planned:
            return action
        self._planned = True
        said = [self._subject_count()] if self.count_subjects else []
        said += [self._caption_plan()] if self.plan_caption else []
        if not said:
            return action
        return action.replace("<think>", f"<think>{' '.join(said)} ", 1)

    def _subject_count(self) -> str:
        """One sentence on how many pictures the request asks for ("two flags")."""
        kinds = {g.kind for g in self._goals}
        noun = kinds.pop() if len(kinds) == 1 else "picture"
        n = len(self._goals)
        return f"The request asks for {_count_word(n)} {noun}{'s' if n != 1 else ''}."

    def _caption_plan(self) -> str:
        """One sentence on what the caption must say, as the request puts it."""
        texts = self._facts.required_text
        if not texts:
            return "No caption is asked for."
        said = []
        for text in texts:
            quote = self._quote_of(text)
            if quote is not None:
                said.append(f'the words the request quotes, "{_plain(quote)}"')
            elif " VS " in text:
                said.append("the two names with VS between them")
            elif self._wants_capital:
                said.append("the name of the capital")
            else:
                noun = self._goals[0].noun if self._goals else "subject"
                said.append(f"the {noun}'s name")
        quoted = all(self._quote_of(t) is not None for t in texts)
        caps = " in capital letters" if self._facts.text_case == "upper" and not quoted else ""
        return f"The caption is {' and '.join(said)}{caps}."

    def _quote_of(self, text: str) -> str | None:
        """The request's own quote of ``text`` (compared ignoring case), if it quotes it."""
        for quote in self._quoted:
            if quote.casefold() == text.casefold():
                return quote
        return None

    # -- the script
    def _run(self) -> Script:
        to_find = [g for g in self._goals if g.clue.kind != "name"]
        thoughts = []
        if to_find:
            queries = list(dict.fromkeys(g.clue.query() for g in to_find))
            wanted = "; ".join(g.clue.describe(g.noun) for g in to_find)
            obs = yield format_tool_call("search", {"queries": queries},
                                         think=f"I need to find {wanted}.")
            hits = c.parse_search(obs)
            for goal in to_find:
                if not _named(goal.name, hits):
                    logger.debug("guided: %r not in the results for %r", goal.name, goal.clue.query())
                    self._lost = True
                    return
                thoughts.append(_sentence(f"{goal.clue.describe(goal.noun)} is {goal.name}"))
            self._note_capitals(hits)
        if self._wants_capital:
            missing = [g for g in self._goals if g.name not in self._capitals]
            if missing:
                names = [g.name for g in missing]
                said = " ".join(thoughts) + " " if thoughts else ""
                obs = yield format_tool_call(
                    "search", {"queries": [f"{n} capital" for n in names]},
                    think=f"{said}Now the capital of {' and '.join(names)}.".strip())
                self._note_capitals(c.parse_search(obs))
                if any(g.name not in self._capitals for g in self._goals):
                    self._lost = True
                    return
                thoughts = [_capital_thought(self._goals, self._capitals)] if self.plan_caption else []
            else:
                thoughts.append(_capital_thought(self._goals, self._capitals))
        several = self.count_several and len(self._goals) > 1
        if several and not self.count_subjects:
            thoughts.append(self._subject_count())
        for n, goal in enumerate(self._goals, 1):
            said = ". ".join(t.rstrip(".") for t in thoughts)
            said = f"{said}. " if said else ""
            title = goal.official.title or f"{goal.kind.capitalize()} of {goal.name}"
            numbered = self.count_subjects or several
            which = f"{goal.kind} {n} of {len(self._goals)}: " if numbered else ""
            obs = yield format_tool_call(
                "image_search", {"query": title},
                think=f"{said}Next, {which}the official {goal.kind} of {goal.name}.")
            thoughts = []
            pick = _pick(c.parse_images(obs), goal.official)
            if pick is None:
                self._lost = True
                return
            goal.img_id = pick.img_id

    def _note_capitals(self, hits: list[c.TextResult]) -> None:
        """Remember each goal's capital where a result states it (caption tasks only)."""
        if not self._wants_capital:
            return
        capital = [h for h in self._facts.hops if h.startswith("capital:")][-1].partition(":")[2]
        for goal in self._goals:
            for hit in hits:
                blob = f"{hit.title} {hit.snippet}"
                if goal.name in blob and capital in blob and "capital" in blob:
                    self._capitals[goal.name] = capital

    # -- the answer
    def _answer(self) -> str:
        found = sorted((g for g in self._goals if g.img_id), key=lambda g: img_id_number(g.img_id))
        if self._lost or len(found) < len(self._goals):
            return format_answer(Answer("A clean poster showing the requested subject.", ()),
                                 think="I could not confirm every subject.")
        refs = tuple(ReferenceImage(g.img_id, f"official {g.kind} of {g.name}") for g in found)
        parts = [f"the {c.ordinal(n)} reference image (the official {g.kind} of {_plain(g.name)})"
                 for n, g in enumerate(found, 1)]
        prompt = "A clean poster showing " + " beside ".join(parts)
        texts = [self._written(t) for t in self._facts.required_text]
        upper = self._facts.text_case == "upper"
        if texts:
            in_caps = " in capital letters" if upper else ""
            prompt += ", with the text " + ", then ".join(f'"{_plain(t)}"{in_caps}' for t in texts)
            prompt += " on a banner below"
        cited = ", ".join(f"{g.img_id} is the {g.kind} of {g.name}" for g in found)
        caption = " and ".join(f'"{_plain(t)}"' for t in texts)
        think = f"{cited}. The caption reads {caption}." if texts and self.plan_caption else f"{cited}."
        return format_answer(Answer(prompt + ".", refs), think=think)

    def _written(self, text: str) -> str:
        """Required text as the sources spell it (as the request quotes it with
        ``plan_caption`` or ``copy_quotes``)."""
        quote = self._quote_of(text) if self.plan_caption or self.copy_quotes else None
        if quote is not None:
            return quote
        names = [g.name for g in self._goals] + list(self._capitals.values())
        spelled = {c.caps(n): " ".join(c.fold(n).split()) for n in names}
        if text in spelled:
            return spelled[text]
        if " VS " in text:
            return " VS ".join(spelled.get(p, p) for p in text.split(" VS "))
        return text


def _count_word(n: int) -> str:
    """``n`` in words for the small counts a request asks for (digits beyond ten)."""
    words = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
    return words[n] if 0 <= n < len(words) else str(n)


def _named(name: str, hits: list[c.TextResult]) -> bool:
    """True when a result's title or snippet names ``name``."""
    return any(name in f"{h.title} {h.snippet}" for h in hits)


def _capital_thought(goals: list[Goal], capitals: dict[str, str]) -> str:
    return " ".join(f"The capital of {g.name} is {capitals[g.name]}." for g in goals)


def _pick(images: list[c.ImageResult], wanted: OfficialImage) -> c.ImageResult | None:
    for image in images:
        if (wanted.url and image.url == wanted.url) or (not wanted.url and image.title == wanted.title):
            return image
    return None


def _plain(text: str) -> str:
    return text.replace('"', "'")


def _sentence(text: str) -> str:
    """``text`` with its first letter in capitals (the rest as spelled)."""
    return text[:1].upper() + text[1:] + "."
