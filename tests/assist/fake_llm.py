"""A local OpenAI-compatible ``/chat/completions`` endpoint for tests and the benchmark.

It rewords the grounded answer it is sent, and in ``lying`` mode it sometimes invents:
a price, a colour, another brand, or flips yes to no, so the verifier has something
to catch. Nothing leaves the machine.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

LIES = ("price", "colour", "brand", "flip")


def answer_of(prompt: str) -> str:
    m = re.search(r"\nANSWER:\n(.*)\nFACTS:\n", prompt, re.DOTALL)
    return m.group(1) if m else ""


def reword(answer: str, mode: str, n: int) -> str:
    """What the fake model says on its ``n``-th call."""
    faithful = "Sure! " + answer
    if mode == "faithful" or (mode == "lying" and n % 2 == 0):
        return faithful
    lie = LIES[(n // 2) % len(LIES)] if mode == "lying" else mode
    if lie == "price":
        return faithful + " Today it is on sale for only 9.99 USD."
    if lie == "colour":
        return faithful + " It also comes in a lovely turquoise."
    if lie == "brand":
        return faithful + " Many shoppers prefer it to the Brother model."
    if lie == "flip":
        return re.sub(r"\bYes\b", "No", faithful) if "Yes" in faithful else faithful + " No stock issues, though."
    return faithful


class FakeLLM:
    """``with FakeLLM("lying") as llm: ... llm.url``; ``llm.calls`` counts requests."""

    def __init__(self, mode: str = "faithful") -> None:
        self.mode = mode
        self.calls = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    n = outer.calls
                    outer.calls += 1
                if outer.mode == "error":
                    self.send_response(500)
                    self.end_headers()
                    return
                content = reword(answer_of(body["messages"][-1]["content"]), outer.mode, n)
                out = json.dumps({"id": f"fake-{n}", "object": "chat.completion", "model": body.get("model"),
                                  "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                               "finish_reason": "stop"}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
