"""The config server under attack (issue 10, section 1): credentials, identities, bounds.

Over real HTTP on loopback, with Docker-backend credentials (Ed25519 JWTs minted here with the
key the backend would hold) unless a test says otherwise.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer, make_mocked_request

from mesh.api import credentials
from mesh.api.proxyconfig import Identity, Mode, ProxyConfig, config_url
from mesh.controller.auth import Authenticator, KeyVerifier
from mesh.controller.server import ConfigStore, ServerLimits, make_app
from mesh.controller.sources import SourceState
from tests.article import httpbin_80, meshconfig
from tests.integration.helpers import free_port, until

CURL = Identity("curl", "curl")
KEY = credentials.generate_signing_key()
ADMIN_TOKEN = "admin-token-for-tests"


def token(identity: Identity = CURL, key=KEY, **kw: Any) -> str:
    return credentials.mint(key, identity, pod=f"{identity.service_account}-0", **kw)


def hs256_with_the_public_key() -> str:
    """Algorithm confusion: HS256 keyed with the (public) verification key (PyJWT refuses to build it)."""

    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    now = int(time.time())
    claims = {
        "iss": credentials.DOCKER_ISSUER,
        "sub": "system:serviceaccount:curl:curl",
        "aud": [credentials.AUDIENCE],
        "iat": now,
        "exp": now + 60,
    }
    signing_input = b64(b'{"alg":"HS256","typ":"JWT"}') + b"." + b64(json.dumps(claims).encode())
    mac = hmac.new(credentials.public_key_pem(KEY), signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + b64(mac)).decode()


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


@dataclass
class Served:
    store: ConfigStore
    base: str
    session: aiohttp.ClientSession

    async def get(self, path: str, headers: dict[str, str] | None = None, **params: Any):
        async with self.session.get(
            self.base + path, headers=headers or {}, params={k: str(v) for k, v in params.items()}
        ) as resp:
            return resp.status, await resp.text(), resp.headers.copy()

    async def config(self, identity: Identity = CURL, credential: str | None = None, **params: Any):
        headers = bearer(credential) if credential is not None else {}
        return await self.get(config_url("", identity), headers, **params)

    async def metric(self, name: str) -> float:
        _, text, _ = await self.get("/metrics")
        found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
        return float(found.group(1)) if found else 0.0


@pytest.fixture
async def serve() -> AsyncIterator:
    servers: list[TestServer] = []
    sessions: list[aiohttp.ClientSession] = []

    async def start(limits: ServerLimits | None = None, authenticated: bool = True) -> Served:
        store = ConfigStore()
        await store.publish(SourceState((meshconfig(False), httpbin_80())))
        auth = (
            Authenticator(KeyVerifier(KEY.public_key()), admin_token=ADMIN_TOKEN) if authenticated else None
        )
        server = TestServer(make_app(store, auth, limits), host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        sessions.append(session)
        return Served(store, f"http://127.0.0.1:{server.port}", session)

    yield start
    for session in sessions:
        await session.close()
    for server in servers:
        await server.close()


# --- who gets what ------------------------------------------------------------------------------


async def test_without_a_credential_no_config(serve, caplog):
    served = await serve()
    caplog.set_level(logging.WARNING, "mesh.controller.auth")
    status, body, headers = await served.config()
    assert status == 401
    assert body == "no credential: send Authorization: Bearer <token>\n"
    assert headers["WWW-Authenticate"].startswith("Bearer")
    assert headers["Cache-Control"] == "no-store"
    assert "httpbin.org" not in body
    assert any(
        "denied /v1/proxyconfig/curl/curl from 127.0.0.1: 401" in r.getMessage() for r in caplog.records
    )
    assert await served.metric('mesh_controller_errors_total{kind="unauthenticated"}') == 1


async def test_own_identity_is_served_and_another_identity_is_forbidden(serve, caplog):
    served = await serve()
    status, body, _ = await served.config(CURL, token(CURL))
    assert status == 200 and ProxyConfig.from_json(body).rules[0].hosts == ("httpbin.org",)

    caplog.set_level(logging.WARNING, "mesh.controller.auth")
    gateway = Identity("egress-gateway", "global-egress-gateway")  # the issue's attacker: the gateway pod
    status, body, _ = await served.config(CURL, token(gateway))
    assert status == 403
    assert body == "the credential is for egress-gateway/global-egress-gateway, not curl/curl\n"
    assert any(": 403 the credential is for" in r.getMessage() for r in caplog.records)


def signed(**claims: Any) -> str:
    """An EdDSA token with the right key and the given claims over valid defaults."""
    now = int(time.time())
    defaults = {
        "iss": credentials.DOCKER_ISSUER,
        "sub": "system:serviceaccount:curl:curl",
        "aud": [credentials.AUDIENCE],
        "iat": now,
        "exp": now + 60,
    }
    return jwt.encode({**defaults, **claims}, KEY, "EdDSA")


BAD_CREDENTIALS = {  # made when the test runs: a token made at collection could expire meanwhile
    "other-key": (
        lambda: token(key=credentials.generate_signing_key()),
        "invalid token: Signature verification failed",
    ),
    "expired": (lambda: token(now=time.time() - 3600), "invalid token: Signature has expired"),
    "garbage": (lambda: "not-a-jwt", "invalid token: Not enough segments"),
    "alg-none": (
        lambda: jwt.encode({"sub": "system:serviceaccount:curl:curl"}, None, "none"),
        "invalid token: The specified alg value is not allowed",
    ),
    "alg-confusion": (hs256_with_the_public_key, "invalid token: The specified alg value is not allowed"),
    "not-a-service-account": (lambda: signed(sub="system:admin"), "'system:admin' is not a service account"),
    "audience": (lambda: signed(aud=["kubernetes.default.svc"]), "invalid token: Audience doesn't match"),
    "issuer": (lambda: signed(iss="https://kubernetes.default.svc"), "invalid token: Invalid issuer"),
    "not-yet-valid": (
        lambda: signed(nbf=int(time.time()) + 3600),
        "invalid token: The token is not yet valid",
    ),
    "no-expiry": (
        lambda: jwt.encode(
            {
                "iss": credentials.DOCKER_ISSUER,
                "sub": "system:serviceaccount:curl:curl",
                "aud": [credentials.AUDIENCE],
                "iat": int(time.time()),
            },
            KEY,
            "EdDSA",
        ),
        'invalid token: Token is missing the "exp" claim',
    ),  # fmt: skip
}


@pytest.mark.parametrize("case", BAD_CREDENTIALS)
async def test_bad_credentials_are_401_with_the_reason(serve, case: str):
    make, reason = BAD_CREDENTIALS[case]
    served = await serve()
    status, body, _ = await served.config(CURL, make())
    assert status == 401 and reason in body, body


async def test_a_denial_is_not_cached(serve):
    served = await serve()
    assert (await served.config(CURL, "garbage"))[0] == 401
    assert (await served.config(CURL, token(CURL)))[0] == 200
    assert (await served.config(CURL, "garbage"))[0] == 401


async def test_denials_are_logged_at_a_bounded_rate(serve, caplog):
    served = await serve()
    caplog.set_level(logging.WARNING, "mesh.controller.auth")
    for _ in range(200):
        assert (await served.config(CURL))[0] == 401
    denied = [r for r in caplog.records if r.getMessage().startswith("denied ")]
    assert 1 <= len(denied) <= 10
    assert await served.metric('mesh_controller_errors_total{kind="unauthenticated"}') == 200


async def test_made_up_identities_grow_nothing(serve):
    """The issue's flood: 20,000 requests for made-up identities were all answered and cached."""
    served = await serve()
    for i in range(2_000):
        status, _, _ = await served.config(Identity(f"ns{i}", f"sa{i}"))
        assert status == 401
    assert await served.metric("mesh_controller_config_cache_entries") == 0


async def test_the_config_cache_is_bounded(serve):
    served = await serve(ServerLimits(cache_size=100))
    for i in range(300):
        identity = Identity(f"ns{i}", f"sa{i}")
        assert (await served.config(identity, token(identity)))[0] == 200
    assert await served.metric("mesh_controller_config_cache_entries") == 100
    # 20,000 identities straight through the store: still at most the bound
    for i in range(20_000):
        served.store.config(Identity("flood", f"sa{i}"))
    assert await served.metric("mesh_controller_config_cache_entries") == 100


# --- /v1/status ---------------------------------------------------------------------------------


async def test_status_detail_on_loopback_and_aggregate_for_others(serve):
    served = await serve()
    _, body, _ = await served.get("/v1/status")
    assert '"identities": {"curl/curl"' in body and "httpbin-80" not in body
    app = make_app(served.store, Authenticator(KeyVerifier(KEY.public_key()), admin_token=ADMIN_TOKEN))
    handler = next(r.handler for r in app.router.routes() if r.resource.canonical == "/v1/status")

    async def status_from(peer: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
        transport = _Transport(peer)
        request = make_mocked_request(
            "GET", "/v1/status", headers=headers or {}, transport=transport, app=app
        )
        import json

        return json.loads((await handler(request)).text)

    remote = await status_from("10.42.0.7")
    assert remote["ready"] is True and remote["resources"] == {"Egress": 1, "MeshConfig": 1}
    assert remote["identityCount"] == 1 and remote["errorCount"] == 0
    assert "identities" not in remote and "errors" not in remote and "meshConfig" not in remote
    assert "loopback or with the admin token" in remote["detail"]
    assert "curl/curl" in (await status_from("10.42.0.7", bearer(ADMIN_TOKEN)))["identities"]
    assert "identities" not in await status_from("10.42.0.7", bearer("wrong"))
    assert "identities" in await status_from("::1")
    assert "identities" in await status_from("::ffff:127.0.0.1")


class _Transport:
    def __init__(self, peer: str) -> None:
        self.peer = peer

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return (self.peer, 40000) if name == "peername" else default

    def is_closing(self) -> bool:
        return False


# --- bounds on held polls, headers and bodies -----------------------------------------------------


async def test_long_polls_are_capped_per_identity_and_in_total(serve):
    served = await serve(ServerLimits(polls_per_identity=3, polls_total=5))
    version = ProxyConfig.from_json((await served.config(CURL, token(CURL)))[1]).version

    def hold(identity: Identity) -> asyncio.Task:
        return asyncio.create_task(served.config(identity, token(identity), version=version, wait=30))

    held = [hold(CURL) for _ in range(3)]
    await asyncio.sleep(0.3)
    status, body, headers = await served.config(CURL, token(CURL), version=version, wait=30)
    assert status == 429 and body == "too many long polls for curl/curl (limit 3)\n"
    assert headers["Retry-After"] == "5"

    others = [Identity("web", f"sa{i}") for i in range(2)]
    versions = {i: ProxyConfig.from_json((await served.config(i, token(i)))[1]).version for i in others}
    held += [asyncio.create_task(served.config(i, token(i), version=versions[i], wait=30)) for i in others]
    await asyncio.sleep(0.3)
    third = Identity("web", "third")
    status, body, _ = await served.config(third, token(third), version="x" * 16, wait=30)
    assert status == 200  # an answer that needs no waiting is always given
    status, body, _ = await served.config(third, token(third), version=ProxyConfig.from_json(body).version)
    assert status == 503 and body == "too many long polls in total (limit 5)\n"
    assert await served.metric("mesh_controller_proxies_connected") == 5
    assert await served.metric('mesh_controller_errors_total{kind="limit"}') == 2

    await served.store.publish(SourceState((meshconfig(True), httpbin_80())))  # everybody answered
    assert {(await task)[0] for task in held} == {200}
    assert await served.metric("mesh_controller_proxies_connected") == 0
    status, _, _ = await served.config(CURL, token(CURL), version=version, wait=0.2)
    assert status == 200  # slots are free again


async def test_thousands_of_held_polls_stop_at_the_total_bound(serve):
    """The issue's 3,000 held long polls were uncapped."""
    served = await serve(ServerLimits(polls_total=1_000, polls_per_identity=2_000), authenticated=False)
    version = served.store.config(CURL).version
    polls = [asyncio.create_task(served.config(CURL, version=version, wait=20)) for _ in range(1_500)]
    await until(lambda: sum(p.done() for p in polls) >= 500, timeout=60)
    await asyncio.sleep(0.5)  # no more answers come: the other 1,000 are held
    refused = [p.result()[0] for p in polls if p.done()]
    assert len(refused) == 500 and set(refused) == {503}
    assert await served.metric("mesh_controller_proxies_connected") == 1_000
    await served.store.publish(SourceState((meshconfig(True),)))
    results = await asyncio.gather(*polls)
    assert sum(1 for status, _, _ in results if status == 200) == 1_000


async def test_oversized_headers_and_request_bodies_are_refused(serve, caplog):
    served = await serve()
    caplog.set_level(logging.WARNING)
    status, body, _ = await served.get(config_url("", CURL), {"Authorization": "Bearer " + "a" * 20_000})
    assert status == 400 and "Got more than 8192 bytes when reading" in body
    (logged,) = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert logged.getMessage().startswith("Error handling request from 127.0.0.1: 400 Got more than 8192")
    assert logged.exc_info is None  # one line, no traceback
    caplog.clear()
    many = {f"x-h{i}": "v" for i in range(100)}
    assert (await served.get("/healthz", many))[0] == 400
    async with served.session.post(served.base + "/healthz") as resp:
        assert resp.status == 405  # only GET is routed
    async with served.session.get(served.base + "/healthz", data=b"x" * 100_000) as resp:
        assert resp.status == 413 and await resp.text() == "request bodies are not accepted\n"
    assert (await served.get("/healthz"))[0] == 200  # still serving
    assert [r.getMessage() for r in caplog.records] == [
        "Error handling request from 127.0.0.1: 400 Too many headers received"
    ]


async def test_without_an_authenticator_everything_still_works_for_the_tests(serve):
    served = await serve(authenticated=False)
    status, body, _ = await served.config(CURL)
    assert status == 200 and ProxyConfig.from_json(body).mode is Mode.POLICY


def held(store: ConfigStore) -> float | None:
    return store.metrics.registry.get_sample_value("mesh_controller_proxies_connected")


async def test_a_poll_whose_caller_went_away_frees_its_slot():
    store = ConfigStore()
    await store.publish(SourceState((meshconfig(False),)))
    runner = web.AppRunner(make_app(store, None, ServerLimits(polls_per_identity=2)))  # as the controller
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    url = config_url(f"http://127.0.0.1:{port}", CURL)
    params = {"version": store.config(CURL).version, "wait": "60"}
    try:
        async with aiohttp.ClientSession() as gone:
            polls = [asyncio.create_task(gone.get(url, params=params)) for _ in range(2)]
            await until(lambda: held(store) == 2)
            for poll in polls:
                poll.cancel()
        await until(lambda: held(store) == 0, timeout=3)
        async with (
            aiohttp.ClientSession() as session,
            session.get(url, params={**params, "wait": "0.2"}) as resp,
        ):
            assert resp.status == 304
    finally:
        await runner.cleanup()
