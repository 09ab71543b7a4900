"""Committed known cases of the offline image judge, on real world pictures.

GT images are the world's own ground truths (:func:`render_gt`); wrong answers
are drawn with the same layout routine. Every case is judged from real pixels
(matching and OCR).
"""

import pytest
from PIL import Image

from knowgen.generators.layout import compose
from knowgen.judges.offline_image import OfflineImageJudge
from knowgen.types import RequiredEntity, Task, TaskFacts
from knowgen.world.data import load_world
from knowgen.world.render import render_gt
from knowgen.world.tasks import generate_tasks


@pytest.fixture(scope="module")
def world():
    return load_world()


@pytest.fixture(scope="module")
def judge():
    return OfflineImageJudge(ocr="rapidocr")


def picture(world, image_id):
    with Image.open(world.image_path(image_id)) as img:
        return img.convert("RGB")


def make_task(world, tmp_path, entity_ids, texts, name="t", text_case=""):
    ents = tuple(RequiredEntity(e, world.entities[e].name, world.entities[e].image_id)
                 for e in entity_ids)
    path = tmp_path / f"{name}_gt.png"
    task = Task(id=name, prompt="p", category="geography", gt_image=str(path),
                facts=TaskFacts(entities=ents, required_text=tuple(texts), text_case=text_case))
    gt = render_gt(task, world)
    gt.save(path)
    return task, gt


def test_gt_against_itself_scores_one(world, judge, tmp_path):
    task, gt = make_task(world, tmp_path, ["country/bf"], ["BURKINA FASO"])
    verdict = judge.score(task, gt)
    assert verdict.overall == 1.0, verdict.rationale
    assert verdict.evidence["entities"][0]["found"]
    assert verdict.evidence["ocr_lines"]


def test_two_entities_and_two_texts_gt_scores_one(world, judge, tmp_path):
    task, gt = make_task(world, tmp_path, ["country/jp", "brand/" + world.entities_of(
        "brand")[3].facts["slug"]], ["JAPAN", "OUAGADOUGOU"])
    verdict = judge.score(task, gt)
    assert (verdict.visual_correctness, verdict.text_accuracy) == (1.0, 1.0), verdict.rationale
    assert verdict.overall == 1.0


def test_wrong_entity_flag_gives_visual_zero(world, judge, tmp_path):
    task, _ = make_task(world, tmp_path, ["country/fr"], ["FRANCE"])
    wrong = compose([picture(world, "flag/it")], ["FRANCE"], (512, 512))
    verdict = judge.score(task, wrong)
    assert verdict.visual_correctness == 0.0, verdict.evidence["entities"]
    assert verdict.text_accuracy == 1.0
    assert verdict.faithfulness == 0.5  # one of two elements present


def test_lookalike_flag_gives_visual_zero(world, judge, tmp_path):
    task, _ = make_task(world, tmp_path, ["country/br"], [])
    fake = compose([picture(world, "lookalike/flag/br")], [], (512, 512))
    verdict = judge.score(task, fake)
    assert verdict.visual_correctness == 0.0
    assert verdict.text_accuracy_na and verdict.text_accuracy == 0.5


def test_misspelled_text_gives_text_zero(world, judge, tmp_path):
    task, _ = make_task(world, tmp_path, ["country/bf"], ["BURKINA FASO"])
    typo = compose([picture(world, "flag/bf")], ["BURKIMA FASO"], (512, 512))
    verdict = judge.score(task, typo)
    assert verdict.text_accuracy == 0.0, verdict.evidence["ocr_lines"]
    assert verdict.visual_correctness == 1.0


def test_one_of_two_texts_gives_half(world, judge, tmp_path):
    task, _ = make_task(world, tmp_path, ["country/bf"], ["BURKINA FASO", "OUAGADOUGOU"])
    half = compose([picture(world, "flag/bf")], ["BURKINA FASO", "LAGOS"], (512, 512))
    verdict = judge.score(task, half)
    assert verdict.text_accuracy == 0.5
    assert verdict.faithfulness == 0.5  # two of three elements


@pytest.mark.parametrize("colour", [(255, 255, 255), (0, 0, 0), (120, 130, 140)])
def test_blank_image_scores_zero(world, judge, tmp_path, colour):
    task, _ = make_task(world, tmp_path, ["country/bf"], ["BURKINA FASO"])
    verdict = judge.score(task, Image.new("RGB", (512, 512), colour))
    assert verdict.overall == 0.0
    assert (verdict.faithfulness, verdict.visual_correctness, verdict.text_accuracy,
            verdict.aesthetics) == (0.0, 0.0, 0.0, 0.0)
    assert verdict.evidence["blank"]


@pytest.mark.slow  # OCR of one GT per family: about 10 s a split
@pytest.mark.parametrize("split", ["test", "test-ood"])
def test_generated_world_tasks_score_one_on_their_gt(world, judge, tmp_path, split):
    """The first task of each family of the split, judged on its own GT."""
    seen = {}
    for task in generate_tasks(world, split, seed=0):
        seen.setdefault(task.facts.template, task)
    assert seen
    for name, task in sorted(seen.items()):
        path = tmp_path / f"{name}.png"
        gt = render_gt(task, world)
        gt.save(path)
        task = Task(id=task.id, prompt=task.prompt, category=task.category,
                    gt_image=str(path), facts=task.facts)
        verdict = judge.score(task, gt)
        expected = 0.8 if verdict.text_accuracy_na else 1.0
        assert verdict.overall == expected, (name, verdict.rationale)


def test_derived_text_without_case_instruction_accepts_any_case(world, judge, tmp_path):
    task, gt = make_task(world, tmp_path, ["country/td"], ["Chad"])
    assert judge.score(task, gt).text_accuracy == 1.0
    shouted = compose([picture(world, "flag/td")], ["CHAD"], (512, 512))
    assert judge.score(task, shouted).text_accuracy == 1.0


def test_case_instruction_is_checked(world, judge, tmp_path):
    task, gt = make_task(world, tmp_path, ["country/td"], ["CHAD"], text_case="upper")
    assert judge.score(task, gt).overall == 1.0
    small = compose([picture(world, "flag/td")], ["Chad"], (512, 512))
    verdict = judge.score(task, small)
    assert verdict.text_accuracy == 0.5, verdict.evidence["texts"]
    assert verdict.evidence["texts"][0]["reading"] == "wrong_case"
    assert verdict.faithfulness == 1.0  # the text is there, in the wrong case


def test_required_text_buried_in_other_words_is_not_full_credit(world, judge, tmp_path):
    task, _ = make_task(world, tmp_path, ["country/us"], ["UNITED STATES"])
    buried = compose([picture(world, "flag/us")], ["United States), with the text"], (512, 512))
    verdict = judge.score(task, buried)
    assert verdict.text_accuracy == 0.5, verdict.evidence["texts"]
    assert verdict.evidence["texts"][0]["reading"] == "buried"
    alone = compose([picture(world, "flag/us")], ["UNITED STATES"], (512, 512))
    assert judge.score(task, alone).text_accuracy == 1.0

