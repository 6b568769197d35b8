"""Proxy credentials: how a sidecar proves its identity to the config server (a versioned contract).

- Every request for ``/v1/proxyconfig/{ns}/{sa}`` carries ``Authorization: Bearer <token>``.
- The token is a JWT whose subject is the Kubernetes user name of a service account,
  ``system:serviceaccount:<namespace>:<name>``, and whose audience includes ``AUDIENCE``. The
  identity in it is the only one its bearer is served.
- On Kubernetes it is a projected ServiceAccount token (the kubelet signs and rotates it; the
  injector mounts it at ``TOKEN_PATH`` with ``expirationSeconds: TOKEN_LIFETIME`` and audience
  ``AUDIENCE``); the controller has the API server check it (TokenReview).
- On the Docker backend the backend mints a token with the claims Kubernetes puts into projected
  tokens (``iss``, ``sub``, ``aud``, ``iat``, ``nbf``, ``exp``, ``kubernetes.io``: namespace,
  service account, pod) but issuer ``DOCKER_ISSUER``, signed with Ed25519 (JWS ``alg: EdDSA``),
  and mounts it at the same path; the controller holds the public key and checks signature,
  issuer, audience and times with ``verify``.
- The sidecar reads the file again before every request, so a rotated token is used at once.
"""

from __future__ import annotations

import time
import uuid

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from mesh.api.proxyconfig import Identity

CREDENTIALS_VERSION = "v1"
AUDIENCE = "egress-mesh-controller"
TOKEN_PATH = "/var/run/secrets/egress-mesh/token"
TOKEN_LIFETIME = 600  # seconds; the shortest projected-token lifetime Kubernetes allows
DOCKER_ISSUER = "egress-mesh-docker-backend"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
MAX_TOKEN_BYTES = 8192
CLOCK_SKEW = 30  # seconds of leeway on iat/nbf/exp
ALGORITHM = "EdDSA"


class CredentialError(ValueError):
    """A token that does not prove an identity; the message says why (safe to show the caller)."""


def user_name(identity: Identity) -> str:
    """``system:serviceaccount:NS:SA``, the user name Kubernetes gives a service account."""
    return f"{SERVICE_ACCOUNT_PREFIX}{identity.namespace}:{identity.service_account}"


def identity_of(name: str) -> Identity:
    """The service account behind a Kubernetes user name; CredentialError for any other user."""
    namespace, _, account = name.removeprefix(SERVICE_ACCOUNT_PREFIX).partition(":")
    if not name.startswith(SERVICE_ACCOUNT_PREFIX) or not namespace or not account or ":" in account:
        raise CredentialError(f"{name!r} is not a service account ({SERVICE_ACCOUNT_PREFIX}NAMESPACE:NAME)")
    return Identity(namespace, account)


def generate_signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def private_key_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def public_key_pem(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_private_key(pem: bytes) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise CredentialError(f"not a PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise CredentialError(f"the signing key must be Ed25519, not {type(key).__name__}")
    return key


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise CredentialError(f"not a PEM public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise CredentialError(f"the verification key must be Ed25519, not {type(key).__name__}")
    return key


def mint(
    key: Ed25519PrivateKey,
    identity: Identity,
    pod: str = "",
    lifetime: int = TOKEN_LIFETIME,
    now: float | None = None,
) -> str:
    """A signed token for ``identity`` (what the Docker backend mounts into a pod's sidecar)."""
    issued = int(time.time() if now is None else now)
    claims = {
        "iss": DOCKER_ISSUER,
        "sub": user_name(identity),
        "aud": [AUDIENCE],
        "iat": issued,
        "nbf": issued,
        "exp": issued + lifetime,
        "jti": str(uuid.uuid4()),
        "kubernetes.io": {
            "namespace": identity.namespace,
            "serviceaccount": {"name": identity.service_account},
            **({"pod": {"name": pod}} if pod else {}),
        },
    }
    return jwt.encode(claims, key, algorithm=ALGORITHM)


def verify(token: str, key: Ed25519PublicKey) -> Identity:
    """The identity a minted token proves; CredentialError saying why it proves none."""
    if len(token) > MAX_TOKEN_BYTES:
        raise CredentialError(f"token longer than {MAX_TOKEN_BYTES} bytes")
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=DOCKER_ISSUER,
            leeway=CLOCK_SKEW,
            options={"require": ["iss", "sub", "aud", "iat", "exp"]},
        )
    except jwt.InvalidTokenError as exc:
        raise CredentialError(f"invalid token: {exc}") from None
    return identity_of(str(claims["sub"]))
