"""Helpers of the serving tests: scripted episodes played in-process, and a chat endpoint."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from knowgen.registry import POLICIES


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def play_in_process(env: Any, seed: int | None = None, task_id: str | None = None,
                    policy: str = "scripted") -> dict[str, Any]:
    """Play one episode with a reference policy; returns its actions and what came back.

    Returns:
        ``{"task_id", "actions", "observations", "rewards", "infos", "done"}``,
        observations starting with the reset's.
    """
    options = {"task_id": task_id} if task_id is not None else None
    obs, info = env.reset(seed=seed, options=options)
    agent = POLICIES.create(policy, seed=0)
    agent.reset(obs, info)
    record: dict[str, Any] = {"task_id": info["task_id"], "actions": [], "observations": [obs],
                              "rewards": [], "infos": [info], "done": []}
    done = False
    while not done:
        action = agent.act(obs, info)
        obs, reward, terminated, truncated, info = env.step(action)
        done = terminated or truncated
        for key, value in (("actions", action), ("observations", obs), ("rewards", reward),
                           ("infos", info), ("done", (terminated, truncated))):
            record[key].append(value)
    return record


def plain(value: Any) -> Any:
    """``value`` as JSON data, the way it travels over the wire."""
    return json.loads(json.dumps(value, default=str))


class ReplayChatServer:
    """An OpenAI chat-completions endpoint on 127.0.0.1 that replays recorded turns.

    ``turns`` maps the text of the conversation's first user message to the
    assistant turns to send, in order; the turn sent is the one after as many
    assistant messages as the request already holds, so the reply depends on
    what the caller actually sent.
    """

    def __init__(self, turns: dict[str, list[str]]):
        self.turns, self.requests = turns, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(body)
                raw = json.dumps(outer.reply(body)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def reply(self, body: dict[str, Any]) -> dict[str, Any]:
        messages = body["messages"]
        request = next(m["content"] for m in messages if m["role"] == "user")
        done = sum(1 for m in messages if m["role"] == "assistant")
        content = self.turns[request][done]
        return {"id": f"chatcmpl-{len(self.requests)}", "object": "chat.completion",
                "created": int(time.time()), "model": body.get("model", "replay"),
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": content}}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
