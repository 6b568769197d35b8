"""``mesh-gateway run [--port 1080] [--connect-timeout 5] [--host 0.0.0.0]``: the egress gateway.

Access-log records go to stdout as JSON lines; diagnostics go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys

from mesh.api.proxyconfig import GATEWAY_PORT
from mesh.gateway.server import Gateway
from mesh.proxy import eventloop


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mesh-gateway", description="egress-mesh egress gateway")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="serve CONNECT tunnels and write the JSON access log on stdout")
    run.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    run.add_argument(
        "--port", type=int, default=GATEWAY_PORT, help=f"port to listen on (default {GATEWAY_PORT})"
    )
    run.add_argument(
        "--connect-timeout",
        type=float,
        default=5.0,
        help="seconds to reach a destination before 504 (default 5)",
    )
    run.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return parser


async def serve(host: str, port: int, connect_timeout: float) -> None:
    gateway = Gateway(connect_timeout=connect_timeout)
    server = await gateway.start(host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    logging.getLogger("mesh.gateway").info("mesh-gateway listening on %s:%d", host, port)
    async with server:
        await stop.wait()
        server.close()
        await gateway.close()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not 0 < args.port < 65536:
        print(f"mesh-gateway: error: --port must be 1-65535, got {args.port}", file=sys.stderr)
        return 2
    if args.connect_timeout <= 0:
        print(
            f"mesh-gateway: error: --connect-timeout must be positive, got {args.connect_timeout}",
            file=sys.stderr,
        )
        return 2
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        eventloop.run(serve(args.host, args.port, args.connect_timeout))  # uvloop where installed
    except OSError as exc:
        print(
            f"mesh-gateway: error: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 1
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
