"""The Docker backend's sidecar credentials (issue 10): projected token volumes of an injected pod
become minted tokens in a directory bind-mounted at the same path, checked with the public key the
controller gets. No Docker needed: the binds and files are what ``docker run`` would be given."""

from __future__ import annotations

import asyncio
import os
import stat
import tempfile
from pathlib import Path
from types import SimpleNamespace

import jwt
import pytest

from mesh.api import credentials
from mesh.api.proxyconfig import Identity
from mesh.controller.auth import KeyVerifier
from mesh.controller.injector import inject_pod
from scenarios.clusters.docker.credentials import CredentialsHook
from scenarios.clusters.docker_credentials import DockerCredentials
from tests.unit.test_injector import SETTINGS, curl_pod


@pytest.fixture
def creds(tmp_path: Path):
    made = DockerCredentials(tmp_path / "run-credentials")
    yield made
    made.close()


def injected() -> dict:
    return inject_pod(curl_pod(), SETTINGS)


def containers(pod: dict) -> dict[str, dict]:
    spec = pod["spec"]
    return {c["name"]: c for c in [*spec["initContainers"], *spec["containers"]]}


def host_path(bind: str, container_path: str) -> Path:
    source, target, mode = bind.split(":")
    assert mode == "ro" and container_path.startswith(target + "/")
    return Path(source) / container_path.removeprefix(target + "/")


def verifier(creds: DockerCredentials) -> KeyVerifier:
    (bind,) = creds.controller_binds()
    (_, key_path) = creds.controller_args()
    return KeyVerifier.from_pem(host_path(bind, key_path).read_bytes())


def test_the_sidecar_gets_its_pods_token_at_the_path_it_reads(creds: DockerCredentials):
    pod = injected()
    by_name = containers(pod)
    (bind,) = creds.pod_binds("curl", "curl-7d9f", pod["spec"], by_name["sidecar"])
    token_file = host_path(bind, credentials.TOKEN_PATH)
    assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o644
    token = token_file.read_text()
    assert asyncio.run(verifier(creds).identity(token)) == Identity("curl", "curl")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["kubernetes.io"]["pod"] == {"name": "curl-7d9f"}
    assert claims["exp"] - claims["iat"] == 600 and claims["aud"] == ["egress-mesh-controller"]


def test_only_containers_mounting_the_token_volume_get_it(creds: DockerCredentials):
    pod = injected()
    by_name = containers(pod)
    assert creds.pod_binds("curl", "curl-7d9f", pod["spec"], by_name["curl"]) == []
    assert creds.pod_binds("curl", "curl-7d9f", pod["spec"], by_name["osm-init"]) == []
    other = curl_pod()
    other["spec"]["volumes"] = [
        {"name": "t", "projected": {"sources": [{"serviceAccountToken": {"path": "x"}}]}}
    ]
    other["spec"]["containers"][0]["volumeMounts"] = [{"name": "t", "mountPath": "/t"}]
    assert creds.pod_binds("curl", "x", other["spec"], other["spec"]["containers"][0]) == []


def test_a_pod_without_a_service_account_is_default(creds: DockerCredentials):
    pod = injected()
    del pod["spec"]["serviceAccountName"]
    (bind,) = creds.pod_binds("curl", "p", pod["spec"], containers(pod)["sidecar"])
    token = host_path(bind, credentials.TOKEN_PATH).read_text()
    assert asyncio.run(verifier(creds).identity(token)) == Identity("curl", "default")


def test_tokens_are_rotated_in_place_and_forgotten_with_the_pod(creds: DockerCredentials):
    pod = injected()
    (bind,) = creds.pod_binds("curl", "curl-7d9f", pod["spec"], containers(pod)["sidecar"])
    token_file = host_path(bind, credentials.TOKEN_PATH)
    first = token_file.read_text()
    folder_inode = os.stat(token_file.parent).st_ino
    creds.rotate()
    second = token_file.read_text()
    assert second != first and os.stat(token_file.parent).st_ino == folder_inode  # the bound directory stays
    assert asyncio.run(verifier(creds).identity(second)) == Identity("curl", "curl")
    creds.forget_pod("curl", "curl-7d9f")
    assert not token_file.exists()
    creds.rotate()  # nothing left to mint
    assert not token_file.exists()


def test_another_runs_key_is_refused(creds: DockerCredentials, tmp_path: Path):
    other = DockerCredentials(tmp_path / "other-run")
    pod = injected()
    (bind,) = other.pod_binds("curl", "p", pod["spec"], containers(pod)["sidecar"])
    token = host_path(bind, credentials.TOKEN_PATH).read_text()
    with pytest.raises(credentials.CredentialError, match="Signature verification failed"):
        asyncio.run(verifier(creds).identity(token))
    other.close()
    assert not (tmp_path / "other-run").exists()


def test_the_backend_stops_minting_for_pods_that_are_gone(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    runtime = SimpleNamespace(pods={})
    hook = CredentialsHook(SimpleNamespace(run_id="r1", runtime=runtime))
    assert hook.objects_changed() == []  # no pod yet: nothing made
    pod = injected()
    token_files = {}
    for name in ("curl-a", "curl-b"):
        (bind,) = hook.credentials.pod_binds("curl", name, pod["spec"], containers(pod)["sidecar"])
        token_files[name] = host_path(bind, credentials.TOKEN_PATH)
        runtime.pods[("curl", name)] = object()
    hook.objects_changed()
    assert all(f.exists() for f in token_files.values())

    del runtime.pods[("curl", "curl-a")]  # deleted (kubectl delete, a rollout, a namespace, reset)
    hook.objects_changed()
    assert not token_files["curl-a"].parent.exists() and token_files["curl-b"].exists()
    hook.credentials.rotate()
    assert not token_files["curl-a"].exists() and token_files["curl-b"].exists()
    assert hook.credentials.pods() == {("curl", "curl-b")}
    hook.credentials.close()
