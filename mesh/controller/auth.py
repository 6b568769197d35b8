"""Who is asking: the config server's authentication of sidecars and of admin callers.

One code path for both backends: ``Authenticator.caller(request)`` takes the bearer token (the
contract is ``mesh.api.credentials``) and hands it to a ``Verifier`` that answers with the
service account it proves:

- ``TokenReviewVerifier`` (Kubernetes): the API server checks the projected ServiceAccount token
  (TokenReview, ``authentication.k8s.io/v1``, audience ``credentials.AUDIENCE``); positive
  answers are remembered for ``ttl`` seconds in a bounded LRU so long polls do not cost an API
  call each.
- ``KeyVerifier`` (Docker backend): the token's Ed25519 signature, issuer, audience and times.

No or bad credential: ``Denied(401)``; the verifier cannot answer (API server down): ``Denied(503)``.
Denials are logged through ``RateLimitedLog`` and nothing about them is cached.
``may_see_details`` decides who gets per-identity detail from ``/v1/status``: callers on
loopback (``kubectl port-forward``, ``docker exec``) and holders of the admin token.

``build_authenticator`` is what ``mesh-controller run --auth ...`` selects.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import os
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from mesh.api import credentials
from mesh.api.credentials import CredentialError
from mesh.api.proxyconfig import Identity

from .offload import off_loop

log = logging.getLogger("mesh.controller.auth")


class Denied(Exception):
    """An HTTP status (401, 403 or 503) and the reason, told to the caller and logged."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class AuthSetupError(RuntimeError):
    """The verifier cannot be set up (no cluster credentials, unreadable key); the message says why."""


class VerifierUnavailable(RuntimeError):
    """The verifier cannot check tokens right now (not the caller's fault)."""


class Verifier(ABC):
    description: str = ""

    @abstractmethod
    async def identity(self, token: str) -> Identity:
        """The service account ``token`` proves; CredentialError or VerifierUnavailable otherwise."""


class KeyVerifier(Verifier):
    def __init__(self, public_key: Ed25519PublicKey) -> None:
        self.public_key = public_key
        self.description = "tokens signed by the Docker backend's key"

    @classmethod
    def from_pem(cls, pem: bytes) -> KeyVerifier:
        return cls(credentials.load_public_key(pem))

    async def identity(self, token: str) -> Identity:
        return credentials.verify(token, self.public_key)  # microseconds: no thread needed


Review = Callable[[str], dict[str, Any]]  # token -> TokenReview status (blocking)


class TokenReviewVerifier(Verifier):
    def __init__(
        self,
        review: Review | None = None,
        ttl: float = 30.0,
        cache_size: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._review = review or kubernetes_token_review()
        self.ttl = ttl
        self.cache_size = cache_size
        self._clock = clock
        self._cache: OrderedDict[bytes, tuple[float, Identity]] = OrderedDict()
        self.description = f"Kubernetes TokenReview (audience {credentials.AUDIENCE})"

    async def identity(self, token: str) -> Identity:
        if len(token) > credentials.MAX_TOKEN_BYTES:
            raise CredentialError(f"token longer than {credentials.MAX_TOKEN_BYTES} bytes")
        digest = hashlib.sha256(token.encode()).digest()
        now = self._clock()
        cached = self._cache.get(digest)
        if cached and cached[0] > now:
            self._cache.move_to_end(digest)
            return cached[1]
        status = await off_loop(self._review, token)
        if not status.get("authenticated"):
            raise CredentialError(
                f"token rejected by the API server: {status.get('error') or 'not authenticated'}"
            )
        audiences = status.get("audiences")
        if audiences is not None and credentials.AUDIENCE not in audiences:
            raise CredentialError(f"token is not meant for audience {credentials.AUDIENCE}")
        identity = credentials.identity_of(str((status.get("user") or {}).get("username", "")))
        self._cache[digest] = (now + self.ttl, identity)
        self._cache.move_to_end(digest)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return identity


def kubernetes_token_review(timeout: float = 5.0) -> Review:
    """A TokenReview call through the official client (in-cluster credentials, else kubeconfig)."""
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    try:
        config.load_incluster_config()
    except ConfigException:
        try:
            config.load_kube_config(config_file=os.environ.get("KUBECONFIG") or None)
        except Exception as exc:  # noqa: BLE001 - yaml, OS and config errors alike
            raise AuthSetupError(
                f"no Kubernetes credentials for TokenReview: {' '.join(str(exc).split())}"
            ) from None
    api = client.AuthenticationV1Api()

    def review(token: str) -> dict[str, Any]:
        body = client.V1TokenReview(
            api_version="authentication.k8s.io/v1",
            kind="TokenReview",
            spec=client.V1TokenReviewSpec(token=token, audiences=[credentials.AUDIENCE]),
        )
        try:
            result = api.create_token_review(body, _request_timeout=timeout)
        except Exception as exc:  # noqa: BLE001 - any API failure means "cannot tell now"
            detail = getattr(exc, "reason", None) or exc
            raise VerifierUnavailable(f"TokenReview failed: {detail}") from None
        return client.ApiClient().sanitize_for_serialization(result.status) or {}

    return review


AUTH_METHODS = ("tokenreview", "key", "none")
MAX_KEY_FILE_BYTES = 64 * 1024


def build_authenticator(
    method: str, public_key_file: str | None = None, admin_token_file: str | None = None
) -> Authenticator | None:
    """The authenticator ``--auth METHOD`` asks for (None for ``none``); AuthSetupError naming the
    option and the file when it cannot be set up."""
    if method not in AUTH_METHODS:
        raise AuthSetupError(f"--auth must be one of {', '.join(AUTH_METHODS)}, got {method!r}")
    if public_key_file and method != "key":
        raise AuthSetupError(f"--auth-public-key is used only with --auth key (got --auth {method})")
    if method == "none":
        if admin_token_file:
            raise AuthSetupError("--admin-token-file needs an authenticator (--auth tokenreview or key)")
        return None
    verifier: Verifier
    if method == "key":
        if not public_key_file:
            raise AuthSetupError("--auth key needs --auth-public-key FILE (the Docker backend's public key)")
        pem = _read_small_file("--auth-public-key", public_key_file)
        try:
            verifier = KeyVerifier.from_pem(pem)
        except CredentialError as exc:
            raise AuthSetupError(f"--auth-public-key {public_key_file}: {exc}") from None
    else:
        verifier = TokenReviewVerifier()
    admin_token = None
    if admin_token_file:
        text = _read_small_file("--admin-token-file", admin_token_file)
        admin_token = text.decode(errors="replace").strip()
        if not admin_token or not admin_token.isascii() or any(c.isspace() for c in admin_token):
            raise AuthSetupError(
                f"--admin-token-file {admin_token_file}: must hold one token (ASCII, no spaces), "
                f"got {'nothing' if not admin_token else 'something else'}"
            )
    return Authenticator(verifier, admin_token=admin_token)


def _read_small_file(option: str, path: str) -> bytes:
    try:
        with Path(path).open("rb") as file:
            data = file.read(MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        raise AuthSetupError(f"{option} {path}: cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_KEY_FILE_BYTES:
        raise AuthSetupError(f"{option} {path}: larger than {MAX_KEY_FILE_BYTES} bytes")
    return data


class RateLimitedLog:
    """Warnings a caller can provoke: at most ``burst`` lines per ``period`` seconds, the rest counted."""

    def __init__(
        self,
        logger: logging.Logger,
        burst: int = 10,
        period: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.burst = burst
        self.period = period
        self._clock = clock
        self._window_start = float("-inf")
        self._logged = 0
        self._suppressed = 0

    def warning(self, message: str, *args: Any) -> None:
        now = self._clock()
        if now - self._window_start >= self.period:
            if self._suppressed:
                self.logger.warning("%d more such warnings were not logged", self._suppressed)
            self._window_start, self._logged, self._suppressed = now, 0, 0
        if self._logged >= self.burst:
            self._suppressed += 1
            return
        self._logged += 1
        self.logger.warning(message, *args)


class Authenticator:
    def __init__(self, verifier: Verifier, admin_token: str | None = None) -> None:
        self.verifier = verifier
        self._admin_token = admin_token.encode() if admin_token else None

    async def caller(self, authorization: str | None) -> Identity:
        """The identity proven by an ``Authorization`` header value; Denied otherwise."""
        scheme, _, token = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Denied(401, "no credential: send Authorization: Bearer <token>")
        if not token.isascii():
            raise Denied(401, "invalid token: not ASCII")
        try:
            return await self.verifier.identity(token.strip())
        except CredentialError as exc:
            raise Denied(401, str(exc)) from None
        except VerifierUnavailable as exc:
            raise Denied(503, f"cannot check credentials now: {exc}") from None

    def may_see_details(self, peer: str | None, authorization: str | None) -> bool:
        return is_loopback(peer) or self.is_admin(authorization)

    def is_admin(self, authorization: str | None) -> bool:
        scheme, _, token = (authorization or "").strip().partition(" ")
        return bool(
            self._admin_token
            and scheme.lower() == "bearer"
            and hmac.compare_digest(token.strip().encode(), self._admin_token)
        )


def is_loopback(peer: str | None) -> bool:
    try:
        address = ipaddress.ip_address(peer or "")
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or bool(mapped and mapped.is_loopback)
