"""The real ``mesh-controller run`` process: propagation time, endpoints and CLI errors."""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
import requests
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_fixed

from mesh.api.proxyconfig import Identity, Mode, ProxyConfig, config_url
from tests.article import egress_text, meshconfig_yaml
from tests.integration.helpers import free_port, write_atomically

CURL = Identity("curl", "curl")


def controller(*args: str) -> list[str]:
    return [sys.executable, "-m", "mesh.controller", *args]


def serving(manifests: Path, port: int) -> list[str]:
    """The controller serving a manifest directory on 127.0.0.1:PORT, without its webhook."""
    return controller(
        "run", "--source", "directory", "--manifests", str(manifests),
        "--host", "127.0.0.1", "--port", str(port), "--webhook-port", "0",
    )  # fmt: skip


@pytest.fixture
def running_controller(tmp_path: Path):
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "meshconfig.yaml").write_text(meshconfig_yaml(False))
    port = free_port()
    proc = subprocess.Popen(
        serving(manifests, port),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"

    @retry(
        stop=stop_after_delay(20),
        wait=wait_fixed(0.1),
        retry=retry_if_exception_type(Exception),
        reraise=True,
    )
    def wait_ready() -> None:
        assert proc.poll() is None, proc.stderr.read()
        requests.get(base + "/readyz", timeout=1).raise_for_status()

    try:
        wait_ready()
        yield base, manifests
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        assert "Traceback" not in out + err


async def test_propagation_from_manifest_change_to_long_polling_client_is_under_one_second(
    running_controller,
):
    base, manifests = running_controller
    url = config_url(base, CURL)
    figures = []
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as resp:
            version = ProxyConfig.from_json(await resp.text()).version
        for round_ in range(5):
            host = f"host{round_}.example.com"

            async def poll(known: str = version) -> ProxyConfig:
                async with session.get(url, params={"version": known, "wait": "10"}) as resp:
                    assert resp.status == 200
                    return ProxyConfig.from_json(await resp.text())

            pending = asyncio.create_task(poll())
            await asyncio.sleep(0.3)  # the poll is waiting in the controller
            assert not pending.done()
            changed = time.monotonic()
            write_atomically(manifests / "egress.yaml", egress_text("allowed", host))
            cfg = await asyncio.wait_for(pending, 5)
            figures.append(time.monotonic() - changed)
            assert cfg.mode is Mode.POLICY and cfg.rules[0].hosts == (host,)
            version = cfg.version
    print(
        "\npropagation manifest change -> long-polling client: "
        f"median {statistics.median(figures) * 1000:.0f} ms, "
        f"max {max(figures) * 1000:.0f} ms over {len(figures)} changes"
    )
    assert max(figures) < 1.0


def test_endpoints_of_the_running_controller(running_controller):
    base, _ = running_controller
    assert requests.get(base + "/healthz", timeout=2).status_code == 200
    assert "mesh_controller_config_generation" in requests.get(base + "/metrics", timeout=2).text
    status = requests.get(base + "/v1/status", timeout=2).json()
    assert status["resources"] == {"MeshConfig": 1} and status["errors"] == []


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "--source", "directory", "--manifests", "/nonexistent/dir"], "does not exist"),
        (["run", "--source", "directory"], "needs --manifests"),
        (["run", "--source", "etcd"], "invalid choice"),
        (["run", "--source", "directory", "--manifests", ".", "--port", "notaport"], "invalid int"),
    ],
)
def test_user_errors_exit_non_zero_with_a_message(args, message):
    result = subprocess.run(controller(*args), capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_port_in_use_is_a_clear_error(tmp_path: Path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            serving(tmp_path, port),
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_kubernetes_source_without_credentials_is_a_clear_error(tmp_path: Path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("clusters: [\n")
    env = {k: v for k, v in os.environ.items() if k != "KUBERNETES_SERVICE_HOST"} | {
        "KUBECONFIG": str(kubeconfig)
    }
    result = subprocess.run(
        controller("run", "--source", "kubernetes", "--port", "0", "--webhook-port", "0"),
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert result.returncode == 2
    assert "no usable Kubernetes credentials" in result.stderr and "Traceback" not in result.stderr
