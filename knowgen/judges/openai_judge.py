"""Judges backed by any OpenAI-compatible chat endpoint (GPT-4.1, a vLLM-served VLM, ...).

* :class:`OpenAIImageJudge`: the KnowGen image rubric (image 1 generated, image 2 GT);
* :class:`OpenAITextJudge`: the text reward (task prompt, GT image, answer text + notes);
* :class:`OpenAIWiseJudge`: WISE, ``variant="legacy"`` (three 0-2 scores) or
  ``"verified"`` (``Score: 0/1``).

Images are re-encoded as JPEG (quality 100, optimised, EXIF orientation
applied, alpha flattened on white) with the longest side at most 4096 pixels and
sent as ``data:image/jpeg;base64,...`` URLs in chat content blocks; requests use
temperature 0. The KnowGen image request has the official evaluator's shape: the
rubric as the system message, then one user message holding one text block
(sample id, request, what to return) followed by image 1 (generated) and image 2
(ground truth), ``max_tokens`` 8192, and an ``Authorization: Bearer`` header on
every request (``EMPTY`` when the endpoint needs no key). By default a reply is
read as the official evaluator reads it (``strict=False``, see
:func:`knowgen.judges.rubrics.parse_image_reply`). ``score`` raises a typed :class:`~knowgen.net.openai_client.JudgeError`
for a sample it cannot score; :meth:`score_many` records that error per sample
instead. See :mod:`knowgen.net.openai_client` for retries, concurrency, the
API key and the reply cache, and :mod:`knowgen.judges.rubrics` for ``prompt_from``.

Example:
    >>> judge = OpenAIImageJudge("gpt-4.1", cache_dir=".cache/judge")
    >>> judge.score(task, image).overall
"""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from PIL import Image, ImageOps

from knowgen.errors import ConfigError, DataError
from knowgen.eval.wise_scoring import WiseLegacyJudgement, WiseVerifiedJudgement, check_variant
from knowgen.judges import rubrics
from knowgen.net.openai_client import ChatClient, JudgeError
from knowgen.types import Answer, ImageJudgement, ResolvedReference, Task, TextJudgement

logger = logging.getLogger(__name__)
R = TypeVar("R")

#: Longest image side sent to the judge, in pixels.
MAX_SIDE = 4096
JPEG_QUALITY = 100
#: Longest reply the KnowGen image judge may write (the official evaluator's limit).
IMAGE_JUDGE_MAX_TOKENS = 8192


def encode_image(image: Image.Image | str | Path, max_side: int = MAX_SIDE) -> str:
    """A ``data:image/jpeg;base64,...`` URL of ``image`` (RGB, longest side <= ``max_side``).

    Raises:
        DataError: when a path cannot be read as an image.
    """
    if not isinstance(image, Image.Image):
        try:
            with Image.open(image) as im:
                return encode_image(im.copy(), max_side)
        except (OSError, ValueError) as exc:
            raise DataError(f"Cannot read image {str(image)!r} for the judge: {exc}") from exc
    img = ImageOps.exif_transpose(image)
    if max(img.size) > max_side:
        scale = max_side / max(img.size)
        size = (max(1, int(img.width * scale)), max(1, int(img.height * scale)))
        img = img.resize(size, Image.Resampling.LANCZOS)
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        img = Image.new("RGB", rgba.size, "white")
        img.paste(rgba, mask=rgba.getchannel("A"))
    elif img.mode != "RGB":
        img = img.convert("RGB")
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _text(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def _image(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


@dataclass
class JudgeOutcome(Generic[R]):
    """One sample's result from :meth:`score_many`: a verdict or the error that stopped it."""

    index: int
    result: R | None = None
    error: str | None = None
    error_type: str | None = None


class _OpenAIJudgeBase:
    """Shared plumbing: rubric, client, message building and batch scoring."""

    rubric_kind = ""
    #: Request fields every request of this judge carries (``extra_body`` overrides them).
    default_body: ClassVar[dict[str, Any]] = {}

    def __init__(self, model: str, base_url: str = "https://api.openai.com/v1",
                 api_key_env: str | None = "OPENAI_API_KEY", timeout: float = 60,
                 max_retries: int = 6, concurrency: int = 4, cache_dir: str | None = None,
                 prompt_from: str | None = None, **client_options: Any):
        self.model = model
        self.concurrency = int(concurrency)
        self.rubric = rubrics.load_rubric(self.rubric_kind, prompt_from)
        client_options["extra_body"] = {**self.default_body,
                                        **(client_options.get("extra_body") or {})}
        client_options.setdefault("placeholder_key", "EMPTY")
        self.client = ChatClient(model, base_url=base_url, api_key_env=api_key_env,
                                 timeout=timeout, max_retries=max_retries,
                                 concurrency=concurrency, cache_dir=cache_dir, **client_options)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r}, url={self.client.url!r})"

    def _messages(self, fields: dict[str, str], content: list[dict[str, Any]]
                  ) -> list[dict[str, Any]]:
        system, _ = rubrics.fill_rubric(self.rubric, fields)
        return [{"role": "system", "content": system}, {"role": "user", "content": content}]

    def _ask(self, fields: dict[str, str], content: list[dict[str, Any]],
             parse: Callable[[str], R]) -> tuple[str, R]:
        return self.client.complete(self._messages(fields, content), parse)

    def score_many(self, items: Sequence[tuple[Any, ...]]) -> list[JudgeOutcome[Any]]:
        """Score many samples concurrently; each ends with exactly one verdict or error.

        Args:
            items: Argument tuples for :meth:`score`, e.g. ``[(task, image), ...]``.

        Returns:
            One :class:`JudgeOutcome` per item, in input order.
        """

        def one(i: int) -> JudgeOutcome[Any]:
            try:
                return JudgeOutcome(i, result=self.score(*items[i]))  # type: ignore[attr-defined]
            except (JudgeError, DataError) as exc:
                logger.error("Judging sample %d failed: %s", i, exc)
                return JudgeOutcome(i, error=str(exc), error_type=type(exc).__name__)

        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(one, range(len(items))))


def _gt_url(task: Task) -> str:
    if not task.gt_image or not Path(task.gt_image).is_file():
        raise DataError(f"Task {task.id!r} has no readable ground-truth image "
                        f"({task.gt_image!r}); this judge compares against the GT.")
    return encode_image(task.gt_image)


class OpenAIImageJudge(_OpenAIJudgeBase):
    """KnowGen image judge on an OpenAI-compatible chat endpoint.

    Args:
        model: Model name, e.g. ``"gpt-4.1"`` (paper parity) or a vLLM-served VLM.
        base_url: Endpoint root ending in ``/v1``.
        api_key_env: Environment variable holding the key (``""`` for none).
        timeout: Seconds per request.
        max_retries: Retries of transient failures (429, 5xx, timeouts, bad bodies).
        concurrency: Requests in flight at once to this endpoint.
        cache_dir: Reply cache folder; ``None`` disables it.
        prompt_from: A rubric file used instead of the built-in rubric
            (placeholder ``{prompt}``), see :mod:`knowgen.judges.rubrics`.
        strict: Refuse replies with a missing or off-scale score or without
            ``text_accuracy_na`` (``True``), or read them as the official
            evaluator does (``False``, the default; each leniency is logged and
            listed in ``evidence["lenient"]``).
        **client_options: ``backoff_base``, ``backoff_max``, ``extra_body`` (request
            fields over the defaults, e.g. ``{"max_tokens": 1024}``) and
            ``placeholder_key`` of the client.
    """

    rubric_kind = "knowgen_image"
    default_body: ClassVar[dict[str, Any]] = {"max_tokens": IMAGE_JUDGE_MAX_TOKENS}

    def __init__(self, model: str, strict: bool | str = False, **kwargs: Any):
        self.strict = _as_flag(strict, "strict")
        super().__init__(model, **kwargs)

    def score(self, task: Task, image: Image.Image) -> ImageJudgement:
        """Judge ``image`` against the task's GT on the four KnowGen dimensions.

        Raises:
            JudgeError: when the endpoint fails or the reply is unreadable (strict
                mode: also when a score is missing or off the scale).
            DataError: when the task has no readable GT image.
        """
        content = [
            _text(f"Sample id: {task.id}\n\nRequest:\n{task.prompt}\n\n"
                  "Image 1 below is the generated image to grade; image 2 is the "
                  "ground-truth image. Reply with the JSON object the instructions describe."),
            _image(encode_image(image)), _image(_gt_url(task)),
        ]
        strict = self.strict

        def parse(reply: str) -> ImageJudgement:
            return rubrics.parse_image_reply(reply, strict=strict)

        reply, verdict = self._ask({"prompt": task.prompt}, content, parse)
        evidence = {"judge": "openai", "model": self.model, "reply": reply, **verdict.evidence}
        return replace(verdict, evidence=evidence)


def _as_flag(value: bool | str, name: str) -> bool:
    """A boolean option that may come from a spec string (``strict=true``)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{name} must be true or false, got {value!r}.")


def answer_text(answer: Answer, references: Sequence[ResolvedReference]) -> str:
    """The answer as the text judge reads it: the prompt, then each reference's note."""
    ordinals = ("first", "second", "third", "fourth", "fifth")
    lines = [f"Generation prompt:\n{answer.gen_prompt}", "", "Reference images, in order:"]
    if not references:
        lines.append("(none)")
    for i, ref in enumerate(references):
        name = ordinals[i] if i < len(ordinals) else f"#{i + 1}"
        title = f" (titled {ref.title!r})" if ref.title else ""
        lines.append(f"- the {name} reference image{title}: {ref.note or '(no note)'}")
    return "\n".join(lines)


class OpenAITextJudge(_OpenAIJudgeBase):
    """Text-reward judge: would this answer let a perfect generator draw the GT?

    Takes the same arguments as :class:`OpenAIImageJudge` (``prompt_from``
    placeholders: ``{prompt}`` and ``{answer}``).
    """

    rubric_kind = "text_reward"

    def score(self, task: Task, answer: Answer,
              references: list[ResolvedReference]) -> TextJudgement:
        """Return a score in {0, 0.25, 0.5, 0.75, 1}.

        Raises:
            JudgeError: when the endpoint fails or the reply is unreadable or off-scale.
            DataError: when the task has no readable GT image.
        """
        text = answer_text(answer, references)
        content = [
            _text(f"Request:\n{task.prompt}"),
            _text("Ground-truth image:"), _image(_gt_url(task)),
            _text(f"The assistant's answer:\n{text}"),
        ]
        reply, verdict = self._ask({"prompt": task.prompt, "answer": text}, content,
                                   rubrics.parse_text_reply)
        return replace(verdict, evidence={"judge": "openai", "model": self.model, "reply": reply})


class OpenAIWiseJudge(_OpenAIJudgeBase):
    """WISE judge of one variant (no GT image; the prompt's explanation guides it).

    Args:
        variant: ``"legacy"`` (consistency, realism, aesthetic_quality in 0-2) or
            ``"verified"`` (``Score: 0`` / ``Score: 1``).
        model: Model name; the other arguments are those of :class:`OpenAIImageJudge`
            (``prompt_from`` placeholders: ``{prompt}`` and ``{explanation}``).
    """

    def __init__(self, variant: str, model: str, **kwargs: Any):
        self.variant = check_variant(variant)
        self.rubric_kind = f"wise_{variant}"
        super().__init__(model, **kwargs)

    def score(self, task: Task, image: Image.Image | str | Path
              ) -> WiseLegacyJudgement | WiseVerifiedJudgement:
        """Judge one WISE image; ``task.extra["explanation"]`` must hold the explanation.

        Raises:
            JudgeError: when the endpoint fails or the reply is unreadable or off-scale.
            DataError: when the task has no explanation.
        """
        explanation = str(task.extra.get("explanation", "")).strip()
        if not explanation:
            raise DataError(f"WISE task {task.id!r} has no explanation; load it with "
                            "knowgen.benchmarks.wise.WiseBenchmark.")
        content = [
            _text(f"Prompt:\n{task.prompt}\n\nExplanation:\n{explanation}"),
            _text("Image:"), _image(encode_image(image)),
        ]
        parse = (rubrics.parse_wise_legacy_reply if self.variant == "legacy"
                 else rubrics.parse_wise_verified_reply)
        _, verdict = self._ask({"prompt": task.prompt, "explanation": explanation}, content, parse)
        return verdict
