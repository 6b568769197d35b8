"""Local stand-in for the article's external services (a test fixture, not part of the mesh).

Answers as ``httpbin.org`` (``/get`` JSON, ``/headers``, ``/status/N``, ``/anything``) and as
``httpstat.us`` (``/200`` -> ``200 OK``, any ``/NNN``) on HTTP and on HTTPS (certificate generated
at start for those names), plus an echo on TCP and UDP (what the egress boundary's scenario sends
datagrams to). One JSON line per request on stdout. With ``--name``, every HTTP answer carries
``X-Standin: NAME``, so a test can tell which stand-in answered when each external name has its
own (the harness runs one per name: ``httpbin.org`` and ``httpstat.us``).

    python3 standin.py [--name NAME] [--http-port 80] [--https-port 443] [--echo-port 7] [--host 0.0.0.0]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import ipaddress
import json
import ssl
import sys
import tempfile
from http import HTTPStatus

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

NAMES = ("httpbin.org", "www.httpbin.org", "httpstat.us", "www.httpstat.us", "localhost")
IDENTITY_HEADER = "X-Standin"


def log(**record) -> None:
    record["time"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")
    print(json.dumps(record), flush=True)


def _headers(request: web.Request) -> dict[str, str]:
    return {k.title(): v for k, v in request.headers.items()}


def _origin(request: web.Request) -> str:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return peer[0] if peer else ""


async def get(request: web.Request) -> web.Response:
    return web.json_response(
        {
            "args": dict(request.query),
            "headers": _headers(request),
            "origin": _origin(request),
            "url": str(request.url),
        }
    )


async def headers(request: web.Request) -> web.Response:
    return web.json_response({"headers": _headers(request)})


async def anything(request: web.Request) -> web.Response:
    body = await request.text()
    return web.json_response(
        {
            "args": dict(request.query),
            "data": body,
            "headers": _headers(request),
            "method": request.method,
            "origin": _origin(request),
            "url": str(request.url),
        }
    )


def _status(code: int) -> web.Response:
    if not 100 <= code <= 599:
        return web.Response(status=400, text="invalid status code")
    try:
        phrase = HTTPStatus(code).phrase
    except ValueError:
        phrase = "Unknown"
    if code in (204, 304) or code < 200:
        return web.Response(status=code)
    return web.Response(status=code, text=f"{code} {phrase}", content_type="text/plain")


async def httpbin_status(request: web.Request) -> web.Response:
    return _status(int(request.match_info["code"]))


async def httpstat_status(request: web.Request) -> web.Response:
    return _status(int(request.match_info["code"]))


def identify(name: str | None):
    @web.middleware
    async def add_identity(request: web.Request, handler):
        response = await handler(request)
        if name:
            response.headers[IDENTITY_HEADER] = name
        return response

    return add_identity


@web.middleware
async def access_log(request: web.Request, handler):
    response = await handler(request)
    log(
        host=request.host,
        method=request.method,
        path=request.path,
        status=response.status,
        source_address=_origin(request),
        scheme=request.scheme,
    )
    return response


def make_app(name: str | None = None) -> web.Application:
    app = web.Application(middlewares=[access_log, identify(name)])
    app.router.add_get("/get", get)
    app.router.add_get("/headers", headers)
    app.router.add_route("*", "/anything{tail:.*}", anything)
    app.router.add_route("*", r"/status/{code:\d+}", httpbin_status)
    app.router.add_route("*", r"/{code:\d{3}}", httpstat_status)
    return app


def self_signed_context(names=NAMES) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = datetime.datetime.now(datetime.UTC)
    alt = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .sign(key, hashes.SHA256())
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    with tempfile.NamedTemporaryFile("wb", suffix=".pem") as pem:
        pem.write(cert.public_bytes(serialization.Encoding.PEM))
        pem.write(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        pem.flush()
        context.load_cert_chain(pem.name)
    return context


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    peer = writer.get_extra_info("peername")
    log(service="echo", source_address=peer[0] if peer else "")
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


class UdpEcho(asyncio.DatagramProtocol):
    """Sends every datagram back to where it came from."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        log(service="udp-echo", source_address=addr[0], bytes=len(data))
        self.transport.sendto(data, addr)


async def serve(args: argparse.Namespace) -> None:
    runner = web.AppRunner(make_app(args.name), access_log=None)
    await runner.setup()
    sites = []
    if args.http_port:
        sites.append(web.TCPSite(runner, args.host, args.http_port))
    if args.https_port:
        sites.append(web.TCPSite(runner, args.host, args.https_port, ssl_context=self_signed_context()))
    for site in sites:
        await site.start()
    servers = []
    if args.echo_port:
        servers.append(await asyncio.start_server(echo, args.host, args.echo_port))
        loop = asyncio.get_running_loop()
        servers.append(await loop.create_datagram_endpoint(UdpEcho, local_addr=(args.host, args.echo_port)))
    log(event="listening", name=args.name, http=args.http_port, https=args.https_port, echo=args.echo_port)
    await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="stand-in for httpbin.org and httpstat.us")
    parser.add_argument("--name", help=f"answer every HTTP request with the header {IDENTITY_HEADER}: NAME")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--http-port", type=int, default=80)
    parser.add_argument("--https-port", type=int, default=443)
    parser.add_argument("--echo-port", type=int, default=7)
    args = parser.parse_args(argv)
    try:
        asyncio.run(serve(args))
    except OSError as exc:
        print(f"standin: cannot listen: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
