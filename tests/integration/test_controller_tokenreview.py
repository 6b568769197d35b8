"""Kubernetes credentials: TokenReview through the official client against a stand-in API server.

The stand-in answers ``POST /apis/authentication.k8s.io/v1/tokenreviews`` as the API server does
for projected ServiceAccount tokens, so the client call itself (path, body, audiences) is tested.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from mesh.api.credentials import AUDIENCE, CredentialError
from mesh.api.proxyconfig import Identity, ProxyConfig, config_url
from mesh.controller.auth import Authenticator, AuthSetupError, TokenReviewVerifier, VerifierUnavailable
from mesh.controller.server import ConfigStore, make_app
from mesh.controller.sources import SourceState
from tests.article import httpbin_80, meshconfig

REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"
CURL = Identity("curl", "curl")


class FakeApiServer:
    """Knows a few tokens: token -> (username, audiences)."""

    def __init__(self) -> None:
        self.tokens = {
            "curl-token": ("system:serviceaccount:curl:curl", [AUDIENCE]),
            "gateway-token": ("system:serviceaccount:egress-gateway:global-egress-gateway", [AUDIENCE]),
            "api-audience-token": ("system:serviceaccount:curl:curl", ["https://kubernetes.default.svc"]),
            "admin-token": ("system:admin", [AUDIENCE]),
        }
        self.reviews: list[dict[str, Any]] = []

    async def review(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.reviews.append(body)
        spec = body["spec"]
        user, audiences = self.tokens.get(spec["token"], (None, []))
        wanted = spec.get("audiences") or []
        if user is None or (wanted and not set(wanted) & set(audiences)):
            status: dict[str, Any] = {
                "authenticated": False,
                "error": "[invalid bearer token, token lookup failed]",
            }
        else:
            # as the API server does: the audiences the token is valid for among those asked
            status = {"authenticated": True, "user": {"username": user}, "audiences": wanted or audiences}
        return web.json_response({**body, "status": status}, status=201)


@pytest.fixture
async def api(tmp_path: Path, monkeypatch):
    fake = FakeApiServer()
    app = web.Application()
    app.router.add_post(REVIEWS, fake.review)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "fake", "cluster": {"server": f"http://127.0.0.1:{server.port}"}}],
                "users": [{"name": "controller", "user": {"token": "controller-sa-token"}}],
                "contexts": [{"name": "c", "context": {"cluster": "fake", "user": "controller"}}],
                "current-context": "c",
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    yield fake, server
    await server.close()


async def test_a_projected_token_is_reviewed_with_our_audience_and_remembered(api):
    fake, _ = api
    verifier = TokenReviewVerifier()
    assert await verifier.identity("curl-token") == CURL
    assert fake.reviews == [
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": "curl-token", "audiences": [AUDIENCE]},
        }
    ]
    for _ in range(5):  # long polls: no API call each
        assert await verifier.identity("curl-token") == CURL
    assert len(fake.reviews) == 1


async def test_a_positive_answer_expires(api):
    fake, _ = api
    now = [1000.0]
    verifier = TokenReviewVerifier(ttl=30, clock=lambda: now[0])
    await verifier.identity("curl-token")
    now[0] += 31
    await verifier.identity("curl-token")
    assert len(fake.reviews) == 2


@pytest.mark.parametrize(
    "token, reason",
    [
        (
            "stolen-or-expired",
            "token rejected by the API server: [invalid bearer token, token lookup failed]",
        ),
        ("api-audience-token", "token rejected by the API server"),  # a default SA token is not ours
        ("admin-token", "'system:admin' is not a service account"),
    ],
)
async def test_refused_tokens_are_never_remembered(api, token: str, reason: str):
    fake, _ = api
    verifier = TokenReviewVerifier()
    for attempt in range(1, 3):
        with pytest.raises(CredentialError) as err:
            await verifier.identity(token)
        assert reason in str(err.value)
        assert len(fake.reviews) == attempt


async def test_an_unreachable_api_server_is_503_not_401(api):
    _, server = api
    verifier = TokenReviewVerifier()
    await server.close()
    with pytest.raises(VerifierUnavailable, match="TokenReview failed"):
        await verifier.identity("curl-token")


async def test_the_config_server_with_tokenreview(api):
    fake, api_server = api
    store = ConfigStore()
    await store.publish(SourceState((meshconfig(False), httpbin_80())))
    server = TestServer(make_app(store, Authenticator(TokenReviewVerifier())), host="127.0.0.1")
    await server.start_server()
    base = f"http://127.0.0.1:{server.port}"
    try:
        async with aiohttp.ClientSession() as session:

            async def get(identity: Identity, token: str) -> tuple[int, str]:
                headers = {"Authorization": f"Bearer {token}"}
                async with session.get(config_url(base, identity), headers=headers) as resp:
                    return resp.status, await resp.text()

            status, body = await get(CURL, "curl-token")
            assert status == 200 and ProxyConfig.from_json(body).identity == CURL
            gateway = Identity("egress-gateway", "global-egress-gateway")
            assert await get(CURL, "gateway-token") == (
                403,
                "the credential is for egress-gateway/global-egress-gateway, not curl/curl\n",
            )
            assert (await get(CURL, "nope"))[0] == 401
            assert (await get(gateway, "gateway-token"))[0] == 200
            await api_server.close()
            status, body = await get(CURL, "never-seen-before")
            assert status == 503 and body.startswith("cannot check credentials now: TokenReview failed")
            assert (await get(CURL, "curl-token"))[0] == 200  # remembered meanwhile
    finally:
        await server.close()


def test_no_cluster_credentials_is_a_clear_error(tmp_path: Path, monkeypatch):
    (tmp_path / "kubeconfig").write_text("clusters: [\n")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kubeconfig"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(AuthSetupError, match="^no Kubernetes credentials for TokenReview: "):
        TokenReviewVerifier()
