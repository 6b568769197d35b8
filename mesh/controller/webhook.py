"""The mutating admission webhook: HTTPS (port 9443) ``POST /mutate-pod-creation``.

At start the controller makes a CA and a serving certificate for
``osm-controller.<mesh-namespace>.svc`` (plus its short and fully-qualified names, ``localhost``
and ``127.0.0.1``) with ``cryptography``. With the Kubernetes source it then writes the CA into
``caBundle`` of every webhook in the MutatingWebhookConfiguration ``osm-webhook-<mesh-name>``
(retried with tenacity until the configuration exists).
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import ipaddress
import logging
import ssl
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from mesh.api.proxyconfig import Exclusions
from mesh.api.resources import Namespace

from .injector import InjectionSettings, admission_review
from .server import ConfigStore

log = logging.getLogger("mesh.controller.webhook")
WEBHOOK_PATH = "/mutate-pod-creation"
SERVICE_NAME = "osm-controller"

NamespaceLookup = Callable[[str], Awaitable[Namespace | None]]


@dataclass(frozen=True)
class Certificates:
    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        with tempfile.TemporaryDirectory() as tmp:  # load_cert_chain only reads files
            cert, key = Path(tmp, "tls.crt"), Path(tmp, "tls.key")
            cert.write_bytes(self.cert_pem + self.ca_pem)
            key.touch(mode=0o600)
            key.write_bytes(self.key_pem)
            context.load_cert_chain(cert, key)
        return context


def service_names(mesh_namespace: str, service: str = SERVICE_NAME) -> list[str]:
    return [
        f"{service}.{mesh_namespace}.svc",
        service,
        f"{service}.{mesh_namespace}",
        f"{service}.{mesh_namespace}.svc.cluster.local",
        "localhost",
    ]


def generate_certificates(mesh_namespace: str, days: int = 365) -> Certificates:
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, f"egress-mesh webhook CA ({mesh_namespace})")]
    )
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names = service_names(mesh_namespace)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return Certificates(
        ca_pem=ca.public_bytes(serialization.Encoding.PEM),
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )


def make_webhook_app(
    store: ConfigStore, settings: InjectionSettings, lookup: NamespaceLookup | None = None
) -> web.Application:
    """``lookup`` fetches a Namespace the store does not know yet (e.g. just created)."""
    app = web.Application()

    async def mutate(request: web.Request) -> web.Response:
        try:
            review: dict[str, Any] = await request.json()
        except ValueError:
            raise web.HTTPBadRequest(text="body must be an AdmissionReview JSON document\n") from None
        if not isinstance(review, dict) or review.get("kind") != "AdmissionReview":
            raise web.HTTPBadRequest(text="body must be an AdmissionReview JSON document\n")
        req = review.get("request") or {}
        ns_name = req.get("namespace") or ((req.get("object") or {}).get("metadata") or {}).get(
            "namespace", ""
        )
        snapshot = store.snapshot
        namespace = snapshot.namespace(ns_name) if snapshot else None
        if namespace is None and lookup is not None:
            namespace = await lookup(ns_name)
        effective = settings
        if snapshot:
            mc = snapshot.mesh_config
            effective = replace(
                settings,
                exclusions=Exclusions(
                    ip_ranges=tuple(
                        dict.fromkeys([*settings.exclusions.ip_ranges, *mc.outbound_ip_range_exclusions])
                    ),
                    ports=tuple(dict.fromkeys([*settings.exclusions.ports, *mc.outbound_port_exclusions])),
                    include_ip_ranges=tuple(
                        dict.fromkeys(
                            [*settings.exclusions.include_ip_ranges, *mc.outbound_ip_range_inclusions]
                        )
                    ),
                ),
            )
        answer = admission_review(review, effective, namespace)
        response = answer["response"]
        log.info(
            "admission %s/%s: %s",
            ns_name,
            ((req.get("object") or {}).get("metadata") or {}).get("name")
            or ((req.get("object") or {}).get("metadata") or {}).get("generateName", "?"),
            "injected" if "patch" in response else ("refused" if not response["allowed"] else "unchanged"),
        )
        return web.json_response(answer)

    app.router.add_post(WEBHOOK_PATH, mutate)
    app.router.add_get("/healthz", _ok)
    return app


async def _ok(_: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def patch_ca_bundle(mesh_name: str, ca_pem: bytes, timeout: float = 300.0) -> None:
    """Write ``ca_pem`` into MutatingWebhookConfiguration ``osm-webhook-<mesh_name>``."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    name = f"osm-webhook-{mesh_name}"
    api = client.AdmissionregistrationV1Api()
    bundle = base64.b64encode(ca_pem).decode()

    def patch() -> None:
        current = api.read_mutating_webhook_configuration(name)
        for webhook in current.webhooks or ():
            webhook.client_config.ca_bundle = bundle
        api.replace_mutating_webhook_configuration(name, current)  # 409 on a concurrent edit: retried

    async for attempt in AsyncRetrying(
        wait=wait_exponential(multiplier=0.5, max=15),
        stop=stop_after_delay(timeout),
        retry=retry_if_exception_type((ApiException, OSError)),
        before_sleep=lambda rs: log.warning(
            "cannot patch caBundle of %s yet (attempt %d): %s",
            name,
            rs.attempt_number,
            rs.outcome.exception(),
        ),
        reraise=True,
    ):
        with attempt:
            await asyncio.to_thread(patch)
    log.info("caBundle written to MutatingWebhookConfiguration %s", name)
