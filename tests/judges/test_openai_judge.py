"""OpenAI-compatible judges against a real chat-completions server on 127.0.0.1."""

import base64
import io
import json
import logging
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from knowgen.errors import ConfigError, DataError
from knowgen.eval.wise_scoring import WiseLegacyJudgement, WiseVerifiedJudgement
from knowgen.judges.base import ImageJudge, TextJudge
from knowgen.judges.openai_judge import (
    OpenAIImageJudge,
    OpenAITextJudge,
    OpenAIWiseJudge,
    answer_text,
    encode_image,
)
from knowgen.judges.rubrics import JudgeResponseError
from knowgen.net.openai_client import ChatClient, JudgeAPIError, parse_retry_after, request_key
from knowgen.types import Answer, ReferenceImage, ResolvedReference, Task

KEY_ENV = "KNOWGEN_TEST_JUDGE_KEY"
KEY = "sk-test-0123456789-secret"
FAST = {"backoff_base": 0.01, "backoff_max": 0.5}


def image_reply(f=1, v=0.5, t=1, a=0.5, na=False):
    return json.dumps({"rationale": "checked", "faithfulness": f, "visual_correctness": v,
                       "text_accuracy": t, "text_accuracy_na": na, "aesthetics": a})


class FakeChatServer:
    """A chat-completions endpoint whose replies come from ``script(body, n)``.

    ``script`` returns ``(status, headers, raw body, delay seconds)`` or a reply
    text (HTTP 200, wire-format body). Every request is checked and recorded.
    """

    def __init__(self, script):
        self.script = script
        self.requests = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                server.handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def handle(self, h):
        body = json.loads(h.rfile.read(int(h.headers["Content-Length"])))
        problems = self.check(h, body)
        with self.lock:
            n = len(self.requests)
            self.requests.append({"body": body, "problems": problems,
                                  "auth": h.headers.get("Authorization")})
        if problems:
            return self.send(h, 400, {}, json.dumps({"error": problems}).encode(), 0)
        out = self.script(body, n)
        if isinstance(out, str):
            payload = {"id": f"c{n}", "object": "chat.completion", "model": body["model"],
                       "choices": [{"index": 0, "finish_reason": "stop",
                                    "message": {"role": "assistant", "content": out}}]}
            out = (200, {}, json.dumps(payload).encode(), 0)
        self.send(h, *out)

    @staticmethod
    def check(h, body):
        problems = []
        if h.path != "/v1/chat/completions":
            problems.append(f"path {h.path}")
        if h.headers.get("Authorization") != f"Bearer {KEY}":
            problems.append("bad Authorization header")
        if body.get("temperature") != 0:
            problems.append("temperature is not 0")
        for msg in body["messages"]:
            if isinstance(msg["content"], list):
                for part in msg["content"]:
                    if part["type"] == "image_url" and not part["image_url"]["url"].startswith(
                            "data:image/jpeg;base64,"):
                        problems.append("image is not a JPEG data URL")
        return problems

    @staticmethod
    def send(h, status, headers, raw, delay):
        try:
            if delay:
                time.sleep(delay)
            h.send_response(status)
            for k, v in {"Content-Type": "application/json", **headers}.items():
                h.send_header(k, v)
            h.send_header("Content-Length", str(len(raw)))
            h.end_headers()
            h.wfile.write(raw)
        except OSError:  # the client gave up (timeout)
            pass

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    servers = []

    def start(script):
        servers.append(FakeChatServer(script))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def images_of(body):
    """Decoded images of the user message, in order."""
    out = []
    for part in body["messages"][-1]["content"]:
        if part["type"] == "image_url":
            raw = base64.b64decode(part["image_url"]["url"].split(",", 1)[1])
            img = Image.open(io.BytesIO(raw))
            assert img.format == "JPEG"
            out.append(img.convert("RGB"))
    return out


def texts_of(body):
    return "\n".join(p["text"] for p in body["messages"][-1]["content"] if p["type"] == "text")


@pytest.fixture
def task(tmp_path):
    gt = tmp_path / "gt.png"
    Image.new("RGB", (80, 60), (0, 0, 255)).save(gt)
    return Task(id="t1", prompt="The flag of the country whose capital is Paris",
                category="geography", gt_image=str(gt))


def judge_kwargs(server, **extra):
    return {"base_url": server.base_url, "api_key_env": KEY_ENV, **FAST, **extra}


def test_image_judge_sends_generated_then_gt_and_parses_messy_json(serve, task):
    messy = ("Here is my verdict.\n```json\n{\"rationale\": \"flag {ok}\", \"faithfulness\": 1,"
             " \"visual_correctness\": 0.5, \"text_accuracy\": 0, \"text_accuracy_na\": true,"
             " \"aesthetics\": \"1\",}\n```\nThanks!")
    server = serve(lambda body, n: messy)
    judge = OpenAIImageJudge("judge-model", **judge_kwargs(server))
    assert isinstance(judge, ImageJudge)
    generated = Image.new("RGBA", (5000, 100), (255, 0, 0, 255))
    j = judge.score(task, generated)
    assert (j.faithfulness, j.visual_correctness, j.aesthetics) == (1.0, 0.5, 1.0)
    assert j.text_accuracy_na and j.text_accuracy == 0.5 and j.rationale == "flag {ok}"
    assert j.overall == pytest.approx(0.1 + 0.2 + 0.2 + 0.1)
    assert j.evidence["model"] == "judge-model" and j.evidence["reply"] == messy
    (req,) = server.requests
    assert req["problems"] == [] and req["body"]["model"] == "judge-model"
    gen_img, gt_img = images_of(req["body"])
    assert gen_img.size == (4096, 81)  # longest side capped at 4096, the other truncated
    assert gen_img.getpixel((10, 10))[0] > 200 and gt_img.getpixel((10, 10))[2] > 200
    assert gt_img.size == (80, 60)
    assert task.prompt in texts_of(req["body"])
    assert "Image 1" in req["body"]["messages"][0]["content"]
    # the official evaluator's request shape: the rubric as the system message, then one
    # user message with exactly one text block followed by the generated and the GT image
    system, user = req["body"]["messages"]
    assert system["role"] == "system" and user["role"] == "user"
    assert [p["type"] for p in user["content"]] == ["text", "image_url", "image_url"]
    assert "t1" in user["content"][0]["text"]  # the sample id
    assert req["body"]["max_tokens"] == 8192 and req["body"]["temperature"] == 0


def test_text_judge_sees_prompt_gt_and_answer_notes(serve, task):
    server = serve(lambda body, n: '{"rationale": "close", "score": 0.75}')
    judge = OpenAITextJudge("m", **judge_kwargs(server))
    assert isinstance(judge, TextJudge)
    answer = Answer("A tricolour flag of blue, white and red; use the first reference image.",
                    (ReferenceImage("IMG_001", "the French flag"),))
    refs = [ResolvedReference("IMG_001", "the French flag", "Flag of France", "u", "p")]
    verdict = judge.score(task, answer, refs)
    assert verdict.score == 0.75 and verdict.rationale == "close"
    body = server.requests[0]["body"]
    assert len(images_of(body)) == 1 and images_of(body)[0].getpixel((5, 5))[2] > 200
    text = texts_of(body)
    assert task.prompt in text and answer.gen_prompt in text
    assert "the first reference image (titled 'Flag of France'): the French flag" in text
    assert "(none)" in answer_text(Answer("x"), [])


def test_wise_judges_for_both_variants(serve, tmp_path):
    replies = {"legacy": '{"consistency": 2, "realism": 1, "aesthetic_quality": 0}',
               "verified": "The leaves are yellow as explained.\nScore: 1"}
    server = serve(lambda body, n: replies["legacy" if "0, 1 or 2" in
                                           body["messages"][0]["content"] else "verified"])
    wise_task = Task(id="641", prompt="A birch tree in autumn", category="biology",
                     extra={"explanation": "Yellow leaves."})
    img = tmp_path / "641.png"
    Image.new("RGB", (32, 32), "yellow").save(img)
    legacy = OpenAIWiseJudge("legacy", "m", **judge_kwargs(server)).score(wise_task, img)
    assert legacy == WiseLegacyJudgement(2, 1, 0) and legacy.value == pytest.approx(0.8)
    verified = OpenAIWiseJudge("verified", "m", **judge_kwargs(server)).score(wise_task, img)
    assert isinstance(verified, WiseVerifiedJudgement) and verified.score == 1
    assert "Yellow leaves." in texts_of(server.requests[0]["body"])
    with pytest.raises(DataError, match="no explanation"):
        OpenAIWiseJudge("verified", "m", **judge_kwargs(server)).score(
            Task(id="1", prompt="p", category="culture"), img)


def test_missing_key_is_a_clear_error_without_leaking(monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(ConfigError, match=f"environment variable {KEY_ENV}"):
        OpenAIImageJudge("m", base_url="http://127.0.0.1:9/v1", api_key_env=KEY_ENV)
    monkeypatch.setenv(KEY_ENV, KEY)
    judge = OpenAIImageJudge("m", base_url="http://127.0.0.1:9/v1", api_key_env=KEY_ENV)
    assert KEY not in repr(judge) and KEY not in repr(judge.client)


def test_refused_request_is_not_retried_and_hides_the_key(serve, task, caplog):
    server = serve(lambda body, n: (401, {}, json.dumps(
        {"error": f"Incorrect API key provided: {KEY}"}).encode(), 0))
    judge = OpenAIImageJudge("m", **judge_kwargs(server))
    with caplog.at_level(logging.DEBUG), pytest.raises(JudgeAPIError, match="HTTP 401") as err:
        judge.score(task, Image.new("RGB", (8, 8)))
    assert len(server.requests) == 1
    assert KEY not in str(err.value) and KEY not in caplog.text


def fault_script(faults, good_reply):
    """Per sample (found by its prompt), fail the first attempts as listed, then answer."""
    seen = {}
    lock = threading.Lock()

    def script(body, n):
        sample = next(s for s in faults if f"Request:\n{s}" in texts_of(body))
        with lock:
            attempt = seen[sample] = seen.get(sample, 0) + 1
        plan = faults[sample]
        kind = plan[attempt - 1] if attempt <= len(plan) else "ok"
        if kind == "429":
            return (429, {"Retry-After": "0"}, b'{"error": "rate limited"}', 0)
        if kind == "500":
            return (500, {}, b"internal error", 0)
        if kind == "garbage":
            return (200, {}, b'{"choices": [ {"message": ', 0)
        if kind == "slow":
            return (200, {}, b"{}", 2.5)
        return good_reply(sample)

    return script, seen


def test_fault_injection_every_sample_scored_exactly_once(serve, tmp_path, caplog):
    kinds = ["429", "500", "garbage", "slow"]
    faults = {f"prompt-{i:02d}": [] if i % 5 == 0 else
              [kinds[i % 4]] + ([kinds[(i + 1) % 4]] if i % 3 == 0 else [])
              for i in range(15)}
    faults["prompt-off-scale"] = ["500"]
    gt = tmp_path / "gt.png"
    Image.new("RGB", (16, 16), "white").save(gt)

    def good(sample):
        if sample == "prompt-off-scale":
            return image_reply(f=0.7)
        return image_reply(v=int(sample[-2:]) % 2)

    script, seen = fault_script(faults, good)
    server = serve(script)
    judge = OpenAIImageJudge("m", strict=True, **judge_kwargs(server, timeout=1.0, max_retries=4,
                                                              concurrency=4))
    items = [(Task(id=s, prompt=s, category="art", gt_image=str(gt)), Image.new("RGB", (16, 16)))
             for s in faults]
    with caplog.at_level(logging.WARNING):
        outcomes = judge.score_many(items)
    assert [o.index for o in outcomes] == list(range(len(items)))
    for (t, _), o in zip(items, outcomes):
        assert seen[t.prompt] == len(faults[t.prompt]) + 1  # one request per failure, one that succeeds
        if t.prompt == "prompt-off-scale":
            assert o.result is None and o.error_type == "JudgeResponseError"
            assert "off the scale" in o.error
        else:
            assert o.error is None and o.result.visual_correctness == int(t.prompt[-2:]) % 2
    retries = [r for r in caplog.records if r.levelno == logging.WARNING and "retrying" in
               r.getMessage()]
    n_failures = sum(len(plan) for plan in faults.values())
    assert len(retries) == n_failures
    text = caplog.text
    for reason in ("HTTP 429", "HTTP 500", "unreadable response body", "timed out after 1 s"):
        assert reason in text
    assert "attempt 1 of 5" in text and "attempt 2 of 5" in text
    assert all(not r["problems"] for r in server.requests)


def test_cache_answers_a_rerun_without_any_request(serve, task, tmp_path):
    server = serve(lambda body, n: image_reply())
    cache = tmp_path / "cache"
    first = OpenAIImageJudge("m", **judge_kwargs(server, cache_dir=str(cache)))
    a = first.score(task, Image.new("RGB", (30, 30), "red"))
    assert len(server.requests) == 1 and len(list(cache.rglob("*.json"))) == 1
    rerun = OpenAIImageJudge("m", **judge_kwargs(server, cache_dir=str(cache)))
    b = rerun.score(task, Image.new("RGB", (30, 30), "red"))
    assert len(server.requests) == 1 and rerun.client.requests_sent == 0
    assert a == b
    rerun.score(task, Image.new("RGB", (30, 30), "green"))  # another image: a new request
    OpenAIImageJudge("other-model", **judge_kwargs(server, cache_dir=str(cache))).score(
        task, Image.new("RGB", (30, 30), "red"))  # another model: a new request
    assert len(server.requests) == 3


def test_rejected_reply_is_not_cached(serve, task, tmp_path):
    server = serve(lambda body, n: image_reply(a=2) if n == 0 else image_reply())
    kwargs = judge_kwargs(server, cache_dir=str(tmp_path / "c"), strict=True)
    with pytest.raises(JudgeResponseError, match="aesthetics is 2"):
        OpenAIImageJudge("m", **kwargs).score(task, Image.new("RGB", (8, 8)))
    assert OpenAIImageJudge("m", **kwargs).score(task, Image.new("RGB", (8, 8))).aesthetics == 0.5
    assert len(server.requests) == 2


def test_retries_exhausted_and_retry_after_honoured(serve, task, caplog):
    server = serve(lambda body, n: (503, {"Retry-After": "0.3"}, b"busy", 0))
    judge = OpenAIImageJudge("m", **judge_kwargs(server, max_retries=2))
    start = time.monotonic()
    with caplog.at_level(logging.WARNING), pytest.raises(JudgeAPIError, match="3 attempts"):
        judge.score(task, Image.new("RGB", (8, 8)))
    assert time.monotonic() - start >= 0.6  # two waits of Retry-After 0.3 s
    assert len(server.requests) == 3
    assert "attempt 1 of 3" in caplog.text and "attempt 2 of 3" in caplog.text
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert parse_retry_after("2") == 2.0 and parse_retry_after("soon") is None


def test_prompt_from_reads_the_rubric_file_at_run_time(serve, task, tmp_path):
    rubric = tmp_path / "rubric.txt"
    rubric.write_text('Grade this: {prompt}\nReply {"faithfulness": ...}', encoding="utf-8")
    server = serve(lambda body, n: image_reply())
    judge = OpenAIImageJudge("m", **judge_kwargs(server, prompt_from=str(rubric)))
    judge.score(task, Image.new("RGB", (8, 8)))
    system = server.requests[0]["body"]["messages"][0]["content"]
    assert system == f'Grade this: {task.prompt}\nReply {{"faithfulness": ...}}'
    with pytest.raises(ConfigError, match="prompt_from"):
        OpenAIImageJudge("m", **judge_kwargs(server, prompt_from=str(tmp_path / "none.txt")))


def test_request_key_hashes_images_and_depends_on_every_part():
    url = encode_image(Image.new("RGB", (8, 8), "red"))
    body = {"model": "m", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": url}}]}]}
    key = request_key(body)
    assert key == request_key(json.loads(json.dumps(body)))
    other = json.loads(json.dumps(body))
    other["messages"][0]["content"][0]["image_url"]["url"] = encode_image(
        Image.new("RGB", (8, 8), "blue"))
    assert request_key(other) != key
    assert request_key({**body, "model": "n"}) != key


def test_missing_gt_image_is_a_data_error(serve, task):
    server = serve(lambda body, n: image_reply())
    judge = OpenAIImageJudge("m", **judge_kwargs(server))
    with pytest.raises(DataError, match="no readable ground-truth"):
        judge.score(Task(id="x", prompt="p", category="art"), Image.new("RGB", (8, 8)))
    assert server.requests == []


def test_local_server_without_auth(serve, task, monkeypatch):
    server = serve(lambda body, n: image_reply())
    client = ChatClient("m", base_url=server.base_url, api_key_env="")
    with pytest.raises(JudgeAPIError, match="HTTP 400"):
        client.complete([{"role": "user", "content": "hi"}], parse=str)
    assert server.requests[0]["auth"] is None


@pytest.mark.api
@pytest.mark.skipif(not os.environ.get("OPENAI_API_KEY"), reason="OPENAI_API_KEY is not set")
def test_real_openai_endpoint_judges_gt_against_itself(tmp_path):
    flag = Path(__file__).resolve().parents[2] / "knowgen/world/data/images/flag-fr.png"
    t = Task(id="fr", prompt="The national flag of France", category="geography",
             gt_image=str(flag))
    judge = OpenAIImageJudge("gpt-4.1", max_retries=2, cache_dir=str(tmp_path))
    verdict = judge.score(t, Image.open(flag))
    assert verdict.visual_correctness == 1.0 and verdict.text_accuracy_na


def test_concurrency_bound_holds_across_caller_threads(serve, task):
    state = {"now": 0, "max": 0}
    lock = threading.Lock()

    def script(body, n):
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        time.sleep(0.1)
        with lock:
            state["now"] -= 1
        return image_reply()

    server = serve(script)
    judge = OpenAIImageJudge("m", **judge_kwargs(server, concurrency=2))
    threads = [threading.Thread(target=judge.score, args=(task, Image.new("RGB", (8, 8))))
               for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(server.requests) == 6 and state["max"] == 2


@pytest.mark.parametrize("reply, message", [
    (image_reply(f=True), "no usable faithfulness"),
    (image_reply(v=0.25), "visual_correctness is 0.25, which is off the scale 0, 0.5, 1"),
    ('{"faithfulness": 1, "visual_correctness": 1, "text_accuracy": 1, "aesthetics": 1}',
     "lacks 'text_accuracy_na'"),
    ('{"faithfulness": 1, "visual_correctness": 1, "text_accuracy_na": false, "aesthetics": 1}',
     "lacks 'text_accuracy'"),
    (image_reply(t="high"), "'high' is not a number"),
    ("I cannot judge this image.", "no JSON object"),
])
def test_image_reply_validation_is_strict(reply, message):
    from knowgen.judges.rubrics import parse_image_reply

    with pytest.raises(JudgeResponseError, match=message) as err:
        parse_image_reply(reply)
    assert err.value.reply == reply


def test_reply_parsing_forms():
    from knowgen.judges.rubrics import (
        parse_image_reply,
        parse_text_reply,
        parse_wise_legacy_reply,
        parse_wise_verified_reply,
    )

    nested = ('Verdict {draft} then {"rationale": "r", "scores": {"faithfulness": 0.5, '
              '"visual_correctness": 1, "text_accuracy": "N/A", "aesthetics": 0}}')
    j = parse_image_reply(nested)
    assert (j.faithfulness, j.visual_correctness, j.text_accuracy_na, j.aesthetics) == (
        0.5, 1.0, True, 0.0)
    assert parse_text_reply('```\n{"score": "0.25", "rationale": "thin",}\n```').score == 0.25
    with pytest.raises(JudgeResponseError, match="off the scale"):
        parse_text_reply('{"score": 0.3}')
    legacy = parse_wise_legacy_reply("**Consistency**: 2\nRealism: 1\nAesthetic Quality: 0")
    assert (legacy.consistency, legacy.realism, legacy.aesthetic_quality) == (2, 1, 0)
    with pytest.raises(JudgeResponseError, match="realism is 3"):
        parse_wise_legacy_reply('{"consistency": 2, "realism": 3, "aesthetic_quality": 1}')
    with pytest.raises(JudgeResponseError, match="lacks 'aesthetic_quality'"):
        parse_wise_legacy_reply("Consistency: 2\nRealism: 1")
    v = parse_wise_verified_reply("A Score: 1 would need yellow leaves; they are green.\nScore: 0")
    assert v.score == 0 and v.rationale.startswith("A Score: 1 would need")
    assert parse_wise_verified_reply('{"score": 1}').score == 1
    for bad in ("Score: 2", "no verdict here"):
        with pytest.raises(JudgeResponseError):
            parse_wise_verified_reply(bad)


def test_judges_build_from_registry_specs(serve, task, tmp_path):
    from knowgen.registry import Registry

    server = serve(lambda body, n: image_reply() if "Image 1" in texts_of(body)
                   else '{"score": 1, "rationale": "enough"}')
    spec = (f"openai:model=vlm,base_url={server.base_url},api_key_env={KEY_ENV},"
            f"max_retries=1,timeout=5,cache_dir={tmp_path / 'c'}")
    images = Registry("image judge", {"openai": "knowgen.judges.openai_judge:OpenAIImageJudge"})
    texts = Registry("text judge", {"openai": "knowgen.judges.openai_judge:OpenAITextJudge"})
    ij, tj = images.create(spec), texts.create(spec)
    assert ij.client.max_retries == 1 and ij.client.timeout == 5.0
    assert ij.score(task, Image.new("RGB", (8, 8))).overall == pytest.approx(0.1 + 0.2 + 0.4 + 0.05)
    assert tj.score(task, Answer("draw it"), []).score == 1.0
    assert [r["body"]["model"] for r in server.requests] == ["vlm", "vlm"]
