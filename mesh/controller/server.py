"""The config server: sidecars long-poll their ProxyConfig here (plain HTTP, port 15128).

Endpoints:

- ``GET /v1/proxyconfig/{namespace}/{serviceAccount}?version=V&wait=S`` - the contract in
  ``mesh.api.proxyconfig``: 200 with the document (``ETag: "<version>"``) as soon as the current
  version differs from ``V``, else 304 after ``S`` seconds (default 30, at most 60). The version
  may also come as ``If-None-Match``. 503 if the controller has no state yet after ``S``.
  With an ``Authenticator`` the caller must present a credential (``mesh.api.credentials``):
  none or a bad one is 401, a credential for another identity 403.
- ``/healthz`` (alive), ``/readyz`` (the source delivered its first state and nothing in
  ``ConfigStore.pending``, e.g. the webhook caBundle not yet written),
- ``/metrics`` (Prometheus text),
- ``/v1/status`` (JSON: readiness, version, resource and error counts for anyone; the errors and
  per-identity modes only for callers on loopback or with the admin token).

Everything is bounded (``ServerLimits``): compiled configs kept (LRU), long polls held per
identity (429 past it) and in total (503), request line and header sizes (aiohttp answers 400),
and no request body is accepted (413). On shutdown every held poll is answered 503 at once.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import CollectorRegistry, Counter, Gauge, Info, exposition, generate_latest

from mesh.api.proxyconfig import CONFIG_PATH, Identity, ProxyConfig

from .auth import Authenticator, Denied, RateLimitedLog, is_loopback
from .offload import off_loop
from .reconciler import Reconciler, Snapshot, compile_config
from .sources import SourceState

log = logging.getLogger("mesh.controller.server")
DEFAULT_WAIT = 30.0
MAX_WAIT = 60.0
RETRY_AFTER = "5"


@dataclass(frozen=True)
class ServerLimits:
    cache_size: int = 4096  # compiled ProxyConfigs kept (least recently used dropped)
    polls_per_identity: int = 512  # long polls held at once for one identity (429 past it)
    polls_total: int = 4096  # long polls held at once in total (503 past it)
    max_line_size: int = 4096  # request line (aiohttp answers 400 past it)
    max_field_size: int = 8192  # one header (a projected token is about 1 KB)
    max_headers: int = 32
    keepalive_timeout: float = 75.0  # idle connection between polls


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.config = Info("mesh_controller_config", "Current configuration snapshot", registry=r)
        self.generation = Gauge("mesh_controller_config_generation", "Snapshots applied", registry=r)
        self.connected = Gauge(
            "mesh_controller_proxies_connected", "Sidecars waiting in a long poll", registry=r
        )
        self.cached = Gauge("mesh_controller_config_cache_entries", "Compiled ProxyConfigs kept", registry=r)
        self.pushes = Counter("mesh_controller_config_pushes", "ProxyConfig documents sent", registry=r)
        self.updates = Counter(
            "mesh_controller_config_updates", "Source changes that changed state", registry=r
        )
        self.errors = Counter(
            "mesh_controller_errors",
            "Errors (invalid objects, bad requests, denied callers, limits reached, internal)",
            ["kind"],
            registry=r,
        )
        self.invalid = Gauge("mesh_controller_invalid_objects", "Objects currently refused", registry=r)
        self.resources = Gauge("mesh_controller_resources", "Admitted objects by kind", ["kind"], registry=r)


class ConfigStore:
    """The current snapshot, compiled configs per identity, and change notification."""

    def __init__(
        self,
        reconciler: Reconciler | None = None,
        metrics: Metrics | None = None,
        cluster_domain: str = "cluster.local",
        source_description: str = "",
        cache_size: int = ServerLimits.cache_size,
    ) -> None:
        self.reconciler = reconciler or Reconciler()
        self.metrics = metrics or Metrics()
        self.cluster_domain = cluster_domain
        self.source_description = source_description
        self.cache_size = cache_size
        self.snapshot: Snapshot | None = None
        self.generation = 0
        self.closing = False
        self._changed = asyncio.Event()
        self._admitting = asyncio.Lock()
        self._cache: OrderedDict[Identity, ProxyConfig] = OrderedDict()
        #: reasons the controller is not ready yet besides having no state (shown by /readyz)
        self.pending: set[str] = set()

    @property
    def ready(self) -> bool:
        return self.snapshot is not None

    async def publish(self, state: SourceState) -> None:
        """Admit a source state (validation runs off the event loop); wakes the long polls if
        anything changed. Never raises for what the state holds: the last snapshot stays."""
        async with self._admitting:
            try:
                snapshot = await off_loop(self._admit, state)
            except Exception:  # noqa: BLE001 - the controller keeps serving the last good state
                log.exception("could not admit the new state; the previous configuration stays in force")
                self.metrics.errors.labels("internal").inc()
                return
            if snapshot is not None:
                self._apply(snapshot)

    def _admit(self, state: SourceState) -> Snapshot | None:
        snapshot = self.reconciler.admit(state.objects, state.errors)
        return None if snapshot == self.snapshot else snapshot

    def _apply(self, snapshot: Snapshot) -> None:
        new_errors = set(snapshot.errors) - set(self.snapshot.errors if self.snapshot else ())
        for error in sorted(new_errors):
            log.warning("refused: %s", error)
            self.metrics.errors.labels("invalid").inc()
        self.snapshot = snapshot
        self.generation += 1
        self._cache.clear()
        m = self.metrics
        m.cached.set(0)
        m.config.info({"version": snapshot.version, "generation": str(self.generation)})
        m.generation.set(self.generation)
        m.updates.inc()
        m.invalid.set(len(snapshot.errors))
        m.resources.clear()
        for kind, count in snapshot.counts:
            m.resources.labels(kind).set(count)
        log.info("configuration generation %d (version %s)", self.generation, snapshot.version)
        self._wake()

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def close(self) -> None:
        """Shutting down: every waiting long poll returns now."""
        self.closing = True
        self._wake()

    def config(self, identity: Identity) -> ProxyConfig | None:
        if self.snapshot is None:
            return None
        cfg = self._cache.get(identity)
        if cfg is None:
            cfg = self._cache[identity] = compile_config(self.snapshot, identity, self.cluster_domain)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
            self.metrics.cached.set(len(self._cache))
        self._cache.move_to_end(identity)
        return cfg

    async def wait_for_change(self, timeout: float) -> bool:
        if self.closing:
            return False
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except TimeoutError:
            return False
        return not self.closing

    def status(self, detail: bool = True) -> dict[str, Any]:
        snap = self.snapshot or Snapshot()
        summary: dict[str, Any] = {
            "ready": self.ready and not self.pending,
            "pending": sorted(self.pending),
            "version": snap.version,
            "generation": self.generation,
            "resources": dict(snap.counts),
            "errorCount": len(snap.errors),
            "identityCount": len(snap.identities),
        }
        if not detail:
            return {
                **summary,
                "detail": "errors and identities are shown on loopback or with the admin token",
            }
        identities = {}
        for identity in snap.identities:
            cfg = self.config(identity)
            if cfg:
                identities[str(identity)] = {
                    "mode": cfg.mode.value,
                    "version": cfg.version,
                    "rules": len(cfg.rules),
                }
        return {
            **summary,
            "source": self.source_description,
            "meshConfig": {
                "name": f"{snap.mesh_config.namespace}/{snap.mesh_config.name}",
                "enableEgress": snap.mesh_config.enable_egress,
                "enableEgressPolicy": snap.mesh_config.enable_egress_policy,
            },
            "errors": list(snap.errors),
            "identities": identities,
        }


class PollSlots:
    """Counts held long polls per identity and in total; refuses past the limits."""

    def __init__(self, limits: ServerLimits, metrics: Metrics) -> None:
        self.limits = limits
        self.metrics = metrics
        self.total = 0
        self._per_identity: dict[Identity, int] = {}

    @contextmanager
    def hold(self, identity: Identity) -> Iterator[None]:
        held = self._per_identity.get(identity, 0)
        if held >= self.limits.polls_per_identity:
            self.metrics.errors.labels("limit").inc()
            raise _refusal(
                web.HTTPTooManyRequests,
                f"too many long polls for {identity} (limit {self.limits.polls_per_identity})",
            )
        if self.total >= self.limits.polls_total:
            self.metrics.errors.labels("limit").inc()
            raise _refusal(
                web.HTTPServiceUnavailable, f"too many long polls in total (limit {self.limits.polls_total})"
            )
        self._per_identity[identity] = held + 1
        self.total += 1
        self.metrics.connected.inc()
        try:
            yield
        finally:
            self.total -= 1
            self.metrics.connected.dec()
            if self._per_identity[identity] <= 1:
                del self._per_identity[identity]
            else:
                self._per_identity[identity] -= 1


def _refusal(kind: type[web.HTTPException], reason: str) -> web.HTTPException:
    return kind(text=reason + "\n", headers={"Retry-After": RETRY_AFTER})


def make_app(
    store: ConfigStore, auth: Authenticator | None = None, limits: ServerLimits | None = None
) -> web.Application:
    """The config server. Without ``auth`` any caller gets any identity's config (tests, and
    ``mesh-controller run --auth none``)."""
    limits = limits or ServerLimits()
    store.cache_size = limits.cache_size
    app = web.Application(
        client_max_size=1024,
        middlewares=[_no_bodies],
        handler_args={
            "max_line_size": limits.max_line_size,
            "max_field_size": limits.max_field_size,
            "max_headers": limits.max_headers,
            "keepalive_timeout": limits.keepalive_timeout,
            "logger": _RequestErrorLog(logging.getLogger("aiohttp.server")),
            "handler_cancellation": True,  # a poll whose caller went away frees its slot at once
        },
    )
    routes = web.RouteTableDef()
    path = CONFIG_PATH.format(namespace="{namespace}", service_account="{service_account}")
    slots = PollSlots(limits, store.metrics)
    denials = RateLimitedLog(logging.getLogger("mesh.controller.auth"))

    async def on_shutdown(_: web.Application) -> None:
        store.close()

    app.on_shutdown.append(on_shutdown)
    if auth is None:
        log.warning("the config server does not authenticate callers: any caller gets any identity's config")

    @routes.get(path)
    async def proxyconfig(request: web.Request) -> web.StreamResponse:
        identity = Identity(request.match_info["namespace"], request.match_info["service_account"])
        if auth is not None:
            await _authorise(request, auth, identity, store, denials)
        known = request.query.get("version") or request.headers.get("If-None-Match", "").strip('W/"')
        try:
            wait = float(request.query.get("wait", DEFAULT_WAIT))
        except ValueError:
            store.metrics.errors.labels("request").inc()
            raise web.HTTPBadRequest(
                text=f"wait must be a number of seconds, got {request.query['wait']!r}\n"
            ) from None
        wait = DEFAULT_WAIT if math.isnan(wait) else min(max(wait, 0.0), MAX_WAIT)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        cfg = store.config(identity)
        if cfg is not None and cfg.version != known:
            return _document(store, cfg)
        if wait > 0 and not store.closing:
            with slots.hold(identity):
                while await store.wait_for_change(deadline - loop.time()):
                    cfg = store.config(identity)
                    if cfg is not None and cfg.version != known:
                        return _document(store, cfg)
        if store.closing:
            raise _refusal(web.HTTPServiceUnavailable, "controller shutting down")
        if not store.ready:
            raise web.HTTPServiceUnavailable(text="controller has no configuration yet\n")
        return web.Response(status=304, headers={"ETag": f'"{known}"'})

    @routes.get("/healthz")
    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    @routes.get("/readyz")
    async def readyz(_: web.Request) -> web.Response:
        if not store.ready:
            raise web.HTTPServiceUnavailable(text="waiting for the first state from the source\n")
        if store.pending:
            raise web.HTTPServiceUnavailable(text="".join(f"waiting: {p}\n" for p in sorted(store.pending)))
        return web.Response(text="ready\n")

    @routes.get("/metrics")
    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(store.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": exposition.CONTENT_TYPE_LATEST})

    @routes.get("/v1/status")
    async def status(request: web.Request) -> web.Response:
        authorization = request.headers.get("Authorization")
        if auth is not None:
            detail = auth.may_see_details(request.remote, authorization)
        else:
            detail = is_loopback(request.remote)
        return web.json_response(store.status(detail=detail))

    app.add_routes(routes)
    return app


async def _authorise(
    request: web.Request, auth: Authenticator, identity: Identity, store: ConfigStore, denials: RateLimitedLog
) -> None:
    """Return if the caller proves ``identity``; raise 401/403/503 (logged, not cached) otherwise."""
    try:
        caller = await auth.caller(request.headers.get("Authorization"))
        if caller != identity:
            raise Denied(403, f"the credential is for {caller}, not {identity}")
    except Denied as denied:
        kind = {401: "unauthenticated", 403: "forbidden"}.get(denied.status, "unavailable")
        store.metrics.errors.labels(kind).inc()
        denials.warning(
            "denied %s from %s: %d %s", request.path, request.remote or "?", denied.status, denied.reason
        )
        headers = {"Cache-Control": "no-store"}
        if denied.status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="egress-mesh", error="invalid_token"'
        elif denied.status == 503:
            headers["Retry-After"] = RETRY_AFTER
        answer = {401: web.HTTPUnauthorized, 403: web.HTTPForbidden}.get(
            denied.status, web.HTTPServiceUnavailable
        )
        raise answer(text=denied.reason + "\n", headers=headers) from None


def _document(store: ConfigStore, cfg: ProxyConfig) -> web.Response:
    store.metrics.pushes.inc()
    return web.Response(
        text=cfg.to_json(), content_type="application/json", headers={"ETag": f'"{cfg.version}"'}
    )


@web.middleware
async def _no_bodies(request: web.Request, handler: Any) -> web.StreamResponse:
    """Every endpoint is a GET: a request body is refused before anything reads it."""
    if request.body_exists:
        response = web.Response(status=413, text="request bodies are not accepted\n")
        response.force_close()
        return response
    return await handler(request)


class _RequestErrorLog(logging.LoggerAdapter):
    """aiohttp's server log: a malformed request (the caller's fault, answered 400) is one
    rate-limited line; anything else keeps its traceback."""

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__(logger, {})
        self.limited = RateLimitedLog(logger)

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        if isinstance(exc_info, HttpProcessingError):
            reason = " ".join(str(exc_info.message).split())[:200]
            self.limited.warning("%s: %d %s", str(msg) % args, exc_info.code, reason)
        else:
            self.logger.exception(msg, *args, exc_info=exc_info, **kwargs)
