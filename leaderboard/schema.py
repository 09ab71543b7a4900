"""Submission format v1: the models behind ``submission.yaml``, ``results.json`` and ``samples.jsonl``.

A submission is a run folder written by ``knowgen eval`` (or a ``.zip`` /
``.tar.gz`` of one) plus a ``submission.yaml`` that says who made it and how::

    submission.yaml   who and what: system, agent, generator, judge, benchmark, date, contact
    results.json      the official KnowGen results array
    samples.jsonl     one sample a line, with the judge's per-sample scores
    images/           the generated images named by results.json
    summary.json      optional; its totals are compared with the recomputed ones

The JSON Schema of the format is :func:`submission_schema`, published as
``submission.schema.json`` beside this module.

Example ``submission.yaml``::

    format_version: 1
    system: My searcher + Qwen-Image
    agent: my-searcher-8b
    generator: qwen-image-edit-2509
    judge: {name: openai, model: gpt-4.1}
    benchmark: {name: knowgen, version: "sha256:0123456789ab", split: test}
    date: 2026-01-31
    contact: team@example.org
    link: https://example.org/paper
"""

from __future__ import annotations

import datetime as dt
import json
import math
import unicodedata
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
)

#: Version of the submission format this module reads and writes.
FORMAT_VERSION = 1
#: Where the published JSON Schema lives.
SCHEMA_PATH = Path(__file__).with_name("submission.schema.json")
#: Scale of the four KnowGen dimensions.
KNOWGEN_SCALE = (0.0, 0.5, 1.0)
#: Scale of the text judge's score.
TEXT_SCALE = (0.0, 0.25, 0.5, 0.75, 1.0)


def _no_control(value: str) -> str:
    """Refuse control characters (newlines only where a field allows them)."""
    bad = [c for c in value if unicodedata.category(c) == "Cc" and c not in "\n\t"]
    if bad:
        raise ValueError(f"contains control character(s) {', '.join(repr(c) for c in bad[:3])}")
    return value


def _one_line(value: str) -> str:
    if "\n" in value or "\t" in value:
        raise ValueError("must be a single line")
    return value.strip()


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an http:// or https:// address")
    return value


def _number(value: Any) -> Any:
    """Numbers only: refuse booleans and numeric strings that lax parsing would accept."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"must be a number, got {value!r}")  # noqa: TRY004 - pydantic needs it
    if not math.isfinite(float(value)):
        raise ValueError(f"must be finite, got {value!r}")
    return value


def _on_scale(scale: tuple[float, ...]) -> Any:
    def check(value: float) -> float:
        if not any(abs(value - s) < 1e-9 for s in scale):
            allowed = ", ".join(f"{s:g}" for s in scale)
            raise ValueError(f"{value!r} is off the rubric's scale ({allowed})")
        return value

    return check


def _line(max_length: int, min_length: int = 0) -> Any:
    return Annotated[str, StringConstraints(min_length=min_length, max_length=max_length),
                     AfterValidator(_no_control), AfterValidator(_one_line)]


Line = _line(100_000)
Name = _line(120, 1)
Text = Annotated[str, StringConstraints(max_length=4000), AfterValidator(_no_control)]
Url = Annotated[_line(500), AfterValidator(_http_url)]
Number = Annotated[float, BeforeValidator(_number)]
KnowGenScore = Annotated[float, BeforeValidator(_number), AfterValidator(_on_scale(KNOWGEN_SCALE))]
TextScore = Annotated[float, BeforeValidator(_number), AfterValidator(_on_scale(TEXT_SCALE))]
WiseScore = Annotated[int, BeforeValidator(_number)]
SampleId = _line(200, 1)
RelPath = Annotated[str, StringConstraints(min_length=1, max_length=500)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=100_000)


class JudgeInfo(_Model):
    """The image judge that produced the per-sample scores."""

    name: Name = Field(description="Registered judge name, e.g. 'offline' or 'openai'.")
    model: Name = Field(description="Judge model, e.g. 'gpt-4.1'; 'offline' for the offline judge.")


class BenchmarkInfo(_Model):
    """Which benchmark, version and split the submission answers."""

    name: Literal["world", "knowgen", "wise"] = Field(description="Registered benchmark name.")
    version: Name = Field(description="The benchmark's version string (run summary "
                          "'benchmark_version'); it must match the maintainer's copy.")
    split: Name = Field(description="Split name, e.g. 'test'.")
    limit: int | None = Field(default=None, ge=1, description="When set, the submission covers "
                              "the evenly spread subset 'knowgen eval --limit N' selects.")
    args: dict[str, int | str] = Field(default_factory=dict, description="Arguments that "
                                       "change the task set: 'seed' for world, 'variant' for wise.")


class SubmissionMeta(_Model):
    """The contents of ``submission.yaml``."""

    format_version: Literal[1] = Field(description="Submission format version; must be 1.")
    system: Name = Field(description="Name shown on the board.")
    agent: Name = Field(description="The searching agent or policy, e.g. 'scripted'.")
    generator: Name = Field(description="The image generator, e.g. 'qwen-image-edit-2509'.")
    judge: JudgeInfo
    benchmark: BenchmarkInfo
    date: dt.date = Field(description="Date the run finished (YYYY-MM-DD).")
    contact: Name = Field(description="E-mail address or handle of the submitter.")
    link: Url | None = Field(default=None, description="Paper, code or model page (http/https).")
    description: Text = Field(default="", description="Free text shown on the entry page.")


class Meta(BaseModel):
    """``meta`` of a results item or a sample."""

    model_config = ConfigDict(extra="allow")
    category: Name
    difficulty: _line(120) = ""  # type: ignore[valid-type]


class ResultItem(BaseModel):
    """One item of ``results.json`` (the official KnowGen results format)."""

    model_config = ConfigDict(extra="allow")
    id: SampleId
    success: bool
    prompt: Annotated[str, StringConstraints(max_length=20_000), AfterValidator(_no_control)]
    meta: Meta
    output_path: RelPath | None = None
    gt_image: RelPath | None = None


class ImageScores(BaseModel):
    """The KnowGen image judgement of one sample; ``overall`` is recomputed, never trusted."""

    model_config = ConfigDict(extra="allow")
    faithfulness: KnowGenScore
    visual_correctness: KnowGenScore
    text_accuracy: KnowGenScore
    text_accuracy_na: bool = False
    aesthetics: KnowGenScore
    overall: Number | None = None
    rationale: str = Field(default="", max_length=20_000)


class TextScores(BaseModel):
    """The text judgement of one sample."""

    model_config = ConfigDict(extra="allow")
    score: TextScore
    rationale: str = Field(default="", max_length=20_000)


class WiseScores(BaseModel):
    """A WISE judgement: ``consistency``/``realism``/``aesthetic_quality`` (legacy) or ``score``."""

    model_config = ConfigDict(extra="allow")
    consistency: WiseScore | None = None
    realism: WiseScore | None = None
    aesthetic_quality: WiseScore | None = None
    score: WiseScore | None = None


class SampleRecord(BaseModel):
    """One line of ``samples.jsonl``; fields beyond these (trajectory, answer, ...) are kept as is."""

    model_config = ConfigDict(extra="allow")
    id: SampleId
    meta: Meta
    success: bool
    output_path: RelPath | None = None
    gt_image: RelPath | None = None
    image_judgement: ImageScores | None = None
    text_judgement: TextScores | None = None
    wise_judgement: WiseScores | None = None
    reward: Number | None = None


class Submission(BaseModel):
    """A whole submission, file by file (``submission.yaml``, ``results.json``, ``samples.jsonl``)."""

    model_config = ConfigDict(extra="forbid", title=f"knowgen leaderboard submission v{FORMAT_VERSION}")
    submission: SubmissionMeta = Field(description="The file submission.yaml.")
    results: list[ResultItem] = Field(description="The file results.json.")
    samples: list[SampleRecord] = Field(description="The file samples.jsonl, one item a line.")


def submission_schema() -> dict[str, Any]:
    """The JSON Schema of submission format v1."""
    schema = Submission.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$comment"] = ("Each property is one file of the submission folder or archive; "
                          "images are stored under the paths named by output_path.")
    return schema


def schema_text() -> str:
    """:func:`submission_schema` as the exact text of ``submission.schema.json``."""
    return json.dumps(submission_schema(), indent=2, sort_keys=True) + "\n"


def export_schema(path: str | Path = SCHEMA_PATH) -> Path:
    """Write the JSON Schema to ``path`` (default: ``submission.schema.json`` beside this module)."""
    target = Path(path)
    target.write_text(schema_text(), encoding="utf-8")
    return target
