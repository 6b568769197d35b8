"""``mesh-controller run --auth ...`` (issue 10): the command line selects the authenticator, a
misconfiguration is a one-line error (exit 2), and real sidecars get their config with the token
file they are given. Real processes on loopback; no root needed."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from mesh.api import credentials
from mesh.api.proxyconfig import Identity, config_url
from mesh.controller.__main__ import main
from tests.article import egress_text, meshconfig_yaml
from tests.integration.helpers import free_port

CURL = Identity("curl", "curl")
GATEWAY = Identity("egress-gateway", "global-egress-gateway")
KEY = credentials.generate_signing_key()


def run_args(tmp_path: Path, *extra: str) -> list[str]:
    return ["run", "--source", "directory", "--manifests", str(tmp_path), "--webhook-port", "0",
            "--host", "127.0.0.1", "--port", "0", *extra]  # fmt: skip


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "public.pem").write_bytes(credentials.public_key_pem(KEY))
    (tmp_path / "keys" / "not-a-key.pem").write_text("hello\n")
    (tmp_path / "keys" / "empty-token").write_text("\n")
    (tmp_path / "keys" / "bad-kubeconfig").write_text("clusters: [\n")
    return tmp_path


@pytest.fixture
def root_logging():
    """main() points the root logger at this test's captured stdout: put it back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--auth", "key"], "--auth key needs --auth-public-key FILE"),
        (
            ["--auth-public-key", "{d}/absent.pem"],
            "--auth-public-key {d}/absent.pem: cannot read: No such file",
        ),
        (
            ["--auth-public-key", "{d}/keys/not-a-key.pem"],
            "--auth-public-key {d}/keys/not-a-key.pem: not a PEM",
        ),
        (["--auth", "none", "--auth-public-key", "{d}/keys/public.pem"], "used only with --auth key"),
        (["--auth", "tokenreview"], "no Kubernetes credentials for TokenReview: "),
        (
            ["--auth-public-key", "{d}/keys/public.pem", "--admin-token-file", "{d}/keys/empty-token"],
            "--admin-token-file {d}/keys/empty-token: must hold one token",
        ),
        (["--admin-token-file", "{d}/keys/empty-token"], "--admin-token-file needs an authenticator"),
    ],
)
def test_a_misconfigured_authenticator_is_a_clear_error(
    files: Path, monkeypatch, capsys, root_logging, extra, message
):
    monkeypatch.setenv("KUBECONFIG", str(files / "keys" / "bad-kubeconfig"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    code = main(run_args(files, *(e.format(d=files) for e in extra)))
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("mesh-controller: error: ") and message.format(d=files) in err, err
    assert "Traceback" not in err


class Controller:
    def __init__(self, proc: subprocess.Popen, base: str) -> None:
        self.proc, self.base = proc, base

    def config(self, identity: Identity, token: str | None = None) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.get(config_url(self.base, identity), headers=headers, timeout=5)


@pytest.fixture
def controller(files: Path) -> Iterator[Controller]:
    (files / "meshconfig.yaml").write_text(meshconfig_yaml(False))
    (files / "egress.yaml").write_text(egress_text())
    (files / "keys" / "admin-token").write_text("let-me-see\n")
    port = free_port()
    args = run_args(files, "--auth-public-key", str(files / "keys" / "public.pem"),
                    "--admin-token-file", str(files / "keys" / "admin-token"))  # fmt: skip
    args[args.index("--port") + 1] = str(port)
    proc = subprocess.Popen(
        [sys.executable, "-m", "mesh.controller", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        retry = retry_if_exception_type((AssertionError, requests.ConnectionError))
        for attempt in Retrying(stop=stop_after_delay(30), wait=wait_fixed(0.1), reraise=True, retry=retry):
            with attempt:
                assert proc.poll() is None, proc.stdout.read()  # type: ignore[union-attr]
                assert requests.get(base + "/readyz", timeout=2).status_code == 200
        yield Controller(proc, base)
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_public_key_option_turns_authentication_on(controller: Controller):
    assert controller.config(CURL).status_code == 401
    assert controller.config(CURL, credentials.mint(KEY, GATEWAY)).status_code == 403
    other_key = credentials.generate_signing_key()
    refused = controller.config(CURL, credentials.mint(other_key, CURL))
    assert refused.status_code == 401 and "Signature verification failed" in refused.text
    served = controller.config(CURL, credentials.mint(KEY, CURL))
    assert served.status_code == 200 and "httpbin.org" in served.text
    controller.proc.terminate()
    out, _ = controller.proc.communicate(timeout=10)
    started = [json.loads(line)["message"] for line in out.splitlines() if line.startswith("{")]
    assert "sidecars authenticate with tokens signed by the Docker backend's key" in started
    assert not any("does not authenticate callers" in m for m in started)


def sidecar(controller: Controller, token_file: Path, identity: Identity = CURL) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "mesh.proxy", "run", "--controller", controller.base,
         "--identity", str(identity), "--token-file", str(token_file),
         "--listen", "127.0.0.1", "--port", str(free_port())],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def events_until(proc: subprocess.Popen, wanted: str, timeout: float = 20) -> list[dict]:
    seen: list[dict] = []
    deadline = time.monotonic() + timeout
    for line in proc.stdout:  # type: ignore[union-attr]
        if line.startswith("{"):
            seen.append(json.loads(line))
            if seen[-1]["event"] == wanted:
                return seen
        assert time.monotonic() < deadline, seen
    raise AssertionError(f"the sidecar exited without {wanted}: {seen}")


def test_real_sidecars_present_their_token_file(controller: Controller, files: Path):
    mine, foreign = files / "keys" / "curl-token", files / "keys" / "gateway-token"
    mine.write_text(credentials.mint(KEY, CURL))
    foreign.write_text(credentials.mint(KEY, GATEWAY))
    good, bad = sidecar(controller, mine), sidecar(controller, foreign)
    try:
        applied = events_until(good, "config")[-1]
        assert applied["identity"] == "curl/curl" and applied["rules"] == 1
        refused = events_until(bad, "controller_refused")[-1]
        assert refused["status"] == 403
        assert (
            refused["reason"] == "the credential is for egress-gateway/global-egress-gateway, not curl/curl"
        )
    finally:
        for proc in (good, bad):
            proc.terminate()
            proc.wait(10)
