"""The config server: sidecars long-poll their ProxyConfig here (plain HTTP, port 15128).

Endpoints:

- ``GET /v1/proxyconfig/{namespace}/{serviceAccount}?version=V&wait=S`` - the contract in
  ``mesh.api.proxyconfig``: 200 with the document (``ETag: "<version>"``) as soon as the current
  version differs from ``V``, else 304 after ``S`` seconds (default 30, at most 60). The version
  may also come as ``If-None-Match``. 503 if the controller has no state yet after ``S``.
- ``/healthz`` (alive), ``/readyz`` (the source delivered its first state and nothing in
  ``ConfigStore.pending``, e.g. the webhook caBundle not yet written),
- ``/metrics`` (Prometheus text),
- ``/v1/status`` (JSON: resource counts, invalid objects and their errors, per-identity mode).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Info, exposition, generate_latest

from mesh.api.proxyconfig import CONFIG_PATH, Identity, ProxyConfig

from .reconciler import Reconciler, Snapshot, compile_config
from .sources import SourceState

log = logging.getLogger("mesh.controller.server")
DEFAULT_WAIT = 30.0
MAX_WAIT = 60.0


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.config = Info("mesh_controller_config", "Current configuration snapshot", registry=r)
        self.generation = Gauge("mesh_controller_config_generation", "Snapshots applied", registry=r)
        self.connected = Gauge(
            "mesh_controller_proxies_connected", "Sidecars waiting in a long poll", registry=r
        )
        self.pushes = Counter("mesh_controller_config_pushes", "ProxyConfig documents sent", registry=r)
        self.updates = Counter(
            "mesh_controller_config_updates", "Source changes that changed state", registry=r
        )
        self.errors = Counter(
            "mesh_controller_errors",
            "Errors (invalid objects, bad files, bad requests)",
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
    ) -> None:
        self.reconciler = reconciler or Reconciler()
        self.metrics = metrics or Metrics()
        self.cluster_domain = cluster_domain
        self.source_description = source_description
        self.snapshot: Snapshot | None = None
        self.generation = 0
        self._changed = asyncio.Event()
        self._cache: dict[Identity, ProxyConfig] = {}
        #: reasons the controller is not ready yet besides having no state (shown by /readyz)
        self.pending: set[str] = set()

    @property
    def ready(self) -> bool:
        return self.snapshot is not None

    def publish(self, state: SourceState) -> None:
        """Admit a source state; wakes every waiting long poll if anything changed."""
        snapshot = self.reconciler.admit(state.objects, state.errors)
        if snapshot == self.snapshot:
            return
        new_errors = set(snapshot.errors) - set(self.snapshot.errors if self.snapshot else ())
        for error in sorted(new_errors):
            log.warning("refused: %s", error)
            self.metrics.errors.labels("invalid").inc()
        self.snapshot = snapshot
        self.generation += 1
        self._cache.clear()
        m = self.metrics
        m.config.info({"version": snapshot.version, "generation": str(self.generation)})
        m.generation.set(self.generation)
        m.updates.inc()
        m.invalid.set(len(snapshot.errors))
        m.resources.clear()
        for kind, count in snapshot.counts:
            m.resources.labels(kind).set(count)
        log.info("configuration generation %d (version %s)", self.generation, snapshot.version)
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def config(self, identity: Identity) -> ProxyConfig | None:
        if self.snapshot is None:
            return None
        if identity not in self._cache:
            self._cache[identity] = compile_config(self.snapshot, identity, self.cluster_domain)
        return self._cache[identity]

    async def wait_for_change(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def status(self) -> dict[str, Any]:
        snap = self.snapshot or Snapshot()
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
            "ready": self.ready and not self.pending,
            "pending": sorted(self.pending),
            "source": self.source_description,
            "version": snap.version,
            "generation": self.generation,
            "meshConfig": {
                "name": f"{snap.mesh_config.namespace}/{snap.mesh_config.name}",
                "enableEgress": snap.mesh_config.enable_egress,
                "enableEgressPolicy": snap.mesh_config.enable_egress_policy,
            },
            "resources": dict(snap.counts),
            "errors": list(snap.errors),
            "identities": identities,
        }


def make_app(store: ConfigStore) -> web.Application:
    app = web.Application()
    routes = web.RouteTableDef()
    path = CONFIG_PATH.format(namespace="{namespace}", service_account="{service_account}")

    @routes.get(path)
    async def proxyconfig(request: web.Request) -> web.StreamResponse:
        identity = Identity(request.match_info["namespace"], request.match_info["service_account"])
        known = request.query.get("version") or request.headers.get("If-None-Match", "").strip('W/"')
        try:
            wait = float(request.query.get("wait", DEFAULT_WAIT))
        except ValueError:
            store.metrics.errors.labels("request").inc()
            raise web.HTTPBadRequest(
                text=f"wait must be a number of seconds, got {request.query['wait']!r}\n"
            ) from None
        wait = min(max(wait, 0.0), MAX_WAIT)
        deadline = asyncio.get_running_loop().time() + wait
        store.metrics.connected.inc()
        try:
            while True:
                cfg = store.config(identity)
                if cfg is not None and cfg.version != known:
                    store.metrics.pushes.inc()
                    return web.Response(
                        text=cfg.to_json(),
                        content_type="application/json",
                        headers={"ETag": f'"{cfg.version}"'},
                    )
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0 or not await store.wait_for_change(remaining):
                    break
        finally:
            store.metrics.connected.dec()
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
    async def status(_: web.Request) -> web.Response:
        return web.json_response(store.status())

    app.add_routes(routes)
    return app
