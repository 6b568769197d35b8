"""Two controller replicas share one webhook CA: both serve a certificate the one caBundle verifies.

Two real ``mesh-controller run --source kubernetes`` processes talk through the official client to
a small stateful API server on loopback (objects by path, 409 AlreadyExists on a create of an
existing object, 409 Conflict on a replace with a stale resourceVersion, idle watch streams).
Both replicas are made to find the Secret absent, so both create it and one loses with 409 and
must adopt the winner's. Then a real TLS handshake to each replica's webhook port is verified
against the caBundle the MutatingWebhookConfiguration ended up with, and each answers an
AdmissionReview.

kmock (kopf's API emulator) was tried first and left out: 0.8 cannot parse ``GET
/api/v1/namespaces`` (the controller lists and watches Namespaces; kmock answers 500), and it has
no PUT, no resourceVersion checks and no server-side apply.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import signal
import ssl
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from mesh.controller.webhook import Certificates, generate_certificates
from mesh.manifests.install import InstallOptions, mutating_webhook, webhook_secret_name
from tests.integration.helpers import free_port
from tests.integration.netns import python_env

NAMESPACE = "osm-system"
SECRET = webhook_secret_name("osm")
SECRETS = f"/api/v1/namespaces/{NAMESPACE}/secrets"
WEBHOOK_CONFIG = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/osm-webhook-osm"
LISTED = (
    f"/apis/config.openservicemesh.io/v1alpha2/namespaces/{NAMESPACE}/meshconfigs",
    "/apis/policy.openservicemesh.io/v1alpha1/egresses",
    "/apis/policy.openservicemesh.io/v1alpha1/egressgateways",
    "/apis/specs.smi-spec.io/v1alpha4/httproutegroups",
    "/api/v1/services",
    "/api/v1/namespaces",
    "/api/v1/serviceaccounts",
)
WEBHOOK_NAME = "osm-controller.osm-system.svc"


def status(code: int, reason: str, message: str) -> web.Response:
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason}
    return web.json_response({**body, "message": message}, status=code)


class ApiServer:
    """Objects by path; GET (list, read, idle watch), POST (create), PUT (replace), as the API does."""

    def __init__(self) -> None:
        self.objects: dict[str, dict] = {}
        self.requests: list[tuple[str, str]] = []
        self.versions = itertools.count(100)
        #: GETs of these paths answer 404 until this many POSTs to their collection were seen
        self.hidden_until_creates: dict[str, int] = {}
        self.closing = False

    def put_object(self, path: str, obj: dict) -> dict:
        obj = json.loads(json.dumps(obj))
        obj.setdefault("metadata", {})["resourceVersion"] = str(next(self.versions))
        self.objects[path] = obj
        return obj

    def creates(self, collection: str) -> int:
        return sum(1 for method, path in self.requests if method == "POST" and path == collection)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/")
        self.requests.append((request.method, path))
        if request.method == "POST":
            body = await request.json()
            target = f"{path}/{body['metadata']['name']}"
            if target in self.objects:
                return status(409, "AlreadyExists", f"{target} already exists")
            return web.json_response(self.put_object(target, body), status=201)
        if request.method == "PUT":
            body = await request.json()
            current = self.objects.get(path)
            if current is None:
                return status(404, "NotFound", f"{path} not found")
            wanted = (body.get("metadata") or {}).get("resourceVersion")
            if wanted != current["metadata"]["resourceVersion"]:
                return status(409, "Conflict", "the object has been modified; apply your changes again")
            return web.json_response(self.put_object(path, body))
        if path in LISTED and request.query.get("watch") in ("true", "1"):
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            await response.prepare(request)
            while not self.closing:  # nothing changes here: an idle watch
                await asyncio.sleep(0.2)
            return response
        if path in LISTED:
            items = [o for p, o in self.objects.items() if p.rsplit("/", 1)[0] == path]
            return web.json_response({"metadata": {"resourceVersion": "1"}, "items": items})
        hidden = self.hidden_until_creates.get(path)
        if path not in self.objects or (hidden and self.creates(path.rsplit("/", 1)[0]) < hidden):
            return status(404, "NotFound", f"{path} not found")
        return web.json_response(self.objects[path])


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[ApiServer, Path]]:
    fake = ApiServer()
    curl = {
        "kind": "Namespace",
        "metadata": {"name": "curl", "labels": {"openservicemesh.io/monitored-by": "osm"}},
    }
    fake.put_object("/api/v1/namespaces/curl", curl)
    fake.put_object(WEBHOOK_CONFIG, mutating_webhook(InstallOptions()))
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "fake", "cluster": {"server": f"http://127.0.0.1:{server.port}"}}],
                "users": [{"name": "u", "user": {"token": "test"}}],
                "contexts": [{"name": "c", "context": {"cluster": "fake", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    yield fake, kubeconfig
    fake.closing = True
    await server.close()


class Replica:
    def __init__(self, kubeconfig: Path, log: Path):
        self.port, self.webhook_port = free_port(), free_port()
        self.kubeconfig, self.log = kubeconfig, log
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        env = {**python_env(), "KUBECONFIG": str(self.kubeconfig)}
        env.pop("KUBERNETES_SERVICE_HOST", None)
        argv = [sys.executable, "-m", "mesh.controller", "run", "--source", "kubernetes",
                "--mesh-name", "osm", "--mesh-namespace", NAMESPACE, "--host", "127.0.0.1",
                "--port", str(self.port), "--webhook-port", str(self.webhook_port)]  # fmt: skip
        with open(self.log, "wb") as out:
            self.process = await asyncio.create_subprocess_exec(
                *argv, stdout=out, stderr=asyncio.subprocess.STDOUT, env=env
            )

    async def ready(self, session: aiohttp.ClientSession) -> bool:
        assert self.process and self.process.returncode is None, self.log.read_text()
        try:
            async with session.get(f"http://127.0.0.1:{self.port}/readyz") as response:
                return response.status == 200
        except aiohttp.ClientError:
            return False

    async def stop(self) -> None:
        if self.process and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


def ca_bundle(fake: ApiServer) -> bytes:
    (bundle,) = {w["clientConfig"].get("caBundle", "") for w in fake.objects[WEBHOOK_CONFIG]["webhooks"]}
    assert bundle, "caBundle not written"
    return base64.b64decode(bundle)


async def admission_through_verified_tls(port: int, ca_pem: bytes) -> dict:
    context = ssl.create_default_context(cadata=ca_pem.decode())
    pod = {"metadata": {"name": "curl", "namespace": "curl"}, "spec": {"containers": [{"name": "c"}]}}
    review = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {"uid": "u1", "kind": {"kind": "Pod"}, "namespace": "curl", "object": pod},
    }
    async with aiohttp.ClientSession() as session:
        url = f"https://127.0.0.1:{port}/mutate-pod-creation"
        async with session.post(url, json=review, ssl=context, server_hostname=WEBHOOK_NAME) as response:
            assert response.status == 200
            return (await response.json())["response"]


async def wait_ready(replicas: list[Replica], timeout: float = 60) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        async with asyncio.timeout(timeout):
            while not all([await r.ready(session) for r in replicas]):
                await asyncio.sleep(0.2)


async def test_two_replicas_race_for_the_secret_and_serve_what_the_ca_bundle_verifies(api, tmp_path):
    fake, kubeconfig = api
    fake.hidden_until_creates[f"{SECRETS}/{SECRET}"] = 2  # each replica finds no Secret and creates one
    replicas = [Replica(kubeconfig, tmp_path / f"replica-{i}.log") for i in (1, 2)]
    try:
        await asyncio.gather(*(r.start() for r in replicas))
        await wait_ready(replicas)
        assert fake.creates(SECRETS) == 2  # both created, one got 409 AlreadyExists and adopted the other's
        logs = [r.log.read_text() for r in replicas]
        assert sum("webhook certificates stored in Secret" in text for text in logs) == 1, logs
        assert sum("webhook certificates adopted from Secret" in text for text in logs) == 1, logs
        ca_pem = ca_bundle(fake)
        stored = fake.objects[f"{SECRETS}/{SECRET}"]
        assert stored["type"] == "kubernetes.io/tls"
        assert Certificates.from_secret_data(stored["data"], NAMESPACE).ca_pem == ca_pem
        for replica in replicas:
            response = await admission_through_verified_tls(replica.webhook_port, ca_pem)
            assert response["allowed"] is True and response["patchType"] == "JSONPatch"
        other_ca = generate_certificates(NAMESPACE).ca_pem
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await admission_through_verified_tls(replicas[0].webhook_port, other_ca)
    finally:
        await asyncio.gather(*(r.stop() for r in replicas))


async def test_an_unusable_secret_is_replaced_under_its_resource_version(api, tmp_path):
    fake, kubeconfig = api
    garbage = {"tls.crt": base64.b64encode(b"garbage").decode()}
    secret = {"kind": "Secret", "type": "kubernetes.io/tls", "metadata": {"name": SECRET}, "data": garbage}
    version = fake.put_object(f"{SECRETS}/{SECRET}", secret)["metadata"]["resourceVersion"]
    replica = Replica(kubeconfig, tmp_path / "replica.log")
    try:
        await replica.start()
        await wait_ready([replica])
        assert ("PUT", f"{SECRETS}/{SECRET}") in fake.requests
        assert "is unusable (no ca.crt, tls.key): replacing it" in replica.log.read_text()
        stored = fake.objects[f"{SECRETS}/{SECRET}"]
        assert stored["metadata"]["resourceVersion"] != version
        ca_pem = ca_bundle(fake)
        assert Certificates.from_secret_data(stored["data"], NAMESPACE).ca_pem == ca_pem
        response = await admission_through_verified_tls(replica.webhook_port, ca_pem)
        assert response["allowed"] is True and response["patchType"] == "JSONPatch"
    finally:
        await replica.stop()


def test_certificates_from_a_secret_are_checked():
    certs = generate_certificates(NAMESPACE)
    data = certs.secret_data()
    assert Certificates.from_secret_data(data, NAMESPACE) == certs
    other = generate_certificates(NAMESPACE)
    cases = {
        "no tls.key": {**data, "tls.key": ""},
        "unreadable or inconsistent": {**data, "ca.crt": other.secret_data()["ca.crt"]},
        "unreadable or inconsistent ": {**data, "tls.key": other.secret_data()["tls.key"]},
        "not for osm-controller.elsewhere.svc": data,
    }
    for reason, broken in cases.items():
        namespace = "elsewhere" if "elsewhere" in reason else NAMESPACE
        with pytest.raises(ValueError, match=reason.strip()):
            Certificates.from_secret_data(broken, namespace)
    expired = generate_certificates(NAMESPACE, days=0).secret_data()
    with pytest.raises(ValueError, match="expired"):
        Certificates.from_secret_data(expired, NAMESPACE)
