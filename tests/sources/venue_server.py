"""A local API server for the venue clients' tests (127.0.0.1, random port).

A test gives ``route(method, path, query, body) -> (status, headers, bytes)`` that answers as the
provider's documentation shows (pagination, empty pages, in-band errors). Faults are queued and
consumed one request at a time, before the route runs:

* ``("status", code, headers)`` - answer with that status (429 + Retry-After, 500, 403 ...);
* ``("body", bytes)`` - answer 200 with exactly these bytes (a malformed page, an in-band
  rate-limit answer);
* ``"drop"`` - promise the route's full length, send half of it and close the connection.
"""
from __future__ import annotations

import http.server
import threading
import urllib.parse
from collections import deque

import pytest


class VenueServer:
    def __init__(self, route):
        self.route = route
        self.faults: deque = deque()
        self.log: list[dict] = []
        srv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _answer(self, method):
                parts = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else None
                srv.log.append({"method": method, "path": parts.path, "query": query, "url": self.path,
                                "headers": dict(self.headers), "body": body})
                fault = srv.faults.popleft() if srv.faults else None
                if isinstance(fault, tuple) and fault[0] == "status":
                    code, hdrs, data = fault[1], (fault[2] if len(fault) > 2 else {}), f"error {fault[1]}".encode()
                elif isinstance(fault, tuple) and fault[0] == "body":
                    code, hdrs, data = 200, {"Content-Type": "application/json"}, fault[1]
                else:
                    code, hdrs, data = srv.route(method, parts.path, query, body)
                self.send_response(code)
                for k, v in hdrs.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                if fault == "drop":
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._answer("GET")

            def do_POST(self):
                self._answer("POST")

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def json_answer(obj) -> tuple[int, dict, bytes]:
    import json

    return 200, {"Content-Type": "application/json"}, json.dumps(obj).encode()


@pytest.fixture
def venue_server():
    """Factory: ``venue_server(route)`` starts a :class:`VenueServer`; all are stopped after the test."""
    servers = []

    def start(route) -> VenueServer:
        s = VenueServer(route)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.close()


FAST = {"retries": 3, "backoff": 0.0, "timeout": 5.0, "sleep": lambda s: None, "throttle": False}


def assert_no_secret(data_dir, secret: str) -> None:
    """The secret appears in no manifest line, raw file name or raw file content."""
    from pathlib import Path

    d = Path(data_dir)
    for p in d.rglob("*"):
        assert secret not in str(p.relative_to(d)), p
        if p.is_file() and p.stat().st_size < 5_000_000:
            assert secret.encode() not in p.read_bytes(), p
