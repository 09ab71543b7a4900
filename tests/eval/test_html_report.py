"""The HTML report of a run folder: cards, embedded images, escaping, the chart, bad input."""

from __future__ import annotations

import base64
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from knowgen.errors import RunError
from knowgen.eval.charts import GROUP_COLOURS, WIDTH
from knowgen.eval.html_report import load_run, write_report
from knowgen.eval.results import build_summary
from knowgen.eval.rundir import SampleLog, atomic_write_json

XSS = "<script>alert(1)</script>"
META = {"benchmark": "world", "split": "test", "policy": "scripted", "seed": 7, "config": {"a": 1}}
# (id, category, overall-driving visual/text score, prompt)
SPECS = [
    ("geo-1", "geography", 1.0, f"Draw the flag {XSS} of Chad"),
    ("geo-2", "geography", 1.0, "Draw the flag of Peru"),
    ("ind-1", "industry", 0.5, "Draw the logo of a car maker"),
    ("film-1", "film", 0.0, "A film poster & \"quotes\""),
    ("odd-1", '"><img src=x onerror=alert(2)>', 0.5, "A sample in no group"),
]
COLOURS = {"geo-1": (200, 30, 30), "geo-2": (30, 160, 60), "ind-1": (30, 60, 200),
           "film-1": (230, 200, 20), "odd-1": (120, 40, 160)}


def _draw(path: Path, colour: tuple[int, int, int], size: tuple[int, int]) -> None:
    img = Image.new("RGB", size, colour)
    draw = ImageDraw.Draw(img)
    w, h = size
    draw.rectangle([w // 4, h // 4, 3 * w // 4, 3 * h // 4], fill=(255, 255, 255))
    draw.text((10, 10), "FLAG", fill=(0, 0, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def _sample(sid: str, category: str, score: float, prompt: str) -> dict:
    judgement = {"faithfulness": 1.0, "visual_correctness": score, "text_accuracy": score,
                 "text_accuracy_na": False, "aesthetics": 0.5,
                 "overall": round(0.1 + 0.4 * score + 0.4 * score + 0.05, 4),
                 "rationale": f"rationale of {sid} </p><b>bold</b>", "evidence": {"x": [1, 2]}}
    action = '<tool_call>{"name": "search", "arguments": {"queries": ["<iframe>"]}}</tool_call>'
    return {
        "id": sid, "prompt": prompt, "meta": {"category": category, "difficulty": "easy"},
        "success": True, "output_path": f"images/{sid}.png", "gt_image": f"gt/{sid}.png",
        "reward": score, "reward_terms": {"image": score, "text": 1.0, "alpha": 0.5},
        "image_judgement": judgement,
        "text_judgement": {"score": 0.75, "rationale": "3/4 <checks>", "evidence": {}},
        "answer": {"gen_prompt": f"the first reference image for {sid}",
                   "reference_images": [{"img_id": "IMG_001", "note": "flag"}]},
        "references": [{"img_id": "IMG_001", "title": "Flag <u>x</u>", "note": "flag",
                        "url": "javascript:alert(3)"}],
        "fallback_generation": False, "turns": 2,
        "trajectory": [{"action": action, "observation": "<tool_response>" + "y" * 5000,
                        "last_action": {"kind": "tool", "tool": "search", "ok": True, "error": ""}},
                       {"action": "<answer>{}</answer>", "observation": "done",
                        "last_action": {"kind": "answer", "tool": None, "ok": True, "error": ""}}],
    }


def make_run(root: Path, specs=SPECS) -> tuple[Path, list[dict]]:
    """A finished run folder: real PNGs, samples in the log, a summary built by the scorer."""
    run = root / "run"
    samples = [_sample(*spec) for spec in specs]
    log = SampleLog(run / "samples.jsonl")
    run.mkdir(parents=True)
    for s in samples:
        _draw(run / s["output_path"], COLOURS.get(s["id"], (90, 90, 90)), (1024, 768))
        _draw(run / s["gt_image"], COLOURS.get(s["id"], (90, 90, 90)), (512, 384))
        log.append(s)
    atomic_write_json(run / "run.json", META)
    summary = build_summary(samples, META, benchmark_version="1", knowgen_version="0.1.0",
                            git="abc1234")
    atomic_write_json(run / "summary.json", summary)
    return run, samples


class Page(HTMLParser):
    """Collects start tags, text, and the tags and text of each sample card."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.cards: list[dict] = []
        self._depth = 0
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag == "article" and "card" in attrs.get("class", "").split():
            self.cards.append({"attrs": attrs, "imgs": [], "text": []})
            self._depth = 1
        elif tag == "article" and self._depth:
            self._depth += 1
        if self._depth and tag == "img":
            self.cards[-1]["imgs"].append(attrs)

    def handle_endtag(self, tag):
        if tag == "article" and self._depth:
            self._depth -= 1

    def handle_data(self, data):
        self.text.append(data)
        if self._depth:
            self.cards[-1]["text"].append(data)


def decode(uri: str) -> Image.Image:
    head, data = uri.split(",", 1)
    assert head in ("data:image/png;base64", "data:image/jpeg;base64")
    img = Image.open(io.BytesIO(base64.b64decode(data)))
    img.load()
    return img


def _mean(img: Image.Image) -> tuple[float, ...]:
    small = img.convert("RGB").resize((1, 1), Image.Resampling.BOX)
    return small.getpixel((0, 0))


def test_a_card_per_sample_with_both_images_embedded_and_small(tmp_path):
    run, samples = make_run(tmp_path)
    out = write_report(run)
    assert out == run / "report.html"
    page = Page(out.read_text(encoding="utf-8"))
    assert len(page.cards) == len(samples)
    for card, s in zip(page.cards, samples):
        assert s["id"] in "".join(card["text"])
        gen, gt = card["imgs"]
        for attrs, rel in ((gen, s["output_path"]), (gt, s["gt_image"])):
            thumb = decode(attrs["src"])
            source = Image.open(run / rel)
            assert max(thumb.size) == 256
            assert thumb.size[0] / thumb.size[1] == pytest.approx(source.size[0] / source.size[1], abs=0.02)
            assert _mean(thumb) == pytest.approx(_mean(source), abs=6)


def test_untrusted_strings_are_escaped(tmp_path):
    run, _ = make_run(tmp_path)
    raw = write_report(run).read_text(encoding="utf-8")
    page = Page(raw)
    assert "<script" not in raw.lower() and "<iframe" not in raw.lower()
    assert not [t for t, _ in page.tags if t in ("script", "iframe", "u")]
    text = "".join(page.text)
    assert XSS in text  # shown literally
    assert "rationale of geo-1 </p><b>bold</b>" in text
    assert 'A film poster & "quotes"' in text
    assert "javascript:alert(3)" in text
    for tag, attrs in page.tags:
        assert not any(k.startswith("on") for k in attrs), (tag, attrs)
        for key in ("id", "class"):
            assert re.fullmatch(r"[A-Za-z0-9 _-]*", attrs.get(key) or ""), (tag, attrs)
        assert not str(attrs.get("href", "#")).lower().startswith("javascript")
    assert "&lt;/p&gt;&lt;b&gt;bold&lt;/b&gt;" in raw


def test_header_category_table_and_filters(tmp_path):
    run, _ = make_run(tmp_path)
    summary = json.loads((run / "summary.json").read_text())
    page = Page(write_report(run).read_text(encoding="utf-8"))
    text = " ".join(page.text)
    for value in ("world", "scripted", "abc1234", "0.1.0", f"{summary['k_score']:.2f}"):
        assert value in text
    ids = {a["id"] for _, a in page.tags if "id" in a}
    hrefs = [a["href"] for t, a in page.tags if t == "a" and a.get("href", "").startswith("#only-")]
    assert hrefs and all(h[1:] in ids for h in hrefs)
    cats = summary["scores"]["categories"]
    assert set(cats) == {"geography", "industry", "film"}  # the odd category is in no group
    for item in cats.values():
        assert f"{100 * item['avg_scores']['overall']:.2f}" in text
    # every card carries its category's filter class, so the :target rules can hide the others
    style = next(t for t in page.text if "display:none" in t)
    for card in page.cards:
        cat_class = next(c for c in card["attrs"]["class"].split() if c.startswith("cat-"))
        assert f"#only-{cat_class[4:]}:target" in style


def test_chart_png_bars_are_proportional_and_embedded(tmp_path):
    run, _ = make_run(tmp_path)
    page = Page(write_report(run).read_text(encoding="utf-8"))
    png = run / "categories.png"
    chart = Image.open(png)
    chart.load()
    assert chart.format == "PNG" and chart.width == WIDTH and 150 < chart.height < 600
    embedded = [a["src"] for t, a in page.tags if t == "img" and "chart" in a.get("class", "")]
    assert base64.b64decode(embedded[0].split(",", 1)[1]) == png.read_bytes()
    summary = json.loads((run / "summary.json").read_text())["scores"]["categories"]
    rgb = chart.convert("RGB")
    sci = GROUP_COLOURS["science_and_knowledge"]
    widths = set()
    for y in range(chart.height):
        run_len = sum(1 for x in range(chart.width) if rgb.getpixel((x, y)) == sci)
        if run_len > 20:
            widths.add(run_len)
    # two science bars (geography, industry), legend swatch excluded by the > 20 px filter
    assert len(widths) == 2
    ratio = min(widths) / max(widths)
    expected = summary["industry"]["avg_scores"]["overall"] / summary["geography"]["avg_scores"]["overall"]
    assert ratio == pytest.approx(expected, abs=0.02)


def test_malformed_sample_lines_are_shown_as_unreadable(tmp_path):
    run, samples = make_run(tmp_path)
    with (run / "samples.jsonl").open("a", encoding="utf-8") as fh:
        fh.write('{"id": "torn", "prompt": \n')
        fh.write(json.dumps({"id": "bad-types", "trajectory": "not a list"}) + "\n")
        fh.write("[1, 2, 3]\n")
    page = Page(write_report(run).read_text(encoding="utf-8"))
    assert len(page.cards) == len(samples) + 3
    bad = [c for c in page.cards if "unreadable" in c["attrs"]["class"]]
    assert len(bad) == 3
    messages = ["".join(c["text"]) for c in bad]
    assert "not valid JSON" in messages[0] and "'trajectory' should be list" in messages[1]
    assert "not a JSON object" in messages[2]


def test_missing_outside_and_corrupt_images_do_not_break_the_report(tmp_path):
    specs = [("a", "geography", 1.0, "p"), ("b", "geography", 1.0, "q"), ("c", "film", 0.5, "r")]
    run, _ = make_run(tmp_path, specs)
    _draw(tmp_path / "secret.png", (1, 2, 3), (64, 64))
    lines = [json.loads(x) for x in (run / "samples.jsonl").read_text().splitlines()]
    lines[0]["output_path"] = "../secret.png"
    lines[1]["gt_image"] = "gt/nothing-here.png"
    (run / "images" / "c.png").write_bytes(b"not a png at all")
    (run / "samples.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    page = Page(write_report(run).read_text(encoding="utf-8"))
    texts = ["".join(c["text"]) for c in page.cards]
    assert [len(c["imgs"]) for c in page.cards] == [1, 1, 1]
    assert "outside the run folder" in texts[0]
    assert "missing" in texts[1]
    assert "unreadable" in texts[2]


def test_custom_output_path(tmp_path):
    run, samples = make_run(tmp_path)
    out = write_report(run, tmp_path / "elsewhere" / "r.html")
    assert out == tmp_path / "elsewhere" / "r.html"
    assert len(Page(out.read_text(encoding="utf-8")).cards) == len(samples)
    assert (run / "categories.png").is_file() and not (run / "report.html").exists()


@pytest.mark.parametrize("damage, message", [
    (lambda run: (run / "summary.json").unlink(), "has not finished"),
    (lambda run: (run / "summary.json").write_text("{not json"), "not valid JSON"),
    (lambda run: (run / "summary.json").write_text("[1, 2]"), "not a JSON object"),
    (lambda run: (run / "summary.json").write_text('{"benchmark": "w"}'), "missing key"),
    (lambda run: (run / "summary.json").write_text(json.dumps(
        {**META, "scores": {"overall_avg": {"avg_scores": {}}, "groups": {"g": 3}}})),
     "scores.groups.g"),
])
def test_bad_summary_raises_run_error(tmp_path, damage, message):
    run, _ = make_run(tmp_path)
    damage(run)
    with pytest.raises(RunError, match=message):
        write_report(run)


def test_not_a_folder_raises_run_error(tmp_path):
    with pytest.raises(RunError, match="not a folder"):
        load_run(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunError, match="written by 'knowgen eval'"):
        load_run(tmp_path / "empty")


def test_summary_without_samples_still_renders(tmp_path):
    run, _ = make_run(tmp_path)
    (run / "samples.jsonl").unlink()
    page = Page(write_report(run).read_text(encoding="utf-8"))
    assert page.cards == [] and "has no samples.jsonl" in "".join(page.text)


@pytest.mark.slow
def test_report_of_a_real_eval_run(tmp_path):
    from knowgen.cli import main

    run = tmp_path / "run"
    assert main(["eval", "--policy", "oracle", "--limit", "3", "--run-dir", str(run),
                 "--benchmark", f"world:cache_dir={tmp_path / 'cache'}", "--no-progress"]) == 0
    page = Page(write_report(run).read_text(encoding="utf-8"))
    samples = [json.loads(x) for x in (run / "samples.jsonl").read_text().splitlines()]
    assert len(page.cards) == len(samples) == 3
    for card, s in zip(page.cards, samples):
        text = "".join(card["text"])
        assert s["prompt"] in text and s["answer"]["gen_prompt"] in text
        assert f"{s['image_judgement']['overall']:.2f}" in text
        gen, gt = (decode(a["src"]) for a in card["imgs"])
        assert max(gen.size) <= 256 and max(gt.size) <= 256
        assert f"tool calls ({s['turns']} turns)" in text
    Image.open(run / "categories.png").verify()



def test_text_has_one_meaning_per_table(tmp_path):
    """'text' is the judged text in the image; the text judge's score is the 'answer' column."""
    run, _ = make_run(tmp_path)
    html = write_report(run).read_text(encoding="utf-8")
    for table in re.findall(r"<table.*?</table>", html, flags=re.DOTALL):
        headers = [h.strip() for h in re.findall(r"<th[^>]*>(.*?)</th>", table, flags=re.DOTALL)]
        texts = [h for h in headers if "text" in h]
        assert len(texts) <= 1 or texts == ["text in image", "answer (text judge)"], texts
        assert "text" not in headers and "text judge" not in headers
    assert "text in image" in html and "answer (text judge)" in html
