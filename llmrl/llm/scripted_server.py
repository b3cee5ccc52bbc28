"""A real OpenAI-compatible HTTP server on loopback whose answers follow a script.

The test suite and the benchmarks drive the whole LLM path through it (litellm -> openai SDK
-> HTTP), and it is handy for a dry run of a method without a model: every behaviour a real
endpoint shows under load can be scripted (latency, 429 with Retry-After, 5xx, a hang past the
client's timeout, malformed JSON, empty or truncated content, auth failures)."""
from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable


@dataclass
class Reply:
    """One scripted answer. `content` becomes the assistant message unless `body` or `raw`
    replace the whole response."""

    content: str = "ok"
    status: int = 200
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    finish_reason: str = "stop"
    body: dict[str, Any] | None = None       # a whole JSON body (errors)
    raw: bytes | None = None                 # bytes sent as they are (malformed JSON)
    prompt_tokens: int = 10
    completion_tokens: int | None = None     # default: words in content
    drop: bool = False                       # close the connection without answering


def rate_limited(retry_after_s: float = 1.0) -> Reply:
    return Reply(status=429, headers={"Retry-After": f"{retry_after_s:g}"},
                 body={"error": {"message": "Rate limit reached", "type": "rate_limit_error", "code": "rate_limit_exceeded"}})


def server_error(status: int = 500) -> Reply:
    return Reply(status=status, body={"error": {"message": "internal error", "type": "server_error"}})


def unauthorized() -> Reply:
    return Reply(status=401, body={"error": {"message": "Incorrect API key provided", "type": "invalid_request_error", "code": "invalid_api_key"}})


def context_too_long() -> Reply:
    return Reply(status=400, body={"error": {"message": "This model's maximum context length is 4096 tokens. However, your messages resulted in 9000 tokens.",
                                             "type": "invalid_request_error", "code": "context_length_exceeded"}})


class ScriptedServer:
    """`with ScriptedServer() as s:` then point a client at `s.api_base`. Replies come from
    `s.script(...)` in order, then from `responder(request_json, index)` (default: "ok")."""

    def __init__(self, responder: Callable[[dict, int], Reply] | None = None, model: str = "scripted-model",
                 api_key: str | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.responder = responder or (lambda request, index: Reply())
        self.model = model
        self.api_key = api_key
        self.requests: list[dict[str, Any]] = []
        self._queue: deque[Reply] = deque()
        self._lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self._httpd = ThreadingHTTPServer((host, port), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def api_base(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._queue.extend(replies)

    @property
    def completions(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"].endswith("/chat/completions")]

    def __enter__(self) -> "ScriptedServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _next_reply(self, request: dict, index: int) -> Reply:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
        return self.responder(request, index)

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _send(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _authorized(self) -> bool:
                if server.api_key is None:
                    return True
                return self.headers.get("Authorization", "") == f"Bearer {server.api_key}"

            def do_GET(self):
                server.requests.append({"path": self.path, "method": "GET", "time": time.time()})
                if not self._authorized():
                    return self._send(401, json.dumps(unauthorized().body).encode())
                if self.path.rstrip("/").endswith("/models"):
                    return self._send(200, json.dumps({"object": "list", "data": [{"id": server.model, "object": "model"}]}).encode())
                self._send(404, b'{"error": {"message": "not found"}}')

            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                with server._lock:
                    index = len(server.requests)
                    server.requests.append({"path": self.path, "method": "POST", "json": body, "time": time.time()})
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    if not self._authorized():
                        return self._send(401, json.dumps(unauthorized().body).encode())
                    reply = server._next_reply(body, index)
                    if reply.delay_s:
                        time.sleep(reply.delay_s)
                    if reply.drop:
                        self.close_connection = True
                        self.connection.shutdown(2)
                        return
                    if reply.raw is not None:
                        return self._send(reply.status, reply.raw, reply.headers)
                    if reply.body is not None:
                        return self._send(reply.status, json.dumps(reply.body).encode(), reply.headers)
                    completion_tokens = reply.completion_tokens
                    if completion_tokens is None:
                        completion_tokens = len(reply.content.split())
                    payload = {
                        "id": f"chatcmpl-{index}",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": body.get("model", server.model),
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.content},
                                     "finish_reason": reply.finish_reason}],
                        "usage": {"prompt_tokens": reply.prompt_tokens, "completion_tokens": completion_tokens,
                                  "total_tokens": reply.prompt_tokens + completion_tokens},
                    }
                    self._send(reply.status, json.dumps(payload).encode(), reply.headers)
                finally:
                    with server._lock:
                        server.in_flight -= 1

        return Handler
