"""``knowgen judge`` against the official evaluator's documented behaviour, on the same replies.

A chat server on 127.0.0.1 answers every sample with a scripted reply that
covers what real judges send (a missing ``text_accuracy_na``, ``"N/A"`` as a
string, off-scale values, a missing score, garbage). The results file holds
the item shapes real result files have (categories with spaces and capitals, an
item without ``meta``, a missing ground truth, a failed item). Then:

* ``knowgen judge`` (upstream-compatible, the default) runs on it;
* :func:`reference_evaluation` below re-implements the official evaluator as
  REFERENCE.md documents it (reading replies, not-evaluated rules, per-group
  aggregation, judged-output items) on the very same replies;
* both must agree on every score, on which items are not evaluated or failed,
  and each must read the other's ``results_eval.json``.
"""

from __future__ import annotations

import json
import math
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from knowgen.cli import main
from knowgen.eval.judge_results import judge_results

KEY_ENV = "KNOWGEN_TEST_COMPAT_KEY"

#: The judge's reply per sample id (what real judges have been seen to send).
REPLIES = {
    "plain": '{"rationale": "ok", "faithfulness": 1, "visual_correctness": 0.5, '
             '"text_accuracy": 1, "text_accuracy_na": false, "aesthetics": 0.5}',
    "no-na-flag": '{"faithfulness": 0.5, "visual_correctness": 1, "text_accuracy": 0.5, '
                  '"aesthetics": 1}',
    "na-string": '{"faithfulness": 1, "visual_correctness": 1, "text_accuracy": "N/A", '
                 '"aesthetics": 0.5}',
    "na-true-string": '{"faithfulness": 0, "visual_correctness": 0.5, "text_accuracy": 0, '
                      '"text_accuracy_na": "true", "aesthetics": 1}',
    "off-scale": '```json\n{"faithfulness": 0.75, "visual_correctness": 0.25, '
                 '"text_accuracy": 0.8, "text_accuracy_na": false, "aesthetics": 1.5,}\n```',
    "missing-score": '{"faithfulness": 1, "visual_correctness": 1, "text_accuracy": 1, '
                     '"text_accuracy_na": false}',
    "text-null": '{"faithfulness": 0.5, "visual_correctness": 0, "text_accuracy": null, '
                 '"aesthetics": 0}',
    "spaced-category": '{"faithfulness": 1, "visual_correctness": 1, "text_accuracy": 0, '
                       '"text_accuracy_na": false, "aesthetics": 1}',
    "no-meta": '{"faithfulness": 1, "visual_correctness": 1, "text_accuracy": 1, '
               '"text_accuracy_na": false, "aesthetics": 1}',
    "unknown-category": '{"faithfulness": 0, "visual_correctness": 0, "text_accuracy": 0, '
                        '"text_accuracy_na": false, "aesthetics": 0}',
    "word-score": '{"faithfulness": "high", "visual_correctness": 1, "text_accuracy": 1, '
                  '"text_accuracy_na": false, "aesthetics": 1}',
    "no-json": "I would rather not grade this image.",
    "na-one": '{"faithfulness": 1, "visual_correctness": 0, "text_accuracy": 1, '
              '"text_accuracy_na": 1, "aesthetics": 1}',
    "string-number": '{"faithfulness": "0.5", "visual_correctness": "1", "text_accuracy": 1, '
                     '"text_accuracy_na": 0, "aesthetics": 0.5}',
}


class ScriptedJudge:
    """A chat-completions server on 127.0.0.1 answering from :data:`REPLIES` by sample id."""

    def __init__(self, replies: dict[str, str]):
        self.replies = replies
        self.requests: list[dict] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.requests.append({"body": body, "auth": self.headers.get("Authorization")})
                text = body["messages"][-1]["content"][0]["text"]
                sample = re.search(r"Sample id: (\S+)", text).group(1)
                payload = {"choices": [{"index": 0, "message": {
                    "role": "assistant", "content": owner.replies[sample]}}]}
                raw = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def sample_ids(self) -> list[str]:
        found = []
        for r in self.requests:
            text = r["body"]["messages"][-1]["content"][0]["text"]
            found.append(re.search(r"Sample id: (\S+)", text).group(1))
        return sorted(found)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


# ------------------------------------------------------------- the documented evaluator

GROUPS = {
    "science_and_knowledge": {"astronomy", "biology", "chemistry", "physics", "engineering",
                              "medicine", "industry", "architecture", "history", "geography",
                              "religion", "politics", "culture", "art", "sports"},
    "pop_culture_and_news": {"anime", "game", "film", "celebrities", "posters",
                             "multi-subject-anime", "multi-subject-celebrities",
                             "multi-subject-game", "news"},
}
DIMS = ("faithfulness", "visual_correctness", "text_accuracy", "aesthetics")


def _reply_json(reply: str) -> dict:
    """First '{' to last '}', trailing commas dropped (REFERENCE: prose and fences tolerated)."""
    span = reply[reply.find("{"): reply.rfind("}") + 1]
    if not span:
        raise ValueError("no JSON")
    try:
        return json.loads(span)
    except json.JSONDecodeError:
        return json.loads(re.sub(r",\s*([}\]])", r"\1", span))


def _score(value) -> float:
    return round(min(1.0, max(0.0, float(value))), 2)  # clipped to [0, 1], 2 decimals


def reference_scores(reply: str) -> dict:
    """A reply read as documented: missing scores 0, N/A from the flag or a non-number."""
    obj = _reply_json(reply)
    flag = obj.get("text_accuracy_na")
    na = flag in ("true", "True") or (isinstance(flag, (bool, int, float)) and flag == 1)
    text = 0.5
    if not na:
        try:
            text = _score(obj.get("text_accuracy", 0))
        except (TypeError, ValueError):
            na = True
    f, v, a = (_score(obj.get(k, 0)) for k in ("faithfulness", "visual_correctness",
                                                "aesthetics"))
    return {"faithfulness": f, "visual_correctness": v, "text_accuracy": text,
            "aesthetics": a, "text_accuracy_na": na}


def _path_ok(base: Path, value) -> bool:
    return bool(value) and (base / value).is_file()


def reference_item(item: dict, base: Path, replies: dict[str, str]) -> tuple[dict, bool]:
    """One judged-output item (not evaluated, failed, or scored), and whether the judge was asked."""
    out = dict(item)
    if not item.get("success") or not _path_ok(base, item.get("output_path")) \
            or not _path_ok(base, item.get("gt_image")):
        return {**out, "eval_success": False, "scores": None, "error": "not_evaluated"}, False
    if not (item.get("prompt") or "").strip():
        return {**out, "eval_success": False, "scores": None, "error": "empty prompt"}, False
    try:
        scores = reference_scores(replies[str(item["id"])])
    except (ValueError, TypeError) as exc:
        return {**out, "eval_success": False, "scores": None, "error": str(exc)}, True
    return {**out, "eval_success": True, "scores": scores, "error": None}, True


def reference_summaries(judged: list[dict]) -> list[dict]:
    """The three summary items, computed from judged-output items as documented."""
    members = {g: [] for g in GROUPS}
    for item in judged:
        if item.get("eval_success") is not True or not isinstance(item.get("scores"), dict):
            continue
        cat = ((item.get("meta") or {}).get("category") or "").strip().lower()
        for g, cats in GROUPS.items():
            if cat in cats:
                members[g].append(item["scores"])

    def mean(values):
        return round(sum(values) / len(values), 4)

    avg = {}
    for g, rows in members.items():
        if not rows:
            avg[g] = dict.fromkeys((*DIMS, "overall"), 0.0)
            continue
        m = {d: mean([r[d] for r in rows]) for d in ("faithfulness", "visual_correctness",
                                                     "aesthetics")}
        texts = [r["text_accuracy"] for r in rows if not r.get("text_accuracy_na")]
        m["text_accuracy"] = mean(texts) if texts else 0.5
        m["overall"] = round(0.1 * m["faithfulness"] + 0.4 * m["visual_correctness"]
                             + 0.4 * m["text_accuracy"] + 0.1 * m["aesthetics"], 4)
        avg[g] = m
    both = {k: round((avg["science_and_knowledge"][k] + avg["pop_culture_and_news"][k]) / 2, 4)
            for k in (*DIMS, "overall")}
    out = [{"summary_type": g, "avg_scores": avg[g], "count": len(members[g])} for g in GROUPS]
    out.append({"summary_type": "overall_avg", "avg_scores": both,
                "count": sum(len(m) for m in members.values())})
    return out


def reference_evaluation(results: Path, replies: dict[str, str],
                         resume_from: Path | None = None) -> tuple[list[dict], list[str]]:
    """The judged output the documented evaluator writes, and the ids it sends to the judge.

    With ``resume_from``, items whose ``scores`` there is an object are kept, unjudged.
    """
    data = json.loads(results.read_text())
    kept = {}
    if resume_from is not None:
        kept = {str(i["id"]): i for i in json.loads(resume_from.read_text())
                if "id" in i and isinstance(i.get("scores"), dict)}
    judged, asked = [], []
    for item in data:
        sid = str(item["id"])
        if sid in kept:
            judged.append(kept[sid])
            continue
        out, was_asked = reference_item(item, results.parent, replies)
        if was_asked:
            asked.append(sid)
        judged.append(out)
    return judged + reference_summaries(judged), sorted(asked)


# ------------------------------------------------------------------ the test data

def _image(path: Path, colour: str) -> str:
    Image.new("RGB", (24, 16), colour).save(path)
    return path.name


@pytest.fixture
def results_file(tmp_path: Path) -> Path:
    gt = _image(tmp_path / "gt.png", "blue")
    gen = _image(tmp_path / "gen.png", "red")
    cats = {"plain": "geography", "no-na-flag": "Film", "na-string": "art",
            "na-true-string": "anime", "off-scale": "physics", "missing-score": "news",
            "text-null": "celebrities", "spaced-category": "  Posters ",
            "unknown-category": "cooking", "word-score": "history", "no-json": "game",
            "string-number": "sports", "na-one": "Biology"}
    items = [{"id": sid, "success": True, "prompt": f"request {sid}",
              "meta": {"category": cat, "difficulty": "easy"},
              "output_path": gen, "gt_image": gt} for sid, cat in cats.items()]
    items.append({"id": "no-meta", "success": True, "prompt": "request", "output_path": gen,
                  "gt_image": gt})
    items.append({"id": "no-gt", "success": True, "prompt": "request",
                  "meta": {"category": "art"}, "output_path": gen, "gt_image": "missing.png"})
    items.append({"id": "failed", "success": False, "prompt": "request",
                  "meta": {"category": "art"}, "output_path": None, "gt_image": gt})
    items.append({"id": "no-image", "success": True, "prompt": "request",
                  "meta": {"category": "film"}, "output_path": "nowhere.png", "gt_image": gt})
    items.append({"id": "empty-prompt", "success": True, "prompt": "  ",
                  "meta": {"category": "art"}, "output_path": gen, "gt_image": gt})
    path = tmp_path / "results.json"
    path.write_text(json.dumps(items, indent=1))
    return path


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-compat-test")
    srv = ScriptedJudge({**REPLIES, "empty-prompt": REPLIES["plain"]})
    yield srv
    srv.close()


def _spec(server: ScriptedJudge) -> str:
    return (f"openai:model=judge-x,base_url={server.base_url},api_key_env={KEY_ENV},"
            "max_retries=0,backoff_base=0.01")


def _status(item: dict) -> str:
    if item.get("eval_success") is True:
        return "scored"
    return "not_evaluated" if item["error"] == "not_evaluated" else "error"


def _same(ours: dict, theirs: dict) -> None:
    """Both judged-output items say the same: status, and the four scores and the N/A flag."""
    assert _status(ours) == _status(theirs), ours["id"]
    if _status(ours) == "scored":
        for key in (*DIMS, "text_accuracy_na"):
            assert ours["scores"][key] == theirs["scores"][key], (ours["id"], key)


# ------------------------------------------------------------------------ the tests

def test_same_replies_same_scores_same_not_evaluated_set(results_file, server, tmp_path):
    out = tmp_path / "judged"
    rc = main(["judge", str(results_file), "--judge", _spec(server), "--out", str(out),
               "--no-progress"])
    assert rc == 1  # two samples failed (a word for a score, no JSON): exit status says so
    ours = json.loads((out / "results_eval.json").read_text())
    theirs, asked = reference_evaluation(results_file, server.replies)
    assert server.sample_ids() == asked  # the same samples went to the judge, once each
    assert len(ours) == len(theirs)
    for a, b in zip(ours[:-3], theirs[:-3]):
        _same(a, b)
    assert ours[-3:] == theirs[-3:]  # every group mean and count, to the last digit
    by_status = {s: sorted(i["id"] for i in ours[:-3] if _status(i) == s)
                 for s in ("not_evaluated", "error")}
    assert by_status == {"not_evaluated": ["failed", "no-gt", "no-image"],
                         "error": ["empty-prompt", "no-json", "word-score"]}

    summary = json.loads((out / "summary.json").read_text())
    assert summary["mode"] == "upstream-compatible"
    assert summary["official_summary"] == theirs[-3:]
    assert summary["k_score"] == round(theirs[-1]["avg_scores"]["overall"] * 100, 2)
    # each leniency is counted: off-scale values (off-scale: 4 values, one sample),
    # missing scores (missing-score), text scored without the flag (no-na-flag)
    assert summary["lenient"] == {"off_scale": 1, "missing_score": 1, "missing_text_na": 1}
    assert summary["skipped_categories"] == {"(none)": 1, "cooking": 1}
    assert "posters" in summary["categories"]
    # the request has the documented shape
    req = server.requests[0]
    assert req["auth"] == "Bearer sk-compat-test"
    assert req["body"]["max_tokens"] == 8192 and req["body"]["temperature"] == 0
    assert [p["type"] for p in req["body"]["messages"][-1]["content"]] == [
        "text", "image_url", "image_url"]


def test_strict_mode_keeps_the_refusals(results_file, server, tmp_path):
    with pytest.raises(Exception, match="field 'meta' is missing"):
        judge_results(results_file, _spec(server), out_dir=tmp_path / "s", progress=False,
                      strict=True)
    items = [i for i in json.loads(results_file.read_text()) if i["id"] != "no-meta"]
    strict_file = results_file.with_name("results-strict.json")
    strict_file.write_text(json.dumps(items))
    summary = judge_results(strict_file, _spec(server), out_dir=tmp_path / "s2", progress=False,
                            strict=True)
    assert summary["mode"] == "strict" and summary["judge"].endswith(",strict=true")
    failed = set(summary["errors"])
    # what the default mode reads leniently fails here, and a missing GT is an error
    assert {"no-na-flag", "off-scale", "missing-score", "no-gt"} <= failed
    assert "not_evaluated" not in json.dumps(summary["errors"]["no-gt"])
    assert summary["lenient"] == {"off_scale": 0, "missing_score": 0, "missing_text_na": 0}


def test_the_documented_evaluator_resumes_from_our_output(results_file, server, tmp_path):
    out = tmp_path / "judged"
    judge_results(results_file, _spec(server), out_dir=out, progress=False)
    ours = json.loads((out / "results_eval.json").read_text())
    # its resume keeps every item whose scores is an object and asks again for the failures
    resumed, asked = reference_evaluation(results_file, server.replies,
                                          resume_from=out / "results_eval.json")
    assert asked == ["no-json", "word-score"]
    assert resumed[-3:] == ours[-3:]
    kept = [i for i in resumed[:-3] if i.get("eval_success")]
    assert len(kept) == 12 and all(i in ours for i in kept)  # taken over unchanged


def test_we_resume_from_the_documented_evaluators_output(results_file, server, tmp_path):
    theirs, _ = reference_evaluation(results_file, server.replies)
    # a results_eval.json written by the other evaluator, with two items still to do
    theirs[0] = {**theirs[0], "eval_success": False, "scores": None, "error": "timeout"}
    upstream = tmp_path / "upstream" / "results_eval.json"
    upstream.parent.mkdir()
    upstream.write_text(json.dumps(theirs))
    for name in ("gt.png", "gen.png"):
        (upstream.parent / name).write_bytes((results_file.parent / name).read_bytes())

    # 1. given as the results file itself: its scored items are kept as they are
    summary = judge_results(upstream, _spec(server), out_dir=tmp_path / "a", progress=False)
    assert server.sample_ids() == ["no-json", "plain", "word-score"]
    assert summary["counts"]["imported"] == 11
    full, _ = reference_evaluation(results_file, server.replies)
    assert summary["official_summary"] == full[-3:]

    # 2. found in the output folder: the same, and a rerun asks nothing
    server.requests.clear()
    out = tmp_path / "b"
    out.mkdir()
    (out / "results_eval.json").write_text(json.dumps(theirs))
    summary = judge_results(results_file, _spec(server), out_dir=out, progress=False)
    assert server.sample_ids() == ["no-json", "plain", "word-score"]
    assert summary["official_summary"] == full[-3:]
    server.requests.clear()
    judge_results(results_file, _spec(server), out_dir=out, progress=False)
    assert server.sample_ids() == []  # judged.jsonl holds every sample now


def test_damaged_judged_output_is_moved_aside_not_dropped(results_file, server, tmp_path, caplog):
    out = tmp_path / "judged"
    out.mkdir()
    (out / "results_eval.json").write_text('[{"id": "plain", "eval_su')
    summary = judge_results(results_file, _spec(server), out_dir=out, progress=False)
    aside = list(out.glob("results_eval.json.damaged-*"))
    assert len(aside) == 1 and aside[0].read_text() == '[{"id": "plain", "eval_su'
    assert "moved it to" in caplog.text
    assert summary["counts"]["scored"] == 12 and not math.isnan(summary["k_score"])
