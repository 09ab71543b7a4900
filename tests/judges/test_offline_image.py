"""The offline image judge's contract (evidence, errors, speed paths)."""

import pytest
from PIL import Image, ImageEnhance

from knowgen.errors import DataError
from knowgen.generators.layout import compose
from knowgen.judges import offline_image
from knowgen.judges.base import ImageJudge
from knowgen.judges.offline_image import OfflineImageJudge, aesthetics_proxy
from knowgen.registry import IMAGE_JUDGES
from knowgen.types import RequiredEntity, Task, TaskFacts
from knowgen.world.data import load_world


@pytest.fixture(scope="module")
def world():
    return load_world()


def pic(world, image_id):
    with Image.open(world.image_path(image_id)) as img:
        return img.convert("RGB")


def task_for(world, tmp_path, entity_ids, texts=()):
    ents = tuple(RequiredEntity(e, world.entities[e].name, world.entities[e].image_id)
                 for e in entity_ids)
    gt = compose([pic(world, e.image_id) for e in ents], list(texts), (512, 512))
    gt.save(tmp_path / "gt.png")
    return Task(id="x", prompt="p", category="geography", gt_image=str(tmp_path / "gt.png"),
                facts=TaskFacts(entities=ents, required_text=tuple(texts))), gt


def test_registered_and_protocol():
    judge = IMAGE_JUDGES.create("offline:match_threshold=0.75,ocr=rapidocr")
    assert isinstance(judge, ImageJudge) and judge.match_threshold == 0.75


def test_needs_world_tasks():
    task = Task(id="k1", prompt="a poster", category="film")
    with pytest.raises(DataError, match="world tasks"):
        OfflineImageJudge().score(task, Image.new("RGB", (64, 64)))


def test_missing_gt_is_a_data_error(world, tmp_path):
    task, gt = task_for(world, tmp_path, ["country/de"])
    broken = Task(id="x", prompt="p", category="geography", gt_image=str(tmp_path / "nope.png"),
                  facts=task.facts)
    with pytest.raises(DataError, match="does not exist"):
        OfflineImageJudge().score(broken, gt)


def test_unknown_world_image_is_a_data_error(world, tmp_path):
    task, gt = task_for(world, tmp_path, ["country/de"])
    odd = Task(id="x", prompt="p", category="geography", gt_image=task.gt_image,
               facts=TaskFacts(entities=(RequiredEntity("country/zz", "Z", "flag/zz"),)))
    with pytest.raises(DataError, match="another world"):
        OfflineImageJudge().score(odd, gt)


def test_no_text_skips_ocr_and_fills_evidence(world, tmp_path, monkeypatch):
    def no_ocr(name):
        raise AssertionError("OCR must not run when no text is required")

    monkeypatch.setattr(offline_image, "get_ocr_engine", no_ocr)
    task, gt = task_for(world, tmp_path, ["country/de", "country/jp"])
    verdict = OfflineImageJudge().score(task, gt)
    assert verdict.text_accuracy_na and verdict.text_accuracy == 0.5
    assert (verdict.visual_correctness, verdict.faithfulness, verdict.aesthetics) == (1, 1, 1)
    assert verdict.overall == pytest.approx(0.8)
    entities = verdict.evidence["entities"]
    assert [e["entity_id"] for e in entities] == ["country/de", "country/jp"]
    assert all(e["score"] >= verdict.evidence["match_threshold"] for e in entities)
    assert "ocr_lines" not in verdict.evidence
    assert "entities 2/2" in verdict.rationale


def test_one_of_two_entities_gives_half(world, tmp_path):
    task, _ = task_for(world, tmp_path, ["country/de", "country/jp"])
    half = compose([pic(world, "flag/de"), pic(world, "flag/kr")], [], (512, 512))
    verdict = OfflineImageJudge().score(task, half)
    assert verdict.visual_correctness == 0.5 and verdict.faithfulness == 0.5


def test_a_wordmark_in_lower_case_does_not_hide_the_banner_in_capitals(world, tmp_path):
    """The Synology logo reads "Synology"; the banner asked for in capitals still counts."""
    from dataclasses import replace

    task, gt = task_for(world, tmp_path, ["brand/synology"], ["SYNOLOGY"])
    task = replace(task, facts=replace(task.facts, text_case="upper"))
    verdict = OfflineImageJudge(ocr="rapidocr").score(task, gt)
    assert "Synology" in verdict.evidence["ocr_lines"]
    assert verdict.text_accuracy == 1.0 and verdict.evidence["texts"][0]["reading"] == "exact"


def test_dull_image_gets_half_aesthetics(world, tmp_path):
    task, gt = task_for(world, tmp_path, ["country/de"])
    dull = ImageEnhance.Contrast(gt).enhance(0.3)
    verdict = OfflineImageJudge().score(task, dull)
    assert verdict.aesthetics == 0.5
    assert verdict.evidence["aesthetics"]["ratio"] < 0.85


def test_aesthetics_proxy_ranges(world):
    gt = compose([pic(world, "flag/br")], ["BRAZIL"], (512, 512))
    values = aesthetics_proxy(gt)
    assert all(0.0 <= values[k] <= 1.0 for k in ("contrast", "colourfulness", "sharpness", "proxy"))
    assert aesthetics_proxy(gt.convert("L"))["colourfulness"] == 0.0
    assert aesthetics_proxy(Image.new("RGB", (64, 64), "white"))["proxy"] == 0.0
