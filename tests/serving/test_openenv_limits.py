"""Limits of the environment server: concurrent sessions, bad requests, the token, expiry.

Every bad request must get a 4xx with a message that says what to fix, and the
server must go on serving: after the bad requests an episode still plays and
pays what it pays in-process.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx
import pytest

pytest.importorskip("openenv")

from serving_helpers import plain
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from knowgen.envs.openenv_client import SearchGenEnvClient, SearchGenHttpSession
from knowgen.envs.openenv_models import SearchGenAction
from knowgen.envs.openenv_server import create_env_app
from knowgen.generators.server import BackgroundServer
from knowgen.registry import POLICIES


def ws_url(http_url: str) -> str:
    return http_url.replace("http://", "ws://") + "/ws"


def play(env, seed):
    """Play ``seed`` with the scripted policy; returns observation texts, rewards, infos."""
    policy = POLICIES.create("scripted", seed=0)
    result = env.reset(seed=seed)
    texts, rewards, infos = [result.observation.text], [], [result.observation.metadata["info"]]
    policy.reset(texts[0], infos[0])
    while not result.done:
        action = SearchGenAction(text=policy.act(texts[-1], infos[-1]))
        result = env.step(action)
        texts.append(result.observation.text)
        rewards.append(result.reward)
        infos.append(result.observation.metadata["info"])
    return texts, rewards, infos


def same_as_recorded(run, record):
    texts, rewards, infos = run
    return (texts == record["observations"] and rewards == record["rewards"]
            and infos == plain(record["infos"]))


@pytest.mark.slow
def test_32_concurrent_sessions_are_isolated(shared_backends, recorded):
    """32 WebSocket sessions at once, four per task as in a GRPO group: all equal in-process."""
    app = create_env_app(backends=shared_backends, max_sessions=32)
    with BackgroundServer(app, name="environment server") as server:
        clients = [SearchGenEnvClient(base_url=server.url, message_timeout_s=600).sync()
                   for _ in range(32)]
        try:
            for client in clients:
                client.connect()
            # the server registers a session just after the handshake the client waits for
            deadline = time.monotonic() + 30
            while app.state.openenv_server.active_sessions < 32 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert app.state.openenv_server.active_sessions == 32
            with (pytest.raises(RuntimeError, match="CAPACITY_REACHED"),
                  SearchGenEnvClient(base_url=server.url).sync() as extra):
                extra.reset(seed=0)
            refused = httpx.post(f"{server.url}/sessions")
            assert refused.status_code == 503 and "--max-sessions" in refused.json()["error"]
            assert refused.headers["Retry-After"].isdigit()
            runs, errors = [None] * 32, []
            start = threading.Barrier(32)

            def worker(i):
                try:
                    start.wait()
                    runs[i] = play(clients[i], i % 8)
                except Exception as exc:  # noqa: BLE001 - every failure is reported below
                    errors.append(f"session {i}: {exc!r}")

            threads = [threading.Thread(target=worker, args=(i,)) for i in range(32)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=900)
        finally:
            for client in clients:
                client.close()
        equal = sum(runs[i] is not None and same_as_recorded(runs[i], recorded[i % 8])
                    for i in range(32))
        print(f"\n32 concurrent sessions: {equal} equal to in-process, {len(errors)} errors, "
              "a 33rd refused (WebSocket CAPACITY_REACHED, HTTP 503)")
        assert errors == []
        assert equal == 32
        deadline = time.monotonic() + 30
        while app.state.openenv_server.active_sessions and time.monotonic() < deadline:
            time.sleep(0.1)
        assert app.state.openenv_server.active_sessions == 0
        with SearchGenHttpSession(server.url) as session:  # places are free again
            assert same_as_recorded(play(session, 0), recorded[0])


def bad_http_requests(url: str, session_id: str, limit: int):
    """(what, method, path, body or raw bytes, expected status, words the message must hold)."""
    big = "x" * (limit + 10)
    s = f"/sessions/{session_id}"
    ghost = "/sessions/00000000-0000-0000-0000-000000000000"
    return [
        ("step: body not JSON", "POST", f"{s}/step", b"{not json", 422, "not JSON"),
        ("step: JSON array", "POST", f"{s}/step", b"[1, 2]", 422, "JSON object"),
        ("step: no action", "POST", f"{s}/step", {"act": {}}, 422, '{"action"'),
        ("step: action not an object", "POST", f"{s}/step", {"action": "hi"}, 422,
         "must be an object"),
        ("step: two turns in one", "POST", f"{s}/step",
         {"action": {"text": "a", "tool": "search"}}, 422, "exactly one of"),
        ("step: no turn", "POST", f"{s}/step", {"action": {}}, 422, "exactly one of"),
        ("step: unknown field", "POST", f"{s}/step", {"action": {"txt": "a"}}, 422, "txt"),
        ("step: text not a string", "POST", f"{s}/step", {"action": {"text": 5}}, 422,
         "valid string"),
        ("step: arguments without tool", "POST", f"{s}/step",
         {"action": {"answer": {}, "arguments": {}}}, 422, "goes with `tool`"),
        ("reset: unknown argument", "POST", f"{s}/reset", {"sede": 1}, 422, "sede"),
        ("reset: negative seed", "POST", f"{s}/reset", {"seed": -1}, 422, "non-negative"),
        ("reset: unknown task", "POST", f"{s}/reset", {"task_id": "nosuch"}, 422,
         "Unknown task"),
        ("reset: task index out of range", "POST", f"{s}/reset", {"task_index": 10**6}, 422,
         "task_index"),
        ("reset: images not a bool", "POST", f"{s}/reset", {"images": "yes"}, 422, "images"),
        ("openenv /step: invalid action", "POST", "/step", {"action": {"txt": 1}}, 422,
         "Extra inputs"),
        ("openenv /reset: negative seed", "POST", "/reset", {"seed": -5}, 422,
         "greater than or equal"),
        ("openenv /step: no episode", "POST", "/step", {"action": {"text": "a"}}, 409,
         "send a reset first"),
        ("step: JSON nested 20000 deep", "POST", f"{s}/step",
         b'{"action": {"text": "a", "metadata": ' + b"[" * 20000 + b"]" * 20000 + b"}}", 422,
         "nested too deeply"),
        ("openenv /step: JSON nested 20000 deep", "POST", "/step",
         b'{"action": ' + b"[" * 20000 + b"]" * 20000 + b"}", 400, "error parsing the body"),
        ("oversized: step body", "POST", f"{s}/step", {"action": {"text": big}}, 413,
         "larger than"),
        ("oversized: openenv /step body", "POST", "/step", {"action": {"text": big}}, 413,
         "larger than"),
        ("unknown session: reset", "POST", f"{ghost}/reset", {}, 404, "Unknown session"),
        ("unknown session: step", "POST", f"{ghost}/step", {"action": {"text": "a"}}, 404,
         "POST /sessions"),
        ("unknown session: state", "GET", f"{ghost}/state", None, 404, "Unknown session"),
        ("unknown session: close", "DELETE", ghost, None, 404, "Unknown session"),
    ]


def test_bad_requests_get_4xx_and_the_server_keeps_serving(served, recorded):
    limit = 64 * 1024  # the `served` fixture's max_request_bytes
    session = httpx.post(f"{served.url}/sessions").json()["session_id"]
    httpx.post(f"{served.url}/sessions/{session}/reset", json={"seed": 0})
    counts = {"sent": 0, "4xx": 0, "healthy_after": 0}
    for what, method, path, body, status, words in bad_http_requests(served.url, session, limit):
        raw = body if isinstance(body, bytes) else None
        response = httpx.request(method, served.url + path, content=raw,
                                 json=None if raw is not None else body,
                                 headers={"content-type": "application/json"})
        counts["sent"] += 1
        counts["4xx"] += 400 <= response.status_code < 500
        assert response.status_code == status, (what, response.text)
        message = response.json().get("error") or response.text  # OpenEnv's own: "detail"
        assert words in message, (what, message)
        counts["healthy_after"] += httpx.get(f"{served.url}/health").status_code == 200
    print(f"\nHTTP bad requests: {counts}")
    assert counts["4xx"] == counts["sent"] == counts["healthy_after"]
    # the session that received the bad requests still plays its episode
    state = httpx.get(f"{served.url}/sessions/{session}/state").json()
    assert state["step_count"] == 0 and state["task_id"] == recorded[0]["task_id"]
    httpx.delete(f"{served.url}/sessions/{session}")
    with SearchGenEnvClient(base_url=served.url).sync() as env:
        assert same_as_recorded(play(env, 0), recorded[0])


def test_malformed_turns_are_observations_not_errors(served, local_env):
    """A turn that parses as an action but says nonsense costs a turn, as in-process."""
    turns = ["no tags at all", '<tool_call>{"name": "nosuch", "arguments": {}}</tool_call>',
             '<answer>{"gen_prompt": "x", "reference_images": [{"img_id": "IMG_999"}]}</answer>']
    local_env.reset(seed=3)
    expected = [local_env.step(turn)[0] for turn in turns]
    with SearchGenEnvClient(base_url=served.url).sync() as env:
        env.reset(seed=3)
        got = [env.step(SearchGenAction(text=turn)) for turn in turns]
        dict_turn = env.step(SearchGenAction(tool="search", arguments={"queries": 7}))
    assert [r.observation.text for r in got] == expected
    assert all(r.reward == 0.0 and not r.done for r in got)
    assert "could not be carried out" in dict_turn.observation.text


async def _ws_exchange(url: str, frames: list[str | bytes]) -> list[dict]:
    """Send ``frames`` on one WebSocket; returns the replies (a close becomes ``{"closed"}``)."""
    replies = []
    async with connect(url, max_size=None) as ws:
        for frame in frames:
            try:
                await ws.send(frame)
            except ConnectionClosed:
                pass  # what the server sent before closing is still read below
            try:
                replies.append(json.loads(await asyncio.wait_for(ws.recv(), 60)))
            except ConnectionClosed as exc:
                replies.append({"closed": exc.rcvd.code if exc.rcvd else None})
                break
    return replies


def test_bad_websocket_messages_get_error_frames_and_oversized_ones_close(served, recorded):
    url = ws_url(served.url)
    frames = ["{oops", json.dumps({"type": "dance"}),
              json.dumps({"type": "step", "data": {"text": "a"}}),  # no reset yet
              json.dumps({"type": "reset", "data": {"seed": "zero"}}),
              json.dumps({"type": "reset", "data": {"task_id": "nosuch"}}),
              json.dumps({"type": "reset", "data": {"seed": 0}}),
              json.dumps({"type": "step", "data": {"txt": "a"}}),
              json.dumps({"type": "step", "data": {"text": "x" * (65 * 1024)}})]
    replies = asyncio.run(_ws_exchange(url, frames))
    codes = [r.get("data", {}).get("code") for r in replies[:5]]
    assert codes == ["INVALID_JSON", "UNKNOWN_TYPE", "EXECUTION_ERROR", "EXECUTION_ERROR",
                     "EXECUTION_ERROR"]
    assert "send a reset first" in replies[2]["data"]["message"]
    assert "non-negative" in replies[3]["data"]["message"]
    assert replies[5]["type"] == "observation"
    assert replies[6]["data"]["code"] == "VALIDATION_ERROR"
    assert replies[7] == {"closed": 1009}
    unknown = asyncio.run(_ws_exchange(url + "?session_id=nosuch", [json.dumps(
        {"type": "state"})]))
    assert "Unknown session_id" in json.dumps(unknown)
    deep = asyncio.run(_ws_exchange(url, [json.dumps({"type": "reset", "data": {}}),
                                          '{"type": "step", "data": ' + "[" * 20000 +
                                          "]" * 20000 + "}"]))
    assert deep[0]["type"] == "observation"
    assert deep[1]["type"] == "error" and "recursion" in deep[1]["data"]["message"]
    bad_sent = len(frames) - 1 + 1 + 1  # all frames but the good reset; unknown id; deep
    errors = sum(r.get("type") == "error" for r in replies + unknown + deep)
    closed = sum(r.get("closed") == 1009 for r in replies)
    print(f"\nWebSocket bad messages: sent {bad_sent}, error frames {errors}, closed with "
          f"1009 {closed}")
    assert errors + closed == bad_sent
    with SearchGenEnvClient(base_url=served.url).sync() as env:
        assert same_as_recorded(play(env, 1), recorded[1])


def test_token_is_checked_before_anything_else(shared_backends, recorded):
    token = "s3cret-token"
    app = create_env_app(backends=shared_backends, max_sessions=2, token=token,
                         max_request_bytes=1024)
    with BackgroundServer(app, name="environment server") as server:
        url = server.url
        for method, path, body in [("GET", "/health", None), ("GET", "/schema", None),
                                   ("POST", "/sessions", None), ("GET", "/no/such/path", None),
                                   ("POST", "/step", {"action": {"text": "x" * 5000}})]:
            missing = httpx.request(method, url + path, json=body)
            wrong = httpx.request(method, url + path, json=body,
                                  headers={"Authorization": "Bearer nope"})
            assert missing.status_code == wrong.status_code == 401, path
            assert "Authorization: Bearer" in missing.json()["error"]
            assert missing.headers["www-authenticate"] == "Bearer"
        with pytest.raises(InvalidStatus) as refused:
            asyncio.run(_ws_exchange(ws_url(url), [json.dumps({"type": "state"})]))
        assert refused.value.response.status_code == 401
        headers = {"Authorization": f"Bearer {token}"}
        assert httpx.get(f"{url}/health", headers=headers).status_code == 200
        too_big = httpx.post(f"{url}/step", headers=headers,
                             json={"action": {"text": "x" * 5000}})
        assert too_big.status_code == 413
        with SearchGenEnvClient(base_url=url, headers=headers).sync() as env:
            assert same_as_recorded(play(env, 2), recorded[2])
        with SearchGenHttpSession(url, token=token) as session:
            assert same_as_recorded(play(session, 2), recorded[2])


@pytest.mark.slow
def test_idle_sessions_expire(shared_backends):
    app = create_env_app(backends=shared_backends, max_sessions=2, idle_timeout_s=1.0)
    with BackgroundServer(app, name="environment server") as server:
        url = server.url
        session = httpx.post(f"{url}/sessions").json()["session_id"]
        httpx.post(f"{url}/sessions/{session}/reset", json={"seed": 0})
        env = SearchGenEnvClient(base_url=url).sync()
        env.reset(seed=1)
        assert httpx.get(f"{url}/sessions").json()["active_sessions"] == 2
        deadline = time.monotonic() + 30  # the reaper looks every max(timeout / 4, 5) s
        while httpx.get(f"{url}/sessions").json()["active_sessions"] and (
                time.monotonic() < deadline):
            time.sleep(0.5)
        assert httpx.get(f"{url}/sessions").json()["active_sessions"] == 0
        gone = httpx.post(f"{url}/sessions/{session}/step", json={"action": {"text": "a"}})
        assert gone.status_code == 404 and "expired after 1 s idle" in gone.json()["error"]
        with pytest.raises(RuntimeError, match="session has ended"):
            env.step(SearchGenAction(text="a"))
        env.close()
        assert httpx.post(f"{url}/sessions").status_code == 201  # the places are free
