"""The offline WISE judge: a deterministic proxy from OCR, colours and image statistics."""

import numpy as np
import pytest
import skimage.data
from PIL import Image

from knowgen.errors import DataError, UnknownNameError
from knowgen.eval.wise_run import make_wise_judge, wise_judges
from knowgen.eval.wise_scoring import WiseLegacyJudgement, WiseVerifiedJudgement, wiscore
from knowgen.generators.layout import compose
from knowgen.judges.offline_image import aesthetics_proxy
from knowgen.judges.offline_wise import (
    AESTHETIC_HIGH,
    OfflineWiseJudge,
    content_terms,
    named_colours,
    palette_share,
    task_terms,
)
from knowgen.types import Task
from knowgen.world.data import load_world

# WISE legacy prompt 1, as released.
MOONCAKE = Task(id="1", prompt="Traditional food of the Mid-Autumn Festival", category="cultural",
                extra={"explanation": "This refers to mooncakes, the round pastries filled with "
                                      "lotus seed paste or red bean paste"})


def red_square() -> Image.Image:
    img = Image.new("RGB", (240, 240), (200, 30, 30))
    for x in range(0, 240, 40):  # some structure, so the image is not near-uniform
        img.paste((120, 10, 10), (x, 0, x + 8, 240))
    return img


def poster(text: str, picture: Image.Image) -> Image.Image:
    return compose([picture], [text], (512, 512))


@pytest.fixture(scope="module")
def judge():
    return OfflineWiseJudge(variant="legacy", ocr="rapidocr")


def test_registered_as_a_wise_judge_and_follows_the_variant():
    assert "offline" in wise_judges().names() and "openai" in wise_judges().names()
    j = make_wise_judge("offline:ocr=rapidocr", "verified")
    assert isinstance(j, OfflineWiseJudge) and j.variant == "verified" and j.ocr_name == "rapidocr"
    assert make_wise_judge("offline:variant=verified", "legacy").variant == "legacy"
    with pytest.raises(UnknownNameError):
        OfflineWiseJudge(variant="v2")


def test_terms_and_colours_come_from_prompt_and_explanation():
    answer, prompt_terms = task_terms(MOONCAKE)
    assert answer[0] == "mooncakes" and "traditional" in prompt_terms
    assert not set(answer) & set(prompt_terms)
    assert "refers" not in answer and "this" not in answer and "red" not in answer
    assert named_colours(f"{MOONCAKE.prompt} {MOONCAKE.extra['explanation']}") == ["red"]
    assert named_colours("a faint purple tint rather than a strong red colour, not pink") == [
        "purple"]
    assert content_terms("The model should generate an image showing a caravel") == ["caravel"]


def test_blank_image_scores_zero_without_ocr(judge):
    legacy, verified = judge.judge_both(MOONCAKE, Image.new("RGB", (256, 256), "white"))
    assert (legacy.consistency, legacy.realism, legacy.aesthetic_quality) == (0, 0, 0)
    assert verified.score == 0 and legacy.evidence["blank"] is True
    assert "ocr_lines" not in legacy.evidence


def test_answer_written_with_its_colour_scores_consistency_2(judge):
    image = poster("MOONCAKES", red_square())
    legacy, verified = judge.judge_both(MOONCAKE, image)
    assert legacy.consistency == 2 and verified.score == 1
    found = [t["term"] for t in legacy.evidence["answer_terms"] if t["found"]]
    assert found == ["mooncakes"]
    assert legacy.evidence["colours"][0]["found"] is True
    assert legacy.value == pytest.approx(wiscore(2, legacy.realism, legacy.aesthetic_quality))
    assert "mooncakes" in legacy.rationale and "not a VLM" in legacy.rationale


def test_wrong_answer_loses_consistency_and_the_verified_point(judge):
    legacy, verified = judge.judge_both(MOONCAKE, poster("DUMPLINGS", red_square()))
    assert legacy.consistency == 1  # only the named colour is there
    assert verified.score == 0
    grey = Image.new("RGB", (240, 240), (90, 90, 90))
    grey.paste((160, 160, 160), (0, 0, 120, 240))
    legacy, _ = judge.judge_both(MOONCAKE, poster("DUMPLINGS", grey))
    assert legacy.consistency == 0


def test_photograph_is_more_realistic_than_a_flat_flag(judge):
    photo = Image.fromarray(skimage.data.coffee())
    world = load_world()
    flag = Image.open(world.image_path(world.entities["country/fr"].image_id)).convert("RGB")
    p, f = judge.score(MOONCAKE, photo), judge.score(MOONCAKE, flag)
    assert (p.realism, f.realism) == (2, 1)
    assert palette_share(photo) < palette_share(flag)
    assert p.aesthetic_quality == 2 and aesthetics_proxy(photo)["proxy"] >= AESTHETIC_HIGH
    washed = Image.blend(photo, Image.new("RGB", photo.size, (200, 200, 200)), 0.85)
    assert judge.score(MOONCAKE, washed).aesthetic_quality < p.aesthetic_quality


def test_deterministic_and_variant_shaped(judge, tmp_path):
    image = poster("MOONCAKES", red_square())
    path = tmp_path / "1.png"
    image.save(path)
    a, b = judge.score(MOONCAKE, image), judge.score(MOONCAKE, str(path))
    assert isinstance(a, WiseLegacyJudgement) and a.to_dict() == b.to_dict()
    v = OfflineWiseJudge(variant="verified", ocr="rapidocr").score(MOONCAKE, image)
    assert isinstance(v, WiseVerifiedJudgement) and v.to_dict()["score"] == 1
    assert a.evidence["scores"]["verified"] == v.score


def test_bad_inputs_are_data_errors(judge, tmp_path):
    no_expl = Task(id="2", prompt="p", category="cultural")
    with pytest.raises(DataError, match="explanation"):
        judge.score(no_expl, Image.new("RGB", (8, 8)))
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(DataError, match="Cannot read"):
        judge.score(MOONCAKE, str(bad))


def test_noise_is_a_documented_blind_spot(judge):
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (256, 256, 3), np.uint8))
    legacy = judge.score(MOONCAKE, noise)
    assert legacy.consistency < 2 and legacy.realism == 2  # fooled on realism only
