"""``mesh-proxy run --readiness-port``: 503 until a config for the sidecar's identity is applied, then 200."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import requests
from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

from mesh.api.proxyconfig import READINESS_PATH, Identity, Mode, ProxyConfig


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write(path: Path, config: ProxyConfig) -> str:
    config = config.with_version()
    path.with_suffix(".tmp").write_text(config.to_json())
    os.replace(path.with_suffix(".tmp"), path)
    return config.version


def status(port: int) -> int | None:
    try:
        return requests.get(f"http://127.0.0.1:{port}{READINESS_PATH}", timeout=1).status_code
    except requests.ConnectionError:
        return None


def wait_status(port: int, wanted: int) -> int | None:
    return Retrying(
        stop=stop_after_delay(10),
        wait=wait_fixed(0.1),
        retry=retry_if_result(lambda got: got != wanted),
        retry_error_callback=lambda state: state.outcome.result(),
    )(status, port)


def test_ready_only_once_a_config_for_this_identity_is_applied(tmp_path: Path) -> None:
    config_file, ready_port, log = tmp_path / "proxyconfig.json", free_port(), tmp_path / "proxy.log"
    argv = [sys.executable, "-m", "mesh.proxy", "run", "--config-file", str(config_file),
            "--identity", "curl/curl", "--port", str(free_port()),
            "--readiness-port", str(ready_port)]  # fmt: skip
    with open(log, "w") as out:
        proxy = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        assert wait_status(ready_port, 503) == 503  # no config file yet
        write(config_file, ProxyConfig(identity=Identity("other", "other"), mode=Mode.PERMISSIVE))
        Retrying(
            stop=stop_after_delay(10), wait=wait_fixed(0.1), retry=retry_if_result(lambda seen: not seen)
        )(lambda: '"event": "config_rejected"' in log.read_text())
        assert status(ready_port) == 503  # a document for another identity was refused
        version = write(config_file, ProxyConfig(identity=Identity("curl", "curl"), mode=Mode.DISABLED))
        assert wait_status(ready_port, 200) == 200  # egress disabled is a config too
        body = requests.get(f"http://127.0.0.1:{ready_port}{READINESS_PATH}", timeout=1).text
        assert body == f"ready (config {version})\n"
    finally:
        proxy.terminate()
        proxy.wait(timeout=10)
    ready = [json.loads(line) for line in log.read_text().splitlines() if '"event": "ready"' in line]
    assert [r["version"] for r in ready] == [version]


def test_readiness_port_errors_are_messages(tmp_path: Path) -> None:
    base = [sys.executable, "-m", "mesh.proxy", "run", "--config-file", str(tmp_path / "c.json")]
    same = subprocess.run(
        [*base, "--port", "15001", "--readiness-port", "15001"], capture_output=True, text=True
    )
    assert (
        same.returncode == 2
        and "--readiness-port must be 1-65535 (0: off) and differ from --port" in same.stderr
    )
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = subprocess.run(
            [*base, "--port", str(free_port()), "--readiness-port", str(port)],
            capture_output=True,
            text=True,
            timeout=10,
        )
    assert busy.returncode == 1
    assert f"mesh-proxy: cannot listen on port {port}:" in busy.stderr and "Traceback" not in busy.stderr
