"""Plain data types shared by every layer of knowgen.

Everything here is a frozen or simple dataclass with ``to_dict``/``from_dict``
helpers, so that records survive a round trip through JSON unchanged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: The two KnowGen groups and the categories each one holds (lower case).
KNOWGEN_GROUPS: dict[str, tuple[str, ...]] = {
    "science_and_knowledge": (
        "astronomy", "biology", "chemistry", "physics", "engineering", "medicine",
        "industry", "architecture", "history", "geography", "religion", "politics",
        "culture", "art", "sports",
    ),
    "pop_culture_and_news": (
        "anime", "game", "film", "celebrities", "posters", "multi-subject-anime",
        "multi-subject-celebrities", "multi-subject-game", "news",
    ),
}

#: Weights of the four KnowGen dimensions in a sample's overall score.
KNOWGEN_WEIGHTS: dict[str, float] = {
    "faithfulness": 0.1,
    "visual_correctness": 0.4,
    "text_accuracy": 0.4,
    "aesthetics": 0.1,
}


@dataclass(frozen=True)
class RequiredEntity:
    """An entity whose stable visual identity must appear in the image.

    Attributes:
        entity_id: World entity id, e.g. ``"country/fr"``.
        name: Display name, e.g. ``"France"``.
        image_id: World image id of the entity's official picture (its flag or logo).
    """

    entity_id: str
    name: str
    image_id: str


@dataclass(frozen=True)
class TaskFacts:
    """Hidden facts of a task: what the oracle and the offline judges may use.

    Policies other than ``oracle`` never see these.

    Attributes:
        entities: Entities that must be depicted, in layout order.
        required_text: Strings that must be legible in the image (empty: no text needed).
        template: Name of the template that produced the task.
        hops: The reasoning chain, e.g. ``["capital:Paris", "country/fr", "flag"]``.
        text_case: ``"upper"`` when the request asks for the text in capital
            letters (the judge then checks the case); ``""`` when any case will do.
    """

    entities: tuple[RequiredEntity, ...] = ()
    required_text: tuple[str, ...] = ()
    template: str = ""
    hops: tuple[str, ...] = ()
    text_case: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = {
            "entities": [asdict(e) for e in self.entities],
            "required_text": list(self.required_text),
            "template": self.template,
            "hops": list(self.hops),
        }
        if self.text_case:
            out["text_case"] = self.text_case
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskFacts:
        return cls(
            entities=tuple(RequiredEntity(**e) for e in data.get("entities", [])),
            required_text=tuple(data.get("required_text", [])),
            template=data.get("template", ""),
            hops=tuple(data.get("hops", [])),
            text_case=str(data.get("text_case", "") or ""),
        )


@dataclass(frozen=True)
class Task:
    """One image-generation request, in the KnowGen record format plus hidden facts.

    Attributes:
        id: Unique id within its benchmark.
        prompt: The user's request.
        category: KnowGen category (``meta.category``), e.g. ``"geography"``.
        difficulty: ``meta.difficulty``, e.g. ``"easy"``, ``"medium"``, ``"hard"``.
        gt_image: Path of the ground-truth image ("" when the benchmark has none).
        facts: Hidden facts (offline world only); ``None`` for external benchmarks.
        extra: Any further fields of the source record (kept for round trips).
    """

    id: str
    prompt: str
    category: str
    difficulty: str = ""
    gt_image: str = ""
    facts: TaskFacts | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_record(self, *, with_facts: bool = True) -> dict[str, Any]:
        """Return the KnowGen record (``id``, ``prompt``, ``meta``, ``gt_image``)."""
        rec: dict[str, Any] = {
            "id": self.id,
            "prompt": self.prompt,
            "meta": {"category": self.category, "difficulty": self.difficulty},
            "gt_image": self.gt_image,
        }
        if with_facts and self.facts is not None:
            rec["facts"] = self.facts.to_dict()
        rec.update(self.extra)
        return rec

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> Task:
        meta = rec.get("meta") or {}
        known = {"id", "prompt", "meta", "gt_image", "facts"}
        return cls(
            id=str(rec["id"]),
            prompt=str(rec["prompt"]),
            category=str(meta.get("category", "")),
            difficulty=str(meta.get("difficulty", "")),
            gt_image=str(rec.get("gt_image", "")),
            facts=TaskFacts.from_dict(rec["facts"]) if rec.get("facts") else None,
            extra={k: v for k, v in rec.items() if k not in known},
        )


@dataclass(frozen=True)
class ToolCall:
    """A parsed tool call.

    Attributes:
        name: Tool name, e.g. ``"search"``.
        arguments: Keyword arguments as decoded from the action.
    """

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SearchHit:
    """One text search result."""

    title: str
    url: str
    snippet: str
    score: float = 0.0


@dataclass(frozen=True)
class ImageHit:
    """One image search result.

    Attributes:
        title: Caption or title of the image.
        url: Where the image lives.
        page_url: The page the image belongs to ("" if unknown).
        local_path: A local file holding the image bytes.
        image_id: Backend-specific stable id (the world image id offline), "" if none.
        score: Retrieval score.
    """

    title: str
    url: str
    page_url: str
    local_path: str
    image_id: str = ""
    score: float = 0.0


@dataclass(frozen=True)
class Page:
    """A browsed page, reduced to text."""

    url: str
    title: str
    text: str


@dataclass(frozen=True)
class ReferenceImage:
    """A reference the agent chose in its answer."""

    img_id: str
    note: str = ""


@dataclass(frozen=True)
class Answer:
    """The agent's final answer: a generation prompt plus references."""

    gen_prompt: str
    reference_images: tuple[ReferenceImage, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "gen_prompt": self.gen_prompt,
            "reference_images": [asdict(r) for r in self.reference_images],
        }


@dataclass(frozen=True)
class ResolvedReference:
    """A chosen reference resolved against the episode's image pool.

    Attributes:
        img_id: The per-episode id, ``IMG_###``.
        note: The agent's note.
        title: Title of the image.
        url: URL of the image.
        local_path: Local file with the image bytes.
        image_id: Backend-specific id (world image id offline), "" if none.
    """

    img_id: str
    note: str
    title: str
    url: str
    local_path: str
    image_id: str = ""


@dataclass(frozen=True)
class ImageJudgement:
    """A KnowGen image-judge verdict. Scores are 0, 0.5 or 1.

    Attributes:
        faithfulness: Every requested element and the scene structure present.
        visual_correctness: Required subjects match the GT's visual identity.
        text_accuracy: Required text present, legible and correct (0.5 when N/A).
        text_accuracy_na: True when the prompt requires no text.
        aesthetics: Polish relative to the GT.
        rationale: Short human-readable reasons.
        evidence: Machine-readable measurements behind the scores.
    """

    faithfulness: float
    visual_correctness: float
    text_accuracy: float
    text_accuracy_na: bool
    aesthetics: float
    rationale: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def overall(self) -> float:
        """0.1 F + 0.4 V + 0.4 T + 0.1 A, with T = 0.5 when N/A."""
        text = 0.5 if self.text_accuracy_na else self.text_accuracy
        return round(
            KNOWGEN_WEIGHTS["faithfulness"] * self.faithfulness
            + KNOWGEN_WEIGHTS["visual_correctness"] * self.visual_correctness
            + KNOWGEN_WEIGHTS["text_accuracy"] * text
            + KNOWGEN_WEIGHTS["aesthetics"] * self.aesthetics,
            4,
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["overall"] = self.overall
        return data


@dataclass(frozen=True)
class TextJudgement:
    """A text-judge verdict: is the answer sufficient? Score in {0, .25, .5, .75, 1}."""

    score: float
    rationale: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def task_family(task_id: str) -> str:
    """The family of a task: its id up to the first ``-`` (on the offline world the template
    that made it, ``two_flags-fr-es`` -> ``two_flags``); an id without ``-`` is its own."""
    return task_id.split("-", 1)[0]


def resolve_path(path: str | Path, base: str | Path) -> Path:
    """Resolve ``path`` against ``base`` when it is relative."""
    p = Path(path)
    return p if p.is_absolute() else Path(base) / p
