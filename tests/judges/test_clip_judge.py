"""The clip image judge on real open_clip models built from configs (random weights).

No weights can be downloaded here, so the models are random initialisations of
real open_clip architectures: a small one written as a config file, and
ViT-B-32 itself. Their similarities mean nothing, but every step is real:
preprocessing, both towers, calibration on the committed set, thresholds files,
OCR, and the judge inside ``knowgen judge``, ``knowgen eval`` and the
environment. The test marked ``weights`` runs the pretrained path on a weights
file passed with ``--clip-weights``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

pytest.importorskip("open_clip")

from knowgen.cli import main
from knowgen.errors import ConfigError, DataError, MissingDependencyError
from knowgen.eval.clip_calibration import (
    CASES_FILE,
    calibrate,
    case_samples,
    load_cases,
    write_cases,
)
from knowgen.generators.layout import compose
from knowgen.judges.clip_judge import ClipImageJudge, required_texts, thresholds_path
from knowgen.judges.clip_thresholds import Thresholds
from knowgen.registry import IMAGE_JUDGES
from knowgen.types import Task
from knowgen.world.data import load_world

TINY = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32,
                   "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2,
                 "layers": 2},
}


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "knowgen-tiny-clip.json"
    path.write_text(json.dumps(TINY))
    return path


@pytest.fixture(scope="module")
def small_cases(tmp_path_factory) -> Path:
    """A slice of the committed set with every variant in it."""
    cases, seen = [], {}
    for case in load_cases():
        if seen.get(case["variant"], 0) < 3:
            cases.append(case)
            seen[case["variant"]] = seen.get(case["variant"], 0) + 1
    return write_cases(cases, tmp_path_factory.mktemp("cases") / "cases.jsonl")


@pytest.fixture(scope="module")
def fitted(tiny_config, small_cases, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("thresholds") / "tiny.json"
    rc = main(["judge", "calibrate", "--judge", f"clip:config={tiny_config},pretrained=none",
               "--cases", str(small_cases), "--out", str(out), "--no-progress"])
    assert rc == 0
    return out


def _judge(tiny_config: Path, thresholds: Path, **kw) -> ClipImageJudge:
    return ClipImageJudge(config=str(tiny_config), pretrained="none",
                          thresholds=str(thresholds), ocr="rapidocr", **kw)


def test_calibration_writes_thresholds_with_agreement(fitted, small_cases):
    data = json.loads(fitted.read_text())
    assert data["schema_version"] == 1
    assert data["model"] == "knowgen-tiny-clip" and data["pretrained"] == "random"
    n_blank = sum(c["variant"] == "blank" for c in load_cases(small_cases))
    assert data["fitted_on"]["n"] == len(load_cases(small_cases)) - n_blank
    for dim in ("visual_correctness", "faithfulness"):
        half, full = data["cut_points"][dim]
        assert half <= full
        rep = data["agreement"][dim]
        assert 0 <= rep["exact"] <= 1 and 0 <= rep["held_out_exact"] <= 1
        assert sum(rep["confusion"].values()) == data["fitted_on"]["n"]
    # the OCR dimensions run the offline judge's own reading, so they agree with it
    assert data["agreement"]["text_accuracy"]["exact"] >= 0.9
    assert "overall" in data["agreement"]


def test_committed_set_covers_every_level():
    cases = load_cases(CASES_FILE)
    assert len(cases) >= 150
    for dim in ("visual_correctness", "faithfulness", "text_accuracy", "aesthetics"):
        assert {c["reference"][dim] for c in cases} == {0.0, 0.5, 1.0}, dim
    assert {c["variant"] for c in cases} >= {"gt", "wrong_entity", "lookalike", "one_wrong",
                                            "typo", "no_text", "texts_only", "blank"}


def test_gt_text_is_read_and_blank_scores_zero(tiny_config, fitted, tmp_path):
    judge = _judge(tiny_config, fitted)
    sample = next(s for s in case_samples(CASES_FILE, tmp_path)
                  if s.id.endswith("/gt") and s.task.facts.required_text)
    verdict = judge.score(sample.task, sample.image)
    assert verdict.text_accuracy == 1.0 and not verdict.text_accuracy_na
    sims = verdict.evidence["similarities"]
    assert len(sims["references"]) == len(sample.task.facts.entities)
    assert -1 <= sims["visual_correctness"] <= 1 and -1 <= sims["faithfulness"] <= 1
    assert verdict.visual_correctness in (0.0, 0.5, 1.0)
    assert verdict.evidence["weights"] == "random"
    blank = judge.score(sample.task, Image.new("RGB", (256, 256), (255, 255, 255)))
    assert blank.overall == 0.0 and blank.evidence["blank"]


def test_references_are_embedded_once_per_judge(tiny_config, fitted, tmp_path):
    judge = _judge(tiny_config, fitted, batch_size=2)
    calls = []
    real = judge.embed_images
    judge.embed_images = lambda images: calls.append(len(images)) or real(images)
    sample = next(s for s in case_samples(CASES_FILE, tmp_path)
                  if len(s.task.facts.entities) == 2)
    first = judge.similarities(sample.task, sample.image)
    assert calls == [3]  # the image and both references, in one batch
    second = judge.similarities(sample.task, sample.image)
    assert calls == [3, 1]  # only the image again
    assert first == second


def test_batches_give_the_same_embeddings(tiny_config, fitted, tmp_path):
    images = [Image.new("RGB", (80, 60), (i * 40, 200 - i * 30, 90)) for i in range(5)]
    one = _judge(tiny_config, fitted, batch_size=1).embed_images(images)
    many = _judge(tiny_config, fitted, batch_size=4).embed_images(images)
    assert one.shape == (5, 32)
    assert abs(one - many).max() < 1e-4


def test_without_thresholds_it_says_how_to_fit_them(tiny_config, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(ConfigError, match="knowgen judge calibrate"):
        ClipImageJudge(config=str(tiny_config), pretrained="none")


def test_thresholds_of_another_model_are_refused(tiny_config, fitted, tmp_path):
    data = json.loads(fitted.read_text())
    data["model"] = "ViT-B-32"
    other = tmp_path / "other.json"
    other.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="fitted for ViT-B-32/random"):
        _judge(tiny_config, other)


@pytest.mark.parametrize("content", ["not json", "[]", '{"schema_version": 1}',
                                     ('{"schema_version": 1, "cut_points": {"visual_correctness"'
                                      ': [0.9, 0.1], "faithfulness": [0, 1]}}')])
def test_damaged_thresholds_files_are_refused(tiny_config, tmp_path, content):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    with pytest.raises(DataError):
        _judge(tiny_config, bad)


def test_default_thresholds_path_depends_on_weights(tmp_path):
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"0" * 10)
    paths = {thresholds_path("ViT-B-32", p, tmp_path) for p in ("openai", "none", str(weights))}
    assert len(paths) == 3


def test_required_texts_of_tasks_without_facts():
    task = Task(id="k1", prompt='A poster of the flag of Chad titled "NDJAMENA" in capitals.',
                category="geography")
    assert required_texts(task) == ["NDJAMENA"]
    assert required_texts(Task(id="k2", prompt="A flag.", category="geography")) == []


def test_tasks_without_facts_compare_with_their_gt(tiny_config, fitted, tmp_path):
    world = load_world()
    with Image.open(world.image_path("flag/td")) as img:
        flag = img.convert("RGB")
    gt = compose([flag], ["NDJAMENA"], (256, 256))
    gt.save(tmp_path / "gt.png")
    task = Task(id="k1", prompt='The flag of Chad with the title "NDJAMENA".',
                category="geography", gt_image=str(tmp_path / "gt.png"))
    verdict = _judge(tiny_config, fitted).score(task, gt)
    assert verdict.evidence["similarities"]["references"][0]["name"] == "ground truth"
    assert verdict.evidence["similarities"]["visual_correctness"] == pytest.approx(1.0, abs=1e-4)
    assert verdict.text_accuracy == 1.0
    no_ref = Task(id="k2", prompt="x", category="geography")
    with pytest.raises(DataError, match="no gt_image"):
        _judge(tiny_config, fitted).score(no_ref, gt)


def test_registry_builds_it_by_name(tiny_config, fitted):
    judge = IMAGE_JUDGES.create(f"clip:config={tiny_config},pretrained=none,thresholds={fitted}")
    assert isinstance(judge, ClipImageJudge)


def test_unknown_model_suggests_a_name(tiny_config, fitted):
    judge = ClipImageJudge(model="ViT-B-33", pretrained="none", thresholds=str(fitted),
                           require_thresholds=False)
    with pytest.raises(Exception, match="Did you mean 'ViT-B-32'"):
        judge.embed_texts(["a flag"])


def test_unreachable_pretrained_tag_says_to_pass_a_file(hub_offline):
    judge = ClipImageJudge(model="RN50", pretrained="openai", require_thresholds=False)
    with pytest.raises(ConfigError, match="pretrained=/path/to/weights"):
        judge.embed_texts(["a flag"])


def test_missing_open_clip_names_the_extra(monkeypatch):
    from knowgen.judges import clip_judge

    monkeypatch.setitem(sys.modules, "open_clip", None)
    clip_judge._load_open_clip.cache_clear()
    with pytest.raises(MissingDependencyError, match=r"knowgen\[clip\]"):
        ClipImageJudge(pretrained="none", require_thresholds=False).embed_texts(["x"])


def test_importing_the_judge_does_not_import_torch():
    code = ("import sys, knowgen.judges.clip_judge, knowgen.eval.clip_calibration; "
            "print('torch' in sys.modules, 'open_clip' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_calibration_needs_enough_samples(tiny_config, small_cases, tmp_path):
    judge = ClipImageJudge(config=str(tiny_config), pretrained="none", require_thresholds=False)
    samples = list(case_samples(small_cases, tmp_path))[:3]
    with pytest.raises(DataError, match="at least 4"):
        calibrate(judge, samples, {}, progress=False)


@pytest.mark.slow
def test_knowgen_judge_eval_and_calibrate_from_results(tiny_config, fitted, tmp_path):
    run, cache = tmp_path / "run", tmp_path / "cache"
    spec = f"clip:config={tiny_config},pretrained=none,thresholds={fitted},ocr=rapidocr"
    rc = main(["eval", "--policy", "oracle", "--limit", "4", "--run-dir", str(run),
               "--benchmark", f"world:cache_dir={cache}", "--judge", spec, "--no-progress"])
    assert rc == 0
    sample = json.loads((run / "samples.jsonl").read_text().splitlines()[0])
    assert "similarities" in sample["image_judgement"]["evidence"]
    # knowgen judge with the clip judge, then with the offline judge as the reference
    assert main(["judge", str(run / "results.json"), "--judge", spec, "--out",
                 str(tmp_path / "by-clip"), "--world-cache-dir", str(cache),
                 "--no-progress"]) == 0
    judged = [json.loads(x) for x in (tmp_path / "by-clip" / "judged.jsonl").read_text().splitlines()]
    assert len(judged) == 4 and all(j["status"] == "scored" for j in judged)
    assert main(["judge", str(run / "results.json"), "--out", str(tmp_path / "ref"),
                 "--world-cache-dir", str(cache), "--no-progress"]) == 0
    assert main(["judge", "calibrate", "--judge", spec, "--results", str(run / "results.json"),
                 "--reference", str(tmp_path / "ref"), "--world-cache-dir", str(cache),
                 "--out", str(tmp_path / "from-results.json"), "--fit-only",
                 "--no-progress"]) == 0
    data = json.loads((tmp_path / "from-results.json").read_text())
    assert data["fitted_on"]["n"] == 4 and data["fitted_on"]["source"] == "results"


def test_calibrate_refuses_other_judges_and_half_pairs(capsys):
    assert main(["judge", "calibrate", "--judge", "offline"]) == 2
    assert "Only the clip judge" in capsys.readouterr().err
    assert main(["judge", "calibrate", "--results", "x.json"]) == 2
    assert "go together" in capsys.readouterr().err


@pytest.mark.slow
def test_environment_pays_the_clip_reward(tiny_config, fitted, tmp_path):
    from knowgen.agents.expert_data import play_episode
    from knowgen.config import EnvConfig
    from knowgen.envs.searchgen import SearchGenEnv
    from knowgen.registry import POLICIES

    spec = f"clip:config={tiny_config},pretrained=none,thresholds={fitted},ocr=rapidocr"
    env = SearchGenEnv(EnvConfig(benchmark=f"world:cache_dir={tmp_path}", split="test",
                                 image_judge=spec))
    record = play_episode(env, POLICIES.create("oracle"), env.tasks[0].id)
    judgement = record["info"]["image_judgement"]
    assert "similarities" in judgement["evidence"]
    assert 0.0 <= record["reward"] <= 1.0 and record["reward"] > 0


@pytest.mark.slow
def test_vit_b_32_architecture_scores_an_image(tmp_path):
    """The default model, built from open_clip's own config with random weights."""
    judge = ClipImageJudge(model="ViT-B-32", pretrained="none", require_thresholds=False)
    sample = next(iter(case_samples(CASES_FILE, tmp_path)))
    sims = judge.similarities(sample.task, sample.image)
    assert judge.embed_images([sample.image]).shape == (1, 512)
    assert -1 <= sims["visual_correctness"] <= 1


@pytest.mark.weights
def test_pretrained_weights_rank_the_right_picture_first(request, tmp_path):
    weights = request.config.getoption("--clip-weights")
    if not weights:
        pytest.skip("pass --clip-weights FILE (and --clip-model NAME) to run the real weights")
    model = request.config.getoption("--clip-model")
    out = tmp_path / "thresholds.json"
    assert main(["judge", "calibrate", "--judge", f"clip:model={model},pretrained={weights}",
                 "--out", str(out), "--fit-only", "--no-progress"]) == 0
    data = Thresholds.load(out)
    # real weights tell a right picture from a wrong one far better than chance
    assert data.agreement["visual_correctness"]["spearman"] > 0.5
    assert data.agreement["visual_correctness"]["held_out_exact"] > 0.7
