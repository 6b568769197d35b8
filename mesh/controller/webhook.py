"""The mutating admission webhook: HTTPS (port 9443) ``POST /mutate-pod-creation``.

It serves a certificate for ``osm-controller.<mesh-namespace>.svc`` (plus its short and
fully-qualified names, ``localhost`` and ``127.0.0.1``) signed by a CA made with
``cryptography``. With the Kubernetes source the CA and serving certificate live in the Secret
``osm-webhook-<mesh-name>-cert`` of the mesh namespace, so every replica serves a certificate the
one ``caBundle`` verifies: the first replica creates it, the others adopt it (a create that loses
the race gets 409 and reads the winner's), an unusable one (unreadable, expired, for another
namespace) is replaced under the resourceVersion it was read at. Each replica then writes the CA
into ``caBundle`` of every webhook in the MutatingWebhookConfiguration ``osm-webhook-<mesh-name>``.
Both steps are retried with tenacity (API not reachable yet, configuration not created yet).
Without the Kubernetes source (manifest directory) the certificates are made in memory.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import ipaddress
import logging
import ssl
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from mesh.api.proxyconfig import Exclusions
from mesh.api.resources import Namespace
from mesh.manifests.install import PART_OF, webhook_config_name, webhook_secret_name

from .injector import InjectionSettings, admission_review
from .server import ConfigStore

log = logging.getLogger("mesh.controller.webhook")
WEBHOOK_PATH = "/mutate-pod-creation"
SERVICE_NAME = "osm-controller"
CERT_DAYS = 3650  # kept in the Secret across restarts; an expired one is replaced
CA_KEY, CERT_KEY, KEY_KEY = "ca.crt", "tls.crt", "tls.key"

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

    def secret_data(self) -> dict[str, str]:
        return {
            name: base64.b64encode(pem).decode()
            for name, pem in ((CA_KEY, self.ca_pem), (CERT_KEY, self.cert_pem), (KEY_KEY, self.key_pem))
        }

    @classmethod
    def from_secret_data(cls, data: Mapping[str, str] | None, mesh_namespace: str) -> Certificates:
        """The certificates a Secret holds; ValueError saying why they cannot serve this namespace."""
        data = data or {}
        missing = [k for k in (CA_KEY, CERT_KEY, KEY_KEY) if not data.get(k)]
        if missing:
            raise ValueError(f"no {', '.join(missing)}")
        try:
            certs = cls(*(base64.b64decode(data[k], validate=True) for k in (CA_KEY, CERT_KEY, KEY_KEY)))
            ca = x509.load_pem_x509_certificate(certs.ca_pem)
            cert = x509.load_pem_x509_certificate(certs.cert_pem)
            cert.verify_directly_issued_by(ca)
            certs.server_context()  # the key belongs to the certificate
        except (ValueError, TypeError, ssl.SSLError, InvalidSignature) as exc:
            reason = str(exc) or type(exc).__name__
            raise ValueError(f"unreadable or inconsistent certificates ({reason})") from None
        now = datetime.datetime.now(datetime.UTC)
        if min(ca.not_valid_after_utc, cert.not_valid_after_utc) <= now:
            raise ValueError("the certificates have expired")
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        wanted = service_names(mesh_namespace)[0]
        if wanted not in names.get_values_for_type(x509.DNSName):
            raise ValueError(f"the serving certificate is not for {wanted}")
        return certs


def service_names(mesh_namespace: str, service: str = SERVICE_NAME) -> list[str]:
    return [
        f"{service}.{mesh_namespace}.svc",
        service,
        f"{service}.{mesh_namespace}",
        f"{service}.{mesh_namespace}.svc.cluster.local",
        "localhost",
    ]


def generate_certificates(mesh_namespace: str, days: int = CERT_DAYS) -> Certificates:
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


class SecretRace(Exception):
    """Another replica created or replaced the Secret first: read it again and adopt it."""


def _retrying(what: str, timeout: float) -> AsyncRetrying:
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    return AsyncRetrying(
        wait=wait_exponential(multiplier=0.5, max=15),
        stop=stop_after_delay(timeout),
        retry=retry_if_exception_type((ApiException, OSError, HTTPError, SecretRace)),
        before_sleep=lambda rs: log.warning(
            "cannot %s yet (attempt %d): %s", what, rs.attempt_number, _reason(rs.outcome.exception())
        ),
        reraise=True,
    )


def _reason(exc: BaseException | None) -> str:
    status = getattr(exc, "status", None)
    return f"{status} {getattr(exc, 'reason', '')}".strip() if status else str(exc)


async def load_certificates(mesh_name: str, mesh_namespace: str, timeout: float = 300.0) -> Certificates:
    """The webhook certificates of Secret ``osm-webhook-<mesh_name>-cert``, created when absent."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    name = webhook_secret_name(mesh_name)
    api = client.CoreV1Api()

    def load() -> Certificates:
        try:
            secret = api.read_namespaced_secret(name, mesh_namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            secret = None
        if secret is not None:
            try:
                certs = Certificates.from_secret_data(secret.data, mesh_namespace)
            except ValueError as exc:
                log.warning("Secret %s/%s is unusable (%s): replacing it", mesh_namespace, name, exc)
            else:
                log.info("webhook certificates adopted from Secret %s/%s", mesh_namespace, name)
                return certs
        certs = generate_certificates(mesh_namespace)
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": secret.type if secret is not None else "kubernetes.io/tls",  # a type is immutable
            "metadata": {
                "name": name,
                "namespace": mesh_namespace,
                "labels": {**PART_OF, "app.kubernetes.io/instance": mesh_name},
            },
            "data": certs.secret_data(),
        }
        try:
            if secret is None:
                api.create_namespaced_secret(mesh_namespace, body)
            else:  # only if nobody changed it since we read it
                body["metadata"]["resourceVersion"] = secret.metadata.resource_version
                api.replace_namespaced_secret(name, mesh_namespace, body)
        except ApiException as exc:
            if exc.status == 409:  # AlreadyExists / Conflict: another replica was first
                raise SecretRace(f"Secret {mesh_namespace}/{name} written by another replica") from None
            raise
        log.info("webhook certificates stored in Secret %s/%s", mesh_namespace, name)
        return certs

    async for attempt in _retrying(f"read or create Secret {mesh_namespace}/{name}", timeout):
        with attempt:
            return await asyncio.to_thread(load)
    raise AssertionError("unreachable")  # pragma: no cover - AsyncRetrying returns or raises


async def patch_ca_bundle(mesh_name: str, ca_pem: bytes, timeout: float = 300.0) -> None:
    """Write ``ca_pem`` into MutatingWebhookConfiguration ``osm-webhook-<mesh_name>``."""
    from kubernetes import client

    name = webhook_config_name(mesh_name)
    api = client.AdmissionregistrationV1Api()
    bundle = base64.b64encode(ca_pem).decode()

    def patch() -> None:
        current = api.read_mutating_webhook_configuration(name)
        webhooks = current.webhooks or ()
        if webhooks and all(w.client_config.ca_bundle == bundle for w in webhooks):
            return  # another replica with the same Secret wrote it already
        for webhook in webhooks:
            webhook.client_config.ca_bundle = bundle
        api.replace_mutating_webhook_configuration(name, current)  # 409 on a concurrent edit: retried

    async for attempt in _retrying(f"patch caBundle of {name}", timeout):
        with attempt:
            await asyncio.to_thread(patch)
    log.info("caBundle written to MutatingWebhookConfiguration %s", name)
