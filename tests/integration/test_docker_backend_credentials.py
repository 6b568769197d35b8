"""Sidecar credentials on the Docker backend (issue 10): the controller runs with the run's public
key, the sidecar reads the token the backend minted for its pod at the Kubernetes path, and the
config server serves that token its own identity only. Needs Docker (skipped without)."""

from __future__ import annotations

import json

import jwt
import pytest

from mesh.api import credentials
from scenarios.clusters.docker.credentials import CredentialsHook
from tests.integration.test_docker_backend import cluster, deploy_curl, refs  # noqa: F401 - fixtures

pytestmark = pytest.mark.docker

CONFIG = "http://127.0.0.1:15128/v1/proxyconfig"


@pytest.fixture
def fresh(cluster):  # noqa: F811
    cluster.reset()
    return cluster


def from_controller(backend, path: str, token: str | None = None) -> str:
    """HTTP status of a GET on the config server, from inside the controller's container (loopback)."""
    argv = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", f"{CONFIG}/{path}"]
    if token:
        argv[1:1] = ["-H", f"Authorization: Bearer {token}"]
    code, out = backend.client.containers.get(backend.controller).exec_run(argv)
    assert code == 0, out
    return out.decode()


def test_the_sidecar_presents_its_pods_token_and_gets_only_its_own_config(fresh):
    deploy_curl(fresh)
    token = fresh.exec("curl", "app=curl", "sidecar", ["cat", credentials.TOKEN_PATH])
    assert token.ok, token
    claims = jwt.decode(token.stdout, options={"verify_signature": False})
    assert claims["sub"] == "system:serviceaccount:curl:curl" and claims["iss"] == credentials.DOCKER_ISSUER
    assert (
        claims["aud"] == [credentials.AUDIENCE]
        and claims["exp"] - claims["iat"] == credentials.TOKEN_LIFETIME
    )
    assert (
        fresh.exec("curl", "app=curl", "curl", ["cat", credentials.TOKEN_PATH]).exit_code != 0
    )  # app: no token

    assert from_controller(fresh, "curl/curl") == "401"
    assert from_controller(fresh, "curl/curl", token.stdout) == "200"
    assert from_controller(fresh, "egress-gateway/global-egress-gateway", token.stdout) == "403"

    sidecar = [json.loads(line) for line in fresh.logs("curl", "app=curl", "sidecar").stdout.splitlines()
               if line.startswith("{")]  # fmt: skip
    assert any(e["event"] == "config" and e["identity"] == "curl/curl" for e in sidecar)
    assert not any(e["event"] == "controller_refused" for e in sidecar), sidecar
    out = fresh.client.containers.get(fresh.controller).logs()
    assert b"sidecars authenticate with tokens signed by the Docker backend's key" in out


def test_a_deleted_pods_token_is_removed_and_not_minted_again(fresh):
    deploy_curl(fresh)
    (pod,) = [p for p in fresh.runtime.pods.values() if p.namespace == "curl"]
    (creds,) = [h.credentials for h in fresh.hooks if isinstance(h, CredentialsHook)]
    folder = creds.directory / "pods" / "curl" / pod.name
    assert [p.name for p in folder.rglob("token")], "no token minted for the pod"

    assert fresh.run(["kubectl", "delete", "deployment", "curl", "-n", "curl"]).ok
    assert not folder.exists()
    creds.rotate()  # what the rotation thread does at 80 % of the lifetime
    assert not folder.exists() and ("curl", pod.name) not in creds.pods()
