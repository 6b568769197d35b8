"""The admission webhook over real HTTPS on loopback, verified with the generated CA."""

from __future__ import annotations

import base64
import copy
import json
import ssl

import aiohttp
import jsonpatch
import pytest
from aiohttp import web
from cryptography import x509

from mesh.api.resources import Namespace
from mesh.controller.injector import InjectionSettings
from mesh.controller.server import ConfigStore
from mesh.controller.sources import SourceState
from mesh.controller.webhook import generate_certificates, make_webhook_app

SETTINGS = InjectionSettings(
    proxy_image="egress-mesh/proxy:t1",
    init_image="egress-mesh/proxy:t1",
    controller_url="http://osm-controller.osm-system.svc.cluster.local:15128",
    mesh_name="osm",
)
SERVICE_NAME = "osm-controller.osm-system.svc"


def namespace(name: str, labels=None, annotations=None) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": labels or {}, "annotations": annotations or {}},
    }


MONITORED = {"openservicemesh.io/monitored-by": "osm"}
OBJECTS = (
    namespace("curl", MONITORED),
    namespace("plain"),
    namespace("egress-gateway", MONITORED, {"openservicemesh.io/sidecar-injection": "disabled"}),
    {
        "apiVersion": "config.openservicemesh.io/v1alpha2",
        "kind": "MeshConfig",
        "metadata": {"name": "osm-mesh-config", "namespace": "osm-system"},
        "spec": {"traffic": {"enableEgress": False, "outboundPortExclusionList": [6379]}},
    },
)

# The pod the article's curl Deployment creates.
CURL_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"generateName": "curl-6b8c7b9f4-", "namespace": "curl", "labels": {"app": "curl"}},
    "spec": {
        "serviceAccountName": "curl",
        "containers": [{"name": "curl", "image": "egress-mesh/curl", "command": ["/bin/sleep", "infinity"]}],
    },
}


@pytest.fixture(scope="module")
def certs():
    return generate_certificates("osm-system")


@pytest.fixture
async def webhook(certs):
    store = ConfigStore()
    await store.publish(SourceState(OBJECTS))
    runner = web.AppRunner(make_webhook_app(store, SETTINGS))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=certs.server_context()).start()
    port = runner.addresses[0][1]
    client_tls = ssl.create_default_context(cadata=certs.ca_pem.decode())
    async with aiohttp.ClientSession() as session:

        async def review(pod: dict, ns: str = "curl") -> dict:
            body = {
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "request": {
                    "uid": "3f1c1c1e-0000-4000-8000-000000000001",
                    "kind": {"group": "", "version": "v1", "kind": "Pod"},
                    "resource": {"group": "", "version": "v1", "resource": "pods"},
                    "namespace": ns,
                    "operation": "CREATE",
                    "object": pod,
                },
            }
            async with session.post(
                f"https://127.0.0.1:{port}/mutate-pod-creation",
                json=body,
                ssl=client_tls,
                server_hostname=SERVICE_NAME,
            ) as resp:
                assert resp.status == 200
                return await resp.json()

        yield review, port
    await runner.cleanup()


def patched(pod: dict, answer: dict) -> dict:
    response = answer["response"]
    assert response["allowed"] is True
    if "patch" not in response:
        return pod
    assert response["patchType"] == "JSONPatch"
    return jsonpatch.apply_patch(pod, json.loads(base64.b64decode(response["patch"])))


async def test_curl_pod_in_monitored_namespace_gets_the_sidecar(webhook):
    review, _ = webhook
    answer = await review(copy.deepcopy(CURL_POD))
    assert answer["apiVersion"] == "admission.k8s.io/v1"
    assert answer["response"]["uid"] == "3f1c1c1e-0000-4000-8000-000000000001"
    pod = patched(copy.deepcopy(CURL_POD), answer)

    assert [c["name"] for c in pod["spec"]["containers"]] == ["curl"]
    assert [c["name"] for c in pod["spec"]["initContainers"]] == ["osm-init", "sidecar"]
    init = pod["spec"]["initContainers"][0]
    assert init["securityContext"]["capabilities"]["add"] == ["NET_ADMIN"]
    assert init["command"][:2] == ["mesh-proxy", "init"]
    assert init["command"][init["command"].index("--exclude-ports") + 1] == "6379"  # from MeshConfig
    sidecar = pod["spec"]["initContainers"][1]
    assert sidecar["image"] == "egress-mesh/proxy:t1" and sidecar["restartPolicy"] == "Always"
    assert sidecar["securityContext"]["runAsUser"] == 1500
    assert "--controller" in sidecar["command"]
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in sidecar["env"]}
    assert env["POD_SERVICE_ACCOUNT"] == "spec.serviceAccountName"
    assert env["POD_NAMESPACE"] == "metadata.namespace"
    assert env["POD_IP"] == "status.podIP"
    assert pod["metadata"]["annotations"] == {"openservicemesh.io/sidecar-injected": "true"}


async def test_opted_out_pod_gets_no_patch(webhook):
    review, _ = webhook
    pod = copy.deepcopy(CURL_POD)
    pod["metadata"]["annotations"] = {"openservicemesh.io/sidecar-injection": "disabled"}
    assert "patch" not in (await review(pod))["response"]


@pytest.mark.parametrize("ns", ["plain", "unknown", "egress-gateway"])
async def test_unmonitored_or_opted_out_namespace_gets_no_patch(webhook, ns):
    review, _ = webhook
    pod = copy.deepcopy(CURL_POD)
    pod["metadata"]["namespace"] = ns
    answer = await review(pod, ns)
    assert answer["response"]["allowed"] is True and "patch" not in answer["response"]


async def test_tls_is_refused_by_a_client_trusting_another_ca(webhook):
    _, port = webhook
    other = ssl.create_default_context(cadata=generate_certificates("osm-system").ca_pem.decode())
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await session.post(f"https://127.0.0.1:{port}/mutate-pod-creation", json={}, ssl=other)


async def test_not_an_admission_review_is_a_400(webhook, certs):
    _, port = webhook
    tls = ssl.create_default_context(cadata=certs.ca_pem.decode())
    async with aiohttp.ClientSession() as session:
        async with session.post(f"https://127.0.0.1:{port}/mutate-pod-creation", data=b"{", ssl=tls) as resp:
            assert resp.status == 400


async def test_namespace_unknown_to_the_store_is_looked_up(certs):
    store = ConfigStore()
    await store.publish(SourceState(OBJECTS))
    looked_up: list[str] = []

    async def lookup(name: str):
        looked_up.append(name)
        return Namespace(name, labels=dict(MONITORED))

    app = make_webhook_app(store, SETTINGS, lookup)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=certs.server_context()).start()
    port = runner.addresses[0][1]
    pod = copy.deepcopy(CURL_POD)
    pod["metadata"]["namespace"] = "fresh"
    body = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {"uid": "u", "object": pod},
    }
    tls = ssl.create_default_context(cadata=certs.ca_pem.decode())
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(
                f"https://127.0.0.1:{port}/mutate-pod-creation", json=body, ssl=tls
            ) as resp:
                answer = await resp.json()
    finally:
        await runner.cleanup()
    assert looked_up == ["fresh"]
    assert [c["name"] for c in patched(pod, answer)["spec"]["initContainers"]] == ["osm-init", "sidecar"]


def test_serving_certificate_names_the_controller_service(certs):
    cert = x509.load_pem_x509_certificate(certs.cert_pem)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName
    )
    assert {"osm-controller.osm-system.svc", "osm-controller.osm-system.svc.cluster.local"} <= set(names)
    ca = x509.load_pem_x509_certificate(certs.ca_pem)
    assert cert.issuer == ca.subject
