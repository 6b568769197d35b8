"""Parsing real ``curl -sI`` / ``curl -si`` output, captured from a tiny server on loopback."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from scenarios import curl

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="the curl binary is not installed")

PAGES = {
    "/get": (200, "application/json", '{\n  "url": "http://httpbin.org/get"\n}\n'),
    "/200": (200, "text/plain", "200 OK"),
    "/deny": (403, "text/plain", "Access denied"),
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def _answer(self, with_body: bool) -> None:
        if self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if with_body:
                for chunk in (b"first part, ", b"HTTP/1.1 200 inside a line, ", b"end"):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.write(b"0\r\n\r\n")
            return
        status, content_type, body = PAGES[self.path]
        data = body.encode()
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        self.send_header("connection", "keep-alive")
        self.end_headers()
        if with_body:
            self.wfile.write(data)

    def do_GET(self) -> None:
        self._answer(True)

    def do_HEAD(self) -> None:
        self._answer(False)


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def run_curl(*args: str, text: bool = True) -> subprocess.CompletedProcess:
    """``text``: decoded with universal newlines like kubectl output; else the raw CRLF bytes."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    return subprocess.run(["curl", *args], capture_output=True, text=text, timeout=20, env=env)


def test_head_requests_to_several_urls(base_url):
    out = run_curl("-sI", f"{base_url}/get", f"{base_url}/deny", f"{base_url}/200")
    assert out.returncode == 0
    responses = curl.parse(out.stdout, head=True)
    assert [r.status_line for r in responses] == [
        "HTTP/1.1 200 OK",
        "HTTP/1.1 403 Forbidden",
        "HTTP/1.1 200 OK",
    ]
    denied = responses[1]
    assert denied.header("Content-Length") == "13"
    assert denied.header("CONNECTION") == "keep-alive"
    assert denied.header("x-missing") is None
    assert denied.body is None
    assert responses[2].header("content-length") == "6"
    assert responses[0].to_dict()["headers"][0][0].lower() in {"server", "date", "content-type"}


@pytest.mark.parametrize("text", [True, False], ids=["text", "bytes"])
def test_bodies_with_include(base_url, text):
    urls = [f"{base_url}{path}" for path in ("/get", "/deny", "/chunked", "/200")]
    out = run_curl("-si", *urls, text=text)
    assert out.returncode == 0
    responses = curl.parse(out.stdout, head=False)
    assert [r.status for r in responses] == [200, 403, 200, 200]
    assert responses[0].body == PAGES["/get"][2]
    assert responses[1].body == "Access denied"
    # no content-length: the body runs to the next status line (curl prints it right after "end")
    assert responses[2].body == "first part, HTTP/1.1 200 inside a line, end"
    assert responses[3].body == "200 OK"
    assert responses[1].text().startswith("HTTP/1.1 403 Forbidden\n")
    assert responses[1].text().endswith("\n\nAccess denied")


def test_connection_refused_is_exit_code_7_and_no_responses():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = run_curl("-sI", f"http://127.0.0.1:{port}/get")
    assert out.returncode == 7
    assert curl.parse(out.stdout) == []


def test_interim_responses_are_dropped_and_bytes_are_accepted():
    raw = (
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nokHTTP/2 204\r\n\r\n"
    )
    responses = curl.parse(raw, head=False)
    assert [(r.http_version, r.status, r.reason, r.body) for r in responses] == [
        ("1.1", 201, "Created", "ok"),
        ("2", 204, "", ""),
    ]


@pytest.mark.parametrize(
    ("args", "head"),
    [
        (["-sI"], True),
        (["-Is"], True),
        (["--head"], True),
        (["-si"], False),
        (["-s", "-i"], False),
        ([], False),
    ],
)
def test_sends_head(args, head):
    assert curl.sends_head(args) is head
