"""``mesh-proxy``: ``run`` (the sidecar) and ``init`` (the iptables interception rules)."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path

from mesh.api.credentials import TOKEN_PATH
from mesh.api.proxyconfig import Identity, ProxyConfig
from mesh.proxy import eventloop
from mesh.proxy.configsource import ControllerSource, FileSource
from mesh.proxy.log import emit
from mesh.proxy.readiness import Readiness
from mesh.proxy.sidecar import PROXY_PORT, Sidecar


def _run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--controller", help="config server base URL, e.g. http://osm-controller.osm-system:15128"
    )
    parser.add_argument(
        "--identity",
        help="NAMESPACE/SERVICEACCOUNT (default: $POD_NAMESPACE/$POD_SERVICE_ACCOUNT)",
    )
    parser.add_argument(
        "--token-file",
        type=Path,
        default=Path(TOKEN_PATH),
        help=f"credential presented to the controller, read before every request (default {TOKEN_PATH})",
    )
    parser.add_argument("--config-file", type=Path, help="JSON ProxyConfig, reloaded when it changes")
    parser.add_argument("--port", type=int, default=PROXY_PORT, help="outbound listener port (default 15001)")
    parser.add_argument("--listen", default=None, help="listen address (default: all addresses)")
    parser.add_argument(
        "--gateway-timeout", type=float, default=1.0, help="seconds to reach the egress gateway (default 1.0)"
    )
    parser.add_argument(
        "--readiness-port",
        type=int,
        default=0,
        help="serve GET /healthz/ready here: 200 once a config is applied, 503 before (default 0: off; "
        "injected sidecars use 15021)",
    )


def build_parser(with_init: bool) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mesh-proxy", description="egress-mesh sidecar proxy")
    commands = parser.add_subparsers(dest="command", required=True)
    _run_arguments(commands.add_parser("run", help="run the transparent sidecar proxy"))
    init = commands.add_parser("init", help="install the iptables interception rules")
    if with_init:
        from mesh.proxy import init as init_module

        init_module.add_arguments(init)
    return parser


def _identity(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Identity | None:
    text = args.identity
    if not text and os.environ.get("POD_NAMESPACE") and os.environ.get("POD_SERVICE_ACCOUNT"):
        text = f"{os.environ['POD_NAMESPACE']}/{os.environ['POD_SERVICE_ACCOUNT']}"
    if not text:
        return None
    try:
        return Identity.parse(text)
    except ValueError as exc:
        parser.error(str(exc))
    return None


async def serve(args: argparse.Namespace, identity: Identity | None) -> int:
    sidecar = Sidecar(identity, port=args.port, host=args.listen, gateway_timeout=args.gateway_timeout)
    readiness = Readiness()
    stop = asyncio.Event()
    failure: list[str] = []

    async def on_config(config: ProxyConfig) -> None:
        try:
            await sidecar.apply(config)
        except OSError as exc:
            failure.append(f"mesh-proxy: cannot listen on port {args.port}: {exc.strerror or exc}")
            stop.set()
            return
        if sidecar.config == config:  # not refused (e.g. a config for another identity)
            readiness.applied(config)

    if args.readiness_port:
        try:
            await readiness.start(args.readiness_port)
        except OSError as exc:
            print(
                f"mesh-proxy: cannot listen on port {args.readiness_port}: {exc.strerror or exc}",
                file=sys.stderr,
            )
            return 1

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    emit("start", identity=str(identity) if identity else None, port=args.port, listener="closed")
    sources = []
    if args.config_file:
        sources.append(FileSource(args.config_file))
    if args.controller:
        sources.append(ControllerSource(args.controller, identity, token_file=args.token_file))  # type: ignore[arg-type]
    tasks = [asyncio.create_task(source.run(on_config)) for source in sources]
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
    for task in [*tasks, stopper]:
        task.cancel()
    sidecar.close()
    await readiness.close()
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception():
            failure.append(f"mesh-proxy: config source failed: {task.exception()}")
    if failure:
        print(failure[0], file=sys.stderr)
        return 1
    emit("stop")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    wants_init = bool(argv) and argv[0] == "init"
    try:
        parser = build_parser(with_init=wants_init)
    except ImportError:
        print("mesh-proxy: the init command is not available (no mesh.proxy.init)", file=sys.stderr)
        return 1
    args = parser.parse_args(argv)
    if args.command == "init":
        from mesh.proxy import init as init_module

        return init_module.run(args)
    identity = _identity(parser, args)
    if not args.controller and not args.config_file:
        parser.error("give --config-file FILE and/or --controller URL")
    if args.controller and identity is None:
        parser.error("--controller needs --identity NS/SA (or POD_NAMESPACE and POD_SERVICE_ACCOUNT)")
    if not 0 < args.port < 65536:
        parser.error(f"--port must be 1-65535, got {args.port}")
    if not 0 <= args.readiness_port < 65536 or args.readiness_port == args.port:
        parser.error(
            f"--readiness-port must be 1-65535 (0: off) and differ from --port, got {args.readiness_port}"
        )
    if args.gateway_timeout <= 0:
        parser.error("--gateway-timeout must be positive")
    try:
        return eventloop.run(serve(args, identity))  # uvloop where installed
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
