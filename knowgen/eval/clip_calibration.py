"""Fitting the clip judge's thresholds on judged samples, and the committed calibration set.

``knowgen judge calibrate`` takes samples whose reference verdicts are known,
computes the clip judge's raw similarities for each, fits the cut points that
reproduce the reference levels best (:func:`knowgen.judges.clip_thresholds.fit_cut_points`)
and reports agreement per dimension: the exact-match rate on the samples, the
same rate held out (fitted on one half, counted on the other, both ways), and
Spearman's correlation of the raw similarity with the reference level.

Samples come from one of two places:

* the **committed calibration set** (:data:`CASES_FILE`, the default): world
  tasks of the ``train`` split drawn by the compositor as they should be and
  with known faults (a wrong entity, a look-alike, a missing or misspelled
  text, a blank), each with the offline judge's verdict, which is exact for
  compositor images. :func:`build_cases` writes it; the images are drawn again
  from the world's pictures whenever it is used.
* **a results file and a reference judge's output** on it (``--results`` with
  ``--reference``): for example a KnowGen run judged once with an API judge,
  whose verdicts the clip judge then learns to approximate.
"""

from __future__ import annotations

import json
import logging
import random
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image
from tqdm.auto import tqdm

from knowgen.errors import DataError
from knowgen.eval import upstream_format
from knowgen.eval.judge_results import load_results, resolve_path, task_maker
from knowgen.eval.rundir import SampleLog
from knowgen.fileio import atomic_write_text, read_json_items
from knowgen.generators.layout import compose
from knowgen.judges.clip_judge import ClipImageJudge
from knowgen.judges.clip_thresholds import (
    CALIBRATED,
    Thresholds,
    agreement,
    fit_cut_points,
    spearman,
    to_level,
)
from knowgen.judges.offline_image import UNIFORM_STD, aesthetics_proxy
from knowgen.types import ImageJudgement, RequiredEntity, Task, TaskFacts
from knowgen.world.data import World, load_world
from knowgen.world.render import render_gt

logger = logging.getLogger(__name__)

#: The committed calibration set.
CASES_FILE = Path(__file__).parent / "calibration" / "world_cases.jsonl"
#: Dimensions whose agreement is reported (the calibrated ones, then the rest).
DIMENSIONS = (*CALIBRATED, "text_accuracy", "aesthetics")
#: Faults a calibration case may carry (besides ``gt``, the right image).
VARIANTS = ("wrong_entity", "lookalike", "one_wrong", "no_text", "typo", "texts_only", "blank")
_SIZE = (512, 512)


@dataclass
class Sample:
    """One judged sample: the task, the image and the reference verdict."""

    id: str
    task: Task
    image: Image.Image
    reference: dict[str, Any]


# -- the committed set -------------------------------------------------------------------------

def build_cases(world: World | None = None, split: str = "train", seed: int = 0,
                per_family: int = 3, faults_per_task: int = 2) -> list[dict[str, Any]]:
    """Cases of the calibration set, with the offline judge's verdicts as references.

    For each task family of ``split``, the first ``per_family`` tasks each give
    the right image and ``faults_per_task`` faulty ones (chosen from the faults
    that apply to the task, reproducibly).
    """
    from knowgen.judges.offline_image import OfflineImageJudge
    from knowgen.world.tasks import generate_tasks

    world = world or load_world()
    judge = OfflineImageJudge(ocr="rapidocr")
    per: dict[str, list[Task]] = {}
    for task in generate_tasks(world, split, seed=seed):
        per.setdefault(task.facts.template, [])
        if len(per[task.facts.template]) < per_family:
            per[task.facts.template].append(task)
    cases = []
    with gt_folder() as folder:
        for family in sorted(per):
            for task in per[family]:
                rng = random.Random(f"{seed}|{task.id}")
                for variant in ["gt", *_faults(task, world, rng, faults_per_task, len(cases))]:
                    case = _case(task, variant, world, rng)
                    sample = case_sample(case, world, folder)
                    verdict = judge.score(sample.task, sample.image)
                    case["reference"] = {k: getattr(verdict, k) for k in (
                        *DIMENSIONS, "text_accuracy_na")}
                    cases.append(case)
    return cases


def _faults(task: Task, world: World, rng: random.Random, count: int, n_before: int) -> list[str]:
    """``count`` faults for ``task``: a half-right picture set first where there are two
    entities (the rare middle level), a blank now and then (the judge never thresholds
    blanks), the rest drawn."""
    chosen = ["one_wrong"] if _applies("one_wrong", task, world) else []
    if n_before % 12 == 0:
        chosen.append("blank")
    rest = [v for v in VARIANTS if v not in ("one_wrong", "blank") and _applies(v, task, world)]
    return (chosen + rng.sample(rest, len(rest)))[:count]


def _applies(variant: str, task: Task, world: World) -> bool:
    ents, texts = task.facts.entities, task.facts.required_text
    return {"lookalike": all(f"lookalike/{e.image_id}" in world.images for e in ents),
            "one_wrong": len(ents) >= 2, "no_text": bool(texts), "typo": bool(texts),
            "texts_only": bool(texts)}.get(variant, True)


def _case(task: Task, variant: str, world: World, rng: random.Random) -> dict[str, Any]:
    ents = task.facts.entities
    pictures = [e.image_id for e in ents]
    texts = list(task.facts.required_text)
    if variant == "wrong_entity":
        pictures = [_other_picture(e, world, rng) for e in ents]
    elif variant == "one_wrong":
        pictures[-1] = _other_picture(ents[-1], world, rng)
    elif variant == "lookalike":
        pictures = [f"lookalike/{p}" for p in pictures]
    elif variant == "no_text":
        texts = []
    elif variant == "typo":
        texts[0] = _misspell(texts[0], rng)
    elif variant == "texts_only":
        pictures = []
    case: dict[str, Any] = {
        "id": f"{task.id}/{variant}", "variant": variant,
        "task": {"id": task.id, "prompt": task.prompt, "category": task.category,
                 "entities": [[e.entity_id, e.name, e.image_id] for e in ents],
                 "required_text": list(task.facts.required_text),
                 "text_case": task.facts.text_case},
        "pictures": pictures, "texts": texts,
    }
    if variant == "blank":
        case.update(pictures=[], texts=[], colour=rng.choice([[255, 255, 255], [0, 0, 0],
                                                              [128, 128, 128]]))
    return case


def _other_picture(entity: RequiredEntity, world: World, rng: random.Random) -> str:
    kind = world.entities[entity.entity_id].kind
    others = [e.image_id for e in world.entities_of(kind) if e.id != entity.entity_id]
    return rng.choice(others)


def _misspell(text: str, rng: random.Random) -> str:
    letters = [i for i, c in enumerate(text) if c.isalpha()]
    i = letters[len(letters) // 2] if letters else 0
    c = text[i] if text else "a"
    swap = "E" if c.upper() != "E" else "A"
    return text[:i] + (swap if c.isupper() else swap.lower()) + text[i + 1:]


def load_cases(path: str | Path = CASES_FILE) -> list[dict[str, Any]]:
    """The cases of a calibration set file, checked.

    Raises:
        DataError: when the file is unreadable or a case lacks a field.
    """
    cases = read_json_items(path, "Calibration set")
    for n, case in enumerate(cases, 1):
        if not isinstance(case, dict) or not isinstance(case.get("task"), dict) \
                or not isinstance(case.get("reference"), dict) \
                or not all(k in case["reference"] for k in DIMENSIONS):
            raise DataError(f"{path}: case {n} lacks task, pictures, texts or a reference "
                            f"with {', '.join(DIMENSIONS)}.")
    return cases


@contextmanager
def gt_folder() -> Iterator[Path]:
    """A temporary folder for the GT images of calibration cases (removed on exit)."""
    with tempfile.TemporaryDirectory(prefix="knowgen-calibration-") as folder:
        yield Path(folder)


def case_sample(case: dict[str, Any], world: World, gt_folder: Path) -> Sample:
    """The task (its GT drawn into ``gt_folder``), image and reference of one case."""
    t = case["task"]
    try:
        facts = TaskFacts(entities=tuple(RequiredEntity(*e) for e in t["entities"]),
                          required_text=tuple(t["required_text"]),
                          text_case=t.get("text_case", ""))
        gt_path = gt_folder / f"{len(list(gt_folder.iterdir()))}.png"
        task = Task(id=t["id"], prompt=t["prompt"], category=t["category"],
                    gt_image=str(gt_path), facts=facts)
        render_gt(task, world).save(gt_path)
        if "colour" in case:
            image = Image.new("RGB", _SIZE, tuple(case["colour"]))
        else:
            pictures = [_picture(world, p) for p in case["pictures"]]
            image = compose(pictures, list(case["texts"]), _SIZE)
    except (KeyError, TypeError) as exc:
        raise DataError(f"Calibration case {case.get('id')!r} is malformed: {exc!r}") from exc
    return Sample(str(case["id"]), task, image, dict(case.get("reference") or {}))


def _picture(world: World, image_id: str) -> Image.Image:
    if image_id not in world.images:
        raise DataError(f"Calibration picture {image_id!r} is not in the world at "
                        f"{world.data_dir}: the set was built from another world.")
    with Image.open(world.image_path(image_id)) as img:
        return img.convert("RGB")


def case_samples(path: str | Path, gt_folder: Path, world: World | None = None) -> Iterator[Sample]:
    """Every sample of a calibration set file, their GT images drawn into ``gt_folder``."""
    world = world or load_world()
    for case in load_cases(path):
        yield case_sample(case, world, gt_folder)


# -- samples from a results file ---------------------------------------------------------------

def result_samples(results: str | Path, reference: str | Path, world_seed: int = 0,
                   world_cache_dir: str | None = None) -> Iterator[Sample]:
    """The items of a results file that the reference judge scored, with their verdicts.

    Args:
        results: An official results JSON array (as ``knowgen judge`` reads it).
        reference: The reference judge's output: a ``knowgen judge`` output folder
            (its ``judged.jsonl``) or an official ``results_eval.json``.
    """
    results = Path(results).resolve()
    verdicts = _reference_verdicts(Path(reference))
    maker = task_maker(results.parent, "clip", world_seed, world_cache_dir)

    for item in load_results(results):
        verdict = verdicts.get(str(item["id"]))
        image_path = resolve_path(results.parent, str(item.get("output_path") or ""))
        if verdict is None or image_path is None or not image_path.is_file():
            continue
        with Image.open(image_path) as img:
            image = img.convert("RGB")
        yield Sample(str(item["id"]), maker.make(item), image, verdict)


def _reference_verdicts(path: Path) -> dict[str, dict[str, Any]]:
    if path.is_dir():
        log = path / "judged.jsonl"
        if not log.is_file():
            raise DataError(f"{path} holds no judged.jsonl: pass a 'knowgen judge' output "
                            "folder or a results_eval.json file as --reference.")
        return {r["id"]: r["judgement"] for r in SampleLog(log).read()
                if r.get("status") == "scored" and isinstance(r.get("judgement"), dict)}
    if not path.is_file():
        raise DataError(f"Reference {path} does not exist.")
    return upstream_format.read_scored(path)


# -- fitting -----------------------------------------------------------------------------------

def calibrate(judge: ClipImageJudge, samples: list[Sample], fitted_on: dict[str, Any],
              all_dimensions: bool = True, progress: bool = True) -> Thresholds:
    """Fit the judge's cut points on ``samples`` and measure agreement.

    Args:
        judge: A clip judge (built with ``require_thresholds=False``).
        samples: Samples with reference levels for at least the calibrated dimensions.
        fitted_on: What the samples are (recorded in the thresholds file).
        all_dimensions: Also judge every sample fully with the fitted thresholds and
            report agreement on text accuracy, aesthetics and the overall score
            (runs OCR; slower).
        progress: Show progress bars.

    Raises:
        DataError: with fewer than four usable samples.
    """
    usable = [s for s in samples if all(_level_of(s.reference, d) is not None for d in CALIBRATED)
              and aesthetics_proxy(s.image)["uniform_std"] >= UNIFORM_STD]  # blanks skip thresholds
    if len(usable) < 4:
        raise DataError(f"Only {len(usable)} samples (blank images aside) have reference levels for "
                        f"{' and '.join(CALIBRATED)}; calibration needs at least 4.")
    raw = {d: [] for d in CALIBRATED}
    for s in tqdm(usable, desc="similarities", unit="image", disable=not progress):
        sims = judge.similarities(s.task, s.image)
        for d in CALIBRATED:
            raw[d].append(sims[d])
    ref = {d: [_level_of(s.reference, d) for s in usable] for d in DIMENSIONS}
    cuts, report = {}, {}
    for d in CALIBRATED:
        cuts[d] = list(fit_cut_points(raw[d], ref[d]))
        levels = [to_level(v, cuts[d]) for v in raw[d]]
        report[d] = {**agreement(levels, ref[d], raw[d]), "held_out_exact": _held_out(raw[d], ref[d])}
    thresholds = Thresholds(judge.model_name, judge.weights, cuts,
                            {**fitted_on, "n": len(usable)}, report)
    if all_dimensions:
        judge.thresholds = thresholds
        verdicts = [judge.score(s.task, s.image) for s in tqdm(
            usable, desc="judge", unit="image", disable=not progress)]
        for d in ("text_accuracy", "aesthetics"):
            pairs = [(getattr(v, d), r) for v, r in zip(verdicts, ref[d]) if r is not None]
            report[d] = agreement([p[0] for p in pairs], [p[1] for p in pairs])
        overall_ref = [_overall(s.reference) for s in usable]
        report["overall"] = {"spearman": _spearman_pairs([v.overall for v in verdicts], overall_ref),
                             "mean_abs_diff": _mean_abs([v.overall for v in verdicts], overall_ref)}
    return thresholds


def _level_of(reference: dict[str, Any], dim: str) -> float | None:
    value = reference.get(dim)
    return float(value) if isinstance(value, (int, float)) and value in (0, 0.5, 1) else None


def _held_out(raw: list[float], ref: list[float]) -> float | None:
    """Exact-match rate with cut points fitted on the other half (alternate samples)."""
    halves = [list(range(0, len(raw), 2)), list(range(1, len(raw), 2))]
    hits = n = 0
    for fit_on, test_on in (halves, halves[::-1]):
        if not fit_on or not test_on:
            return None
        cuts = fit_cut_points([raw[i] for i in fit_on], [ref[i] for i in fit_on])
        hits += sum(to_level(raw[i], list(cuts)) == ref[i] for i in test_on)
        n += len(test_on)
    return round(hits / n, 4)


def _overall(reference: dict[str, Any]) -> float | None:
    try:
        return ImageJudgement(**{k: reference[k] for k in (*DIMENSIONS, "text_accuracy_na")}).overall
    except (KeyError, TypeError):
        return None


def _spearman_pairs(a: list[float], b: list[float | None]) -> float | None:
    pairs = [(x, y) for x, y in zip(a, b) if y is not None]
    return spearman([p[0] for p in pairs], [p[1] for p in pairs])


def _mean_abs(a: list[float], b: list[float | None]) -> float | None:
    pairs = [(x, y) for x, y in zip(a, b) if y is not None]
    return round(sum(abs(x - y) for x, y in pairs) / len(pairs), 4) if pairs else None


def write_cases(cases: list[dict[str, Any]], path: str | Path = CASES_FILE) -> Path:
    """Write a calibration set file (one JSON object a line)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "".join(json.dumps(c, ensure_ascii=False) + "\n" for c in cases))
    return path
