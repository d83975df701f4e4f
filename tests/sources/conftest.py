"""A local archive server for source tests: serves a directory on 127.0.0.1 (random port).

It speaks enough HTTP for the downloader: ``Content-Length``, ``ETag``/``Last-Modified``,
``Range``/``If-Range`` (206). Faults are queued per path and consumed one request at a time:

* ``("status", code, headers)`` - answer with that status (e.g. 500, 429 + Retry-After, 404);
* ``"drop"`` - promise the full length, send half the body, close the connection;
* ``"truncate"`` - serve the first half of the file as if it were the whole file;
* ``"corrupt"`` - serve the file with one byte flipped (same length).
"""
from __future__ import annotations

import hashlib
import email.utils
import http.server
import threading
from collections import defaultdict, deque
from pathlib import Path

import pytest


class ArchiveServer:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.faults: dict[str, deque] = defaultdict(deque)
        self.log: list[tuple[str, str, dict]] = []
        self.ignore_range = False
        self.json_routes: dict[str, bytes] = {}
        srv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):  # keep test output clean
                pass

            def do_GET(self):
                path = self.path.split("?", 1)[0]
                srv.log.append(("GET", self.path, dict(self.headers)))
                q = srv.faults.get(path)
                fault = q.popleft() if q else None
                if isinstance(fault, tuple) and fault[0] == "status":
                    code, hdrs = fault[1], (fault[2] if len(fault) > 2 else {})
                    body = f"error {code}".encode()
                    self.send_response(code)
                    for k, v in hdrs.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                if path in srv.json_routes:
                    body = srv.json_routes[path]
                    if callable(body):
                        body = body(self.path)
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                f = (srv.root / path.lstrip("/")).resolve()
                if not str(f).startswith(str(srv.root.resolve())) or not f.is_file():
                    body = b"not found"
                    self.send_response(404)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                data = f.read_bytes()
                if fault == "truncate":
                    data = data[: len(data) // 2]
                elif fault == "corrupt":
                    data = data[:-10] + bytes([data[-10] ^ 0xFF]) + data[-9:]
                etag = '"' + hashlib.md5(data).hexdigest() + '"'
                start = 0
                rng = self.headers.get("Range")
                if_range = self.headers.get("If-Range")
                if rng and not srv.ignore_range and (not if_range or if_range == etag):
                    start = int(rng.split("=", 1)[1].split("-", 1)[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.send_header("ETag", etag)
                self.send_header("Last-Modified", email.utils.formatdate(f.stat().st_mtime, usegmt=True))
                self.send_header("Accept-Ranges", "bytes")
                if fault == "drop":
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def requests_for(self, suffix: str) -> list[str]:
        return [p for _, p, _ in self.log if p.split("?", 1)[0].endswith(suffix)]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve():
    """Factory: ``serve(root)`` starts an :class:`ArchiveServer` for ``root``; all are stopped after the test."""
    servers = []

    def start(root) -> ArchiveServer:
        s = ArchiveServer(root)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.close()
