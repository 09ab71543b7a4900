"""Judge rubrics (in this project's own words, on the official scales) and reply parsing.

Four rubrics exist, one per judging task:

* ``knowgen_image``: the KnowGen image rubric, four scores on {0, 0.5, 1} plus
  ``text_accuracy_na``;
* ``text_reward``: would the answer let a perfect generator draw the GT? {0, .25, .5, .75, 1};
* ``wise_legacy``: consistency, realism, aesthetic_quality, each 0, 1 or 2;
* ``wise_verified``: ``Score: 0`` or ``Score: 1``.

**Official prompt text.** Pass ``prompt_from=PATH`` to a judge to use another
rubric, e.g. the prompt file of a local checkout of the upstream benchmark. The
file is read as UTF-8 at run time and replaces the built-in rubric. The
placeholders ``{prompt}`` and (WISE) ``{explanation}`` are filled by plain text
replacement (other braces, e.g. JSON examples, are left alone); when the file has
no placeholder, the task text is sent in the user message as usual. The reply must
still use the keys or the ``Score:`` line that the parsers below read.

Parsing is forgiving about form (code fences, trailing commas, prose around the
JSON). For content, the KnowGen image verdict has two modes:

* **upstream-compatible** (``parse_image_reply(reply, strict=False)``, what the
  judges use by default): a reply is read the way the official KnowGen evaluator
  reads it, so both give the same scores on the same replies. A value off the
  {0, 0.5, 1} scale is clipped to [0, 1], rounded to 2 decimals and kept; a
  missing ``text_accuracy_na`` means "text is scored"; a ``text_accuracy`` that is
  not a number (``"N/A"``) means N/A; a missing score counts 0. Each such
  leniency is logged as a warning and listed in the verdict's
  ``evidence["lenient"]`` so that summaries can count it.
* **strict** (``strict=True``): a missing or off-scale score raises
  :class:`JudgeResponseError` for that sample; nothing is scored 0 by default.
"""

from __future__ import annotations

import json
import logging
import math
import re
from pathlib import Path
from typing import Any

from knowgen.errors import ConfigError
from knowgen.eval.wise_scoring import WiseLegacyJudgement, WiseVerifiedJudgement
from knowgen.net.openai_client import JudgeError
from knowgen.types import ImageJudgement, TextJudgement

logger = logging.getLogger(__name__)

KNOWGEN_SCALE = (0.0, 0.5, 1.0)
TEXT_SCALE = (0.0, 0.25, 0.5, 0.75, 1.0)
WISE_LEGACY_SCALE = (0.0, 1.0, 2.0)
WISE_VERIFIED_SCALE = (0.0, 1.0)

KNOWGEN_IMAGE_RUBRIC = """\
You grade an image made by an image generator for a request that needs specific \
real-world knowledge. You receive the request and two images. Image 1 is the \
candidate to grade. Image 2 is a ground-truth image showing a correct result. \
Grade Image 1 only, and use Image 2 as the standard for who or what must appear, \
what it must look like and what text it must carry.

Give four scores, each exactly 0, 0.5 or 1:
- faithfulness: Image 1 holds every element the request names, in the scene, \
layout or composition it asks for. 1: all present and arranged as asked. 0.5: a \
minor element missing or the arrangement partly off. 0: major elements missing or \
a different scene.
- visual_correctness: each specific subject (person, character, landmark, flag, \
logo, species, object, ...) has the stable visual identity it has in Image 2. Be \
strict: a generic, invented or look-alike subject is wrong. 1: recognisably the \
same subjects with their defining features right. 0.5: the right subject with \
clear errors in defining features. 0: wrong, generic or unrecognisable.
- text_accuracy: all readable text the request requires (names, titles, labels, \
dates, numbers) is present, legible and spelled exactly right. 1: all of it. 0.5: \
part of it, or hard to read. 0: missing or wrong. When the request needs no text \
at all, set text_accuracy_na to true and text_accuracy to 0.5.
- aesthetics: overall polish of Image 1 next to Image 2 (composition, rendering, \
absence of artefacts). 1: as polished as Image 2 or better. 0.5: acceptable with \
visible flaws. 0: poor.

Answer with one JSON object and nothing else:
{"rationale": "<two to four sentences>", "faithfulness": 0|0.5|1, \
"visual_correctness": 0|0.5|1, "text_accuracy": 0|0.5|1, \
"text_accuracy_na": true|false, "aesthetics": 0|0.5|1}
"""

TEXT_REWARD_RUBRIC = """\
You review a plan for making an image. A user asked for an image (the request). An \
assistant researched the request, then wrote a prompt for an image generator and \
picked reference images, each with a note saying what it shows. A ground-truth \
image shows the correct result.

Question: if a perfect image generator received exactly this prompt and these \
reference images, would it produce an image that matches the ground truth, with \
the right subjects in their exact appearance, every required element, and all \
required text spelled right?

Score on this scale:
1: fully sufficient.
0.75: sufficient except for a minor detail.
0.5: the main subject is right but important elements are missing or misidentified.
0.25: mostly insufficient; only fragments are right.
0: wrong subject, or unusable.

Answer with one JSON object and nothing else:
{"rationale": "<two to four sentences>", "score": 0|0.25|0.5|0.75|1}
"""

WISE_LEGACY_RUBRIC = """\
You grade an image generated from a prompt whose correct rendering needs world \
knowledge (culture, time, space, biology, physics or chemistry). You receive the \
prompt, an explanation of what a correct image must show, and the image.

Give three whole-number scores, each 0, 1 or 2:
- consistency: the image shows what the explanation says the prompt implies. \
2: fully. 1: partly, or with a notable error. 0: not at all.
- realism: the image is physically plausible and looks real (or coherent in the \
style the prompt asks for). 2: convincing. 1: some implausible parts. 0: heavily \
distorted or impossible.
- aesthetic_quality: composition, colour, lighting and detail. 2: high. \
1: ordinary. 0: poor.

Answer with one JSON object and nothing else:
{"rationale": "<one to three sentences>", "consistency": 0|1|2, "realism": 0|1|2, \
"aesthetic_quality": 0|1|2}
"""

WISE_VERIFIED_RUBRIC = """\
You check an image generated from a prompt whose correct rendering needs world \
knowledge. You receive the prompt, an explanation of what a correct image must \
show, and the image. Decide whether the image gets the knowledge-dependent content \
right: the thing the explanation describes must be clearly and correctly shown. \
Style and polish do not matter. A partly right or ambiguous image fails.

Write one or two sentences of reasoning, then end with a last line that is exactly \
"Score: 1" (correct) or "Score: 0" (not correct).
"""

RUBRICS: dict[str, str] = {
    "knowgen_image": KNOWGEN_IMAGE_RUBRIC,
    "text_reward": TEXT_REWARD_RUBRIC,
    "wise_legacy": WISE_LEGACY_RUBRIC,
    "wise_verified": WISE_VERIFIED_RUBRIC,
}


class JudgeResponseError(JudgeError):
    """A judge's reply could not be read or holds a missing or off-scale score.

    Attributes:
        reply: The reply text (for the sample's record).
    """

    def __init__(self, message: str, reply: str = ""):
        super().__init__(message)
        self.reply = reply


def load_rubric(kind: str, prompt_from: str | Path | None = None) -> str:
    """The rubric text of ``kind``: the built-in one, or the file ``prompt_from``.

    Raises:
        ConfigError: for an unknown kind or an unreadable or empty file.
    """
    if kind not in RUBRICS:
        raise ConfigError(f"Unknown rubric {kind!r}; known: {', '.join(RUBRICS)}.")
    if prompt_from is None:
        return RUBRICS[kind]
    path = Path(prompt_from).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Cannot read the rubric file {str(path)!r} (prompt_from): {exc}") from exc
    if not text.strip():
        raise ConfigError(f"The rubric file {str(path)!r} (prompt_from) is empty.")
    return text


def fill_rubric(rubric: str, fields: dict[str, str]) -> tuple[str, bool]:
    """Replace ``{name}`` placeholders of ``fields`` in ``rubric``; say whether any was found."""
    found = False
    for name, value in fields.items():
        token = "{" + name + "}"
        if token in rubric:
            rubric, found = rubric.replace(token, value), True
    return rubric, found


# ---------------------------------------------------------------- JSON extraction

_FENCE = re.compile(r"```[a-zA-Z0-9_-]*\s*\n?(.*?)```", re.DOTALL)


def _string_step(ch: str, escaped: bool) -> tuple[bool, bool]:
    """Inside a JSON string: return (still inside, next char escaped)."""
    if escaped:
        return True, False
    if ch == "\\":
        return True, True
    return ch != '"', False


def _balanced_objects(text: str) -> list[str]:
    """Every top-level ``{...}`` span of ``text``, string-aware, in order."""
    spans, depth, start, in_str, esc = [], 0, -1, False, False
    for i, ch in enumerate(text):
        if in_str:
            in_str, esc = _string_step(ch, esc)
            continue
        if ch == '"' and depth:
            in_str, esc = True, False
        elif ch == "{":
            start = i if depth == 0 else start
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
            if depth == 0:
                spans.append(text[start:i + 1])
    return spans


def _drop_trailing_commas(text: str) -> str:
    out, in_str, esc = [], False, False
    for i, ch in enumerate(text):
        if in_str:
            in_str, esc = _string_step(ch, esc)
        elif ch == '"':
            in_str, esc = True, False
        elif ch == "," and text[i + 1:].lstrip()[:1] in ("}", "]"):
            continue
        out.append(ch)
    return "".join(out)


def extract_json(text: str, expect: tuple[str, ...] = ()) -> dict[str, Any]:
    """The JSON object in a reply: fenced or bare, with prose around it, trailing commas allowed.

    Objects holding one of the ``expect`` keys are preferred.

    Raises:
        JudgeResponseError: when no JSON object can be read.
    """
    sources = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    found: list[dict[str, Any]] = []
    for source in sources:
        for span in _balanced_objects(source):
            for candidate in (span, _drop_trailing_commas(span)):
                try:
                    obj = json.loads(candidate)
                except ValueError:
                    continue
                if isinstance(obj, dict):
                    found.append(obj)
                    break
    for obj in found:
        if any(k in obj or k in (obj.get("scores") or {}) for k in expect):
            return obj
    if found and not expect:
        return found[0]
    raise JudgeResponseError("The judge's reply holds no JSON object with the expected scores "
                             f"({', '.join(expect) or 'any'}).", text)


# ---------------------------------------------------------------- validation

def on_scale(value: Any, scale: tuple[float, ...], name: str, reply: str = "") -> float:
    """``value`` as the matching member of ``scale``.

    Raises:
        JudgeResponseError: when the value is missing, not a number, or not on the scale.
    """
    if value is None or isinstance(value, bool):
        raise JudgeResponseError(f"The judge gave no usable {name} ({value!r}).", reply)
    try:
        number = float(str(value).strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        raise JudgeResponseError(f"The judge's {name} {value!r} is not a number.", reply) from None
    for allowed in scale:
        if math.isclose(number, allowed, abs_tol=1e-6):
            return allowed
    raise JudgeResponseError(f"The judge's {name} is {value!r}, which is off the scale "
                             f"{', '.join(f'{s:g}' for s in scale)}.", reply)


def _field(obj: dict[str, Any], name: str, reply: str) -> Any:
    nested = obj.get("scores") if isinstance(obj.get("scores"), dict) else {}
    if name in obj:
        return obj[name]
    if name in nested:
        return nested[name]
    raise JudgeResponseError(f"The judge's reply lacks {name!r}.", reply)


def _rationale(obj: dict[str, Any]) -> str:
    for key in ("rationale", "reasoning", "explanation", "reason"):
        if isinstance(obj.get(key), str):
            return obj[key].strip()
    return ""


def _as_bool(value: Any, name: str, reply: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
        return value.strip().lower() == "true"
    raise JudgeResponseError(f"The judge's {name} must be true or false, got {value!r}.", reply)


_NA_WORDS = {"n/a", "na", "none", "not applicable"}


def parse_image_reply(reply: str, strict: bool = True) -> ImageJudgement:
    """Read a KnowGen image verdict.

    Args:
        reply: The judge's reply text.
        strict: Refuse missing and off-scale scores (``True``), or read the reply
            as the official evaluator does (``False``, see the module docstring).

    Raises:
        JudgeResponseError: for unreadable JSON or a score that is not a number;
            in strict mode also for a missing score or one off {0, 0.5, 1}.
    """
    if not strict:
        return _parse_image_reply_compat(reply)
    obj = extract_json(reply, ("faithfulness", "visual_correctness"))
    text_raw = obj.get("text_accuracy", (obj.get("scores") or {}).get("text_accuracy"))
    if "text_accuracy_na" in obj or "text_accuracy_na" in (obj.get("scores") or {}):
        na = _as_bool(_field(obj, "text_accuracy_na", reply), "text_accuracy_na", reply)
    elif isinstance(text_raw, str) and text_raw.strip().lower() in _NA_WORDS:
        na = True
    else:
        raise JudgeResponseError("The judge's reply lacks 'text_accuracy_na'.", reply)
    if na:
        text = 0.5
    else:
        text = on_scale(_field(obj, "text_accuracy", reply), KNOWGEN_SCALE, "text_accuracy", reply)
    return ImageJudgement(
        faithfulness=on_scale(_field(obj, "faithfulness", reply), KNOWGEN_SCALE,
                              "faithfulness", reply),
        visual_correctness=on_scale(_field(obj, "visual_correctness", reply), KNOWGEN_SCALE,
                                    "visual_correctness", reply),
        text_accuracy=text,
        text_accuracy_na=na,
        aesthetics=on_scale(_field(obj, "aesthetics", reply), KNOWGEN_SCALE, "aesthetics", reply),
        rationale=_rationale(obj),
    )


#: Kinds of leniency the upstream-compatible reading may apply (summary counters).
LENIENCIES = ("off_scale", "missing_score", "missing_text_na")


def _plain_number(value: Any, name: str, reply: str) -> float:
    """``value`` as a float the way Python's ``float()`` reads it; finite only."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise JudgeResponseError(f"The judge's {name} {value!r} is not a number.", reply) from None
    if not math.isfinite(number):
        raise JudgeResponseError(f"The judge's {name} {value!r} is not a finite number.", reply)
    return number


def _kept_score(number: float) -> float:
    """A score clipped to [0, 1] and rounded to 2 decimals (the official evaluator's rule)."""
    return round(min(1.0, max(0.0, number)), 2)


def _is_on_scale(number: float) -> bool:
    return any(math.isclose(number, allowed, abs_tol=1e-6) for allowed in KNOWGEN_SCALE)


def _parse_image_reply_compat(reply: str) -> ImageJudgement:
    obj = extract_json(reply, ("faithfulness", "visual_correctness"))
    nested = obj.get("scores") if isinstance(obj.get("scores"), dict) else {}
    notes: list[str] = []

    def raw(name: str) -> tuple[bool, Any]:
        if name in obj:
            return True, obj[name]
        if name in nested:
            return True, nested[name]
        return False, None

    def score(name: str) -> float:
        present, value = raw(name)
        if not present:
            notes.append(f"missing_score: {name} absent, counted 0")
            return 0.0
        number = _plain_number(value, name, reply)
        if not _is_on_scale(number):
            notes.append(f"off_scale: {name} {value!r} kept as {_kept_score(number):g}")
        return _kept_score(number)

    f, v, a = score("faithfulness"), score("visual_correctness"), score("aesthetics")
    has_flag, flag = raw("text_accuracy_na")
    na = _flag_says_na(flag)
    text = 0.5
    if not na:
        present, value = raw("text_accuracy")
        if present and not _numeric(value):
            na = True  # a text score that is no number ("N/A", null) means N/A
        else:
            text = score("text_accuracy")
            if not has_flag:
                notes.append("missing_text_na: text_accuracy_na absent, text scored")
    for note in notes:
        logger.warning("Judge reply read leniently (upstream-compatible): %s", note)
    evidence = {"lenient": notes} if notes else {}
    return ImageJudgement(faithfulness=f, visual_correctness=v, text_accuracy=text,
                          text_accuracy_na=na, aesthetics=a, rationale=_rationale(obj),
                          evidence=evidence)


def _flag_says_na(flag: Any) -> bool:
    """Whether a ``text_accuracy_na`` value means N/A: true, 1 or the string "true"/"True"."""
    if isinstance(flag, (bool, int, float)):
        return flag == 1
    return flag in ("true", "True")


def _numeric(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def lenient_counts(evidences: list[dict[str, Any]]) -> dict[str, int]:
    """Samples per kind of leniency, from verdicts' ``evidence`` (see :data:`LENIENCIES`)."""
    counts = dict.fromkeys(LENIENCIES, 0)
    for evidence in evidences:
        kinds = {str(n).split(":", 1)[0] for n in (evidence or {}).get("lenient", [])}
        for kind in kinds & set(counts):
            counts[kind] += 1
    return counts


def parse_text_reply(reply: str) -> TextJudgement:
    """Read a text-reward verdict.

    Raises:
        JudgeResponseError: for unreadable JSON or a score off {0, .25, .5, .75, 1}.
    """
    obj = extract_json(reply, ("score",))
    score = on_scale(_field(obj, "score", reply), TEXT_SCALE, "score", reply)
    return TextJudgement(score=score, rationale=_rationale(obj))


_LEGACY_KEYS = ("consistency", "realism", "aesthetic_quality")
_LINE = re.compile(r"^[\s*#>-]*(consistency|realism|aesthetic[ _]quality)\**\s*[:=]\s*\**\s*"
                   r"([-+]?\d+(?:\.\d+)?)", re.IGNORECASE | re.MULTILINE)


def parse_wise_legacy_reply(reply: str) -> WiseLegacyJudgement:
    """Read a legacy WISE verdict: JSON, or ``Consistency: 2``-style lines.

    Raises:
        JudgeResponseError: for a missing score or one that is not 0, 1 or 2.
    """
    try:
        obj = extract_json(reply, _LEGACY_KEYS)
    except JudgeResponseError:
        obj = {m.group(1).lower().replace(" ", "_"): m.group(2) for m in _LINE.finditer(reply)}
        if not obj:
            raise
    values = [int(on_scale(_field(obj, k, reply), WISE_LEGACY_SCALE, k, reply))
              for k in _LEGACY_KEYS]
    return WiseLegacyJudgement(*values, rationale=_rationale(obj))


_SCORE_LINE = re.compile(r"score\W{0,3}\s*[:=]\s*\**\s*([-+]?\d+(?:\.\d+)?)", re.IGNORECASE)


def parse_wise_verified_reply(reply: str) -> WiseVerifiedJudgement:
    """Read a verified WISE verdict: the last ``Score: N`` in the reply (or JSON ``score``).

    Raises:
        JudgeResponseError: when no score is found or it is not 0 or 1.
    """
    matches = _SCORE_LINE.findall(reply)
    if matches:
        raw: Any = matches[-1]
        rationale = reply[:reply.lower().rfind("score")].strip()
    else:
        obj = extract_json(reply, ("score",))
        raw, rationale = _field(obj, "score", reply), _rationale(obj)
    value = int(on_scale(raw, WISE_VERIFIED_SCALE, "score", reply))
    return WiseVerifiedJudgement(value, rationale=rationale)
