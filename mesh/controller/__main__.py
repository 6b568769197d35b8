"""``mesh-controller run``: sources -> reconciler -> config server (+ admission webhook)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from aiohttp import web

from mesh.api.proxyconfig import CONFIG_PORT
from mesh.api.resources import DEFAULT_MESH_NAME, DEFAULT_MESH_NAMESPACE, Namespace
from mesh.manifests.install import webhook_config_name, webhook_secret_name

from .auth import AUTH_METHODS, Authenticator, AuthSetupError, build_authenticator
from .boundary_sync import BoundaryReconciler, NetworkPolicySync
from .injector import InjectionSettings, default_controller_url
from .reconciler import Reconciler
from .server import ConfigStore, make_app
from .sources import DirectorySource, KubernetesSource, Source, SourceError, SourceState
from .webhook import (
    NamespaceLookup,
    generate_certificates,
    load_certificates,
    make_webhook_app,
    patch_ca_bundle,
)

log = logging.getLogger("mesh.controller")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        time = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        return json.dumps(
            {
                "time": time.replace("+00:00", "Z"),
                "level": record.levelname.lower(),
                "logger": record.name,
                "message": record.getMessage(),
            }
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mesh-controller", description="egress-mesh controller")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the controller (config server and admission webhook)")
    run.add_argument(
        "--source", choices=["directory", "kubernetes"], required=True, help="where resources come from"
    )
    run.add_argument("--manifests", metavar="DIR", help="manifest directory (with --source directory)")
    run.add_argument("--mesh-name", default=DEFAULT_MESH_NAME)
    run.add_argument("--mesh-namespace", default=DEFAULT_MESH_NAMESPACE)
    run.add_argument("--host", default="0.0.0.0", help="address to listen on (default all)")
    run.add_argument("--port", type=int, default=CONFIG_PORT, help="config server port (plain HTTP)")
    run.add_argument(
        "--webhook-port", type=int, default=9443, help="admission webhook port (HTTPS); 0 disables"
    )
    run.add_argument("--proxy-image", default="egress-mesh/proxy:latest", help="sidecar image to inject")
    run.add_argument("--init-image", default=None, help="init container image (default: the proxy image)")
    run.add_argument(
        "--image-pull-policy", default="IfNotPresent", choices=["Always", "IfNotPresent", "Never"]
    )
    run.add_argument(
        "--controller-url", default=None, help="config server URL sidecars use (default: the Service)"
    )
    run.add_argument("--cluster-domain", default="cluster.local")
    run.add_argument("--poll-interval", type=float, default=0.2, help="seconds between polls without inotify")
    run.add_argument(
        "--auth",
        choices=AUTH_METHODS,
        default=None,
        help="how sidecars prove their identity: tokenreview (projected ServiceAccount tokens checked by the "
        "API server; the default with --source kubernetes), key (tokens signed by the Docker backend, "
        "checked with --auth-public-key; the default when that is given), none (any caller gets any "
        "identity's config; the default otherwise)",
    )
    run.add_argument("--auth-public-key", metavar="FILE", help="Ed25519 public key (PEM) for --auth key")
    run.add_argument(
        "--admin-token-file",
        metavar="FILE",
        help="a token whose bearer sees per-identity detail in /v1/status from anywhere (not only loopback)",
    )
    run.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return parser


def make_source(args: argparse.Namespace) -> Source:
    if args.source == "directory":
        if not args.manifests:
            raise SourceError("--source directory needs --manifests DIR")
        return DirectorySource(args.manifests, interval=args.poll_interval)
    return KubernetesSource(args.mesh_namespace)


def make_authenticator(args: argparse.Namespace) -> Authenticator | None:
    """The authenticator ``--auth`` selects (defaults: see ``--help``); AuthSetupError if misconfigured."""
    method = args.auth or (
        "tokenreview" if args.source == "kubernetes" else "key" if args.auth_public_key else "none"
    )
    auth = build_authenticator(method, args.auth_public_key, args.admin_token_file)
    if auth is not None:
        log.info("sidecars authenticate with %s", auth.verifier.description)
    return auth


def injection_settings(args: argparse.Namespace) -> InjectionSettings:
    """What the webhook injects, from ``mesh-controller run`` arguments."""
    return InjectionSettings(
        proxy_image=args.proxy_image,
        init_image=args.init_image or args.proxy_image,
        controller_url=args.controller_url or default_controller_url(args.mesh_namespace),
        mesh_name=args.mesh_name,
        mesh_namespace=args.mesh_namespace,
        image_pull_policy=args.image_pull_policy,
    )


async def serve(args: argparse.Namespace) -> int:
    source = make_source(args)
    auth = make_authenticator(args)
    store = ConfigStore(
        Reconciler(args.mesh_namespace),
        cluster_domain=args.cluster_domain,
        source_description=source.description,
    )
    runners: list[web.AppRunner] = []
    waited: set[asyncio.Task[None]] = set()
    try:
        runners.append(await _listen(make_app(store, auth), args.host, args.port, "config server"))
        if args.webhook_port and isinstance(source, KubernetesSource):
            webhook = make_webhook_app(store, injection_settings(args), _namespace_lookup(source))
            waited.add(asyncio.create_task(_serve_webhook_from_secret(store, args, webhook, runners)))
        elif args.webhook_port:
            webhook = make_webhook_app(store, injection_settings(args))
            context = generate_certificates(args.mesh_namespace).server_context()
            runners.append(await _listen(webhook, args.host, args.webhook_port, "admission webhook", context))
        boundary = make_boundary(args, source)
        if boundary is not None:
            waited.add(asyncio.create_task(boundary.run()))
        source_task = asyncio.create_task(source.run(_publisher(store, boundary)))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        stop_task = asyncio.create_task(stop.wait())
        waited |= {source_task, stop_task}
        while not (source_task.done() or stop_task.done()):
            done, _ = await asyncio.wait(waited, return_when=asyncio.FIRST_COMPLETED)
            for task in done - {source_task, stop_task}:
                waited.discard(task)
                if task.exception():
                    raise task.exception()  # type: ignore[misc]
        if source_task.done():
            exc = source_task.exception()
            log.error("source %s stopped: %s", source.description, exc)
            return 1
        log.info("stopping")
        return 0
    finally:
        for task in waited:
            task.cancel()
        for runner in runners:
            await runner.cleanup()


def make_boundary(args: argparse.Namespace, source: Source) -> BoundaryReconciler | None:
    """On Kubernetes, the egress boundary's NetworkPolicies (docs/boundary.md) follow every snapshot:
    written while MeshConfig ``spec.traffic.enableEgressBoundary`` is on, removed when it is off or
    a namespace leaves the mesh. Elsewhere (a manifest directory) nothing enforces them."""
    if not isinstance(source, KubernetesSource):
        return None
    from kubernetes import client

    return BoundaryReconciler(NetworkPolicySync(client.NetworkingV1Api(), args.mesh_name))


def _publisher(
    store: ConfigStore, boundary: BoundaryReconciler | None
) -> Callable[[SourceState], Awaitable[None]]:
    async def publish(state: SourceState) -> None:
        await store.publish(state)
        if boundary is not None and store.snapshot is not None:
            boundary.update(store.snapshot)

    return publish


def _namespace_lookup(source: KubernetesSource) -> NamespaceLookup:
    async def lookup(name: str) -> Namespace | None:
        obj = await asyncio.to_thread(source.read_namespace, name)
        return Namespace.from_object(obj) if obj else None

    return lookup


async def _serve_webhook_from_secret(
    store: ConfigStore, args: argparse.Namespace, webhook: web.Application, runners: list[web.AppRunner]
) -> None:
    """Certificates from the Secret every replica shares, then listen, then write the caBundle.

    Not ready until the API server trusts the webhook, so pods are not refused meanwhile. A port
    that cannot be opened stops the controller (SourceError); API failures are logged after the
    retries and the controller keeps serving configs."""
    reason = (
        f"webhook certificates (Secret {args.mesh_namespace}/{webhook_secret_name(args.mesh_name)}) "
        f"and caBundle of MutatingWebhookConfiguration {webhook_config_name(args.mesh_name)}"
    )
    store.pending.add(reason)
    try:
        certs = await load_certificates(args.mesh_name, args.mesh_namespace)
        runners.append(
            await _listen(webhook, args.host, args.webhook_port, "admission webhook", certs.server_context())
        )
        await patch_ca_bundle(args.mesh_name, certs.ca_pem)
    except SourceError:
        raise
    except Exception as exc:  # noqa: BLE001 - reported, the controller keeps serving configs
        log.error("admission webhook not available: %s", exc)
    finally:
        store.pending.discard(reason)


async def _listen(app: web.Application, host: str, port: int, what: str, ssl_context=None) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, ssl_context=ssl_context).start()
    except OSError as exc:
        await runner.cleanup()
        raise SourceError(f"{what} cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    log.info("%s listening on %s:%d%s", what, host, port, " (HTTPS)" if ssl_context else "")
    return runner


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=args.log_level.upper(), handlers=[handler], force=True)
    for noisy in ("aiohttp.access", "kubernetes", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return asyncio.run(serve(args))
    except (SourceError, AuthSetupError) as exc:
        print(f"mesh-controller: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
