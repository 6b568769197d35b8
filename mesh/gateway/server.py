"""The egress gateway: an asyncio CONNECT server that forwards tunnels and writes the access log.

One task per tunnel while it is set up (never a thread); then the bytes are relayed from the
protocol callbacks (``mesh.proxy.stream.Splice``), each chunk written on at once; copies go to the
observer in batches (``Observations``).
The sidecar sends ``CONNECT host:port`` (see ``mesh.api.tunnel``); the gateway resolves and
connects with a timeout (502 refused or unresolvable, 504 timed out), answers ``200 Connection
Established`` and relays bytes both ways unchanged. It refuses (403) to connect to itself, to
loopback (unless it listens on loopback itself, as in local runs), to unspecified and
link-local addresses, and to the cloud metadata addresses outside link-local (``CLOUD_METADATA``).
Copies of the bytes go to an HTTP observer (protocol ``http`` or bytes that look like HTTP) for
request records, or to the SNI reader (protocol ``https`` or a TLS ClientHello).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from mesh.api import accesslog
from mesh.api.proxyconfig import GATEWAY_PORT
from mesh.api.tunnel import ESTABLISHED, MAX_HEAD, ConnectRequest, TunnelError, error_response
from mesh.gateway.accesslog import RequestLines, emit
from mesh.gateway.httphead import looks_like_http
from mesh.gateway.httpstream import HttpObserver
from mesh.proxy import tls
from mesh.proxy.log import write_line
from mesh.proxy.stream import Channel, HeadTooLarge, Splice, connect

log = logging.getLogger("mesh.gateway")

HEAD_TIMEOUT = 10.0
KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_PROBES = 60, 10, 3

Sink = Callable[[dict[str, Any]], None]

# Cloud metadata and credential services outside link-local (169.254.169.254 of AWS, GCP, Azure,
# Oracle and others is refused as link-local).
CLOUD_METADATA = frozenset(
    map(
        ipaddress.ip_address,
        [
            "fd00:ec2::254",  # AWS instance metadata (IMDS) over IPv6
            "fd00:ec2::23",  # AWS EKS Pod Identity agent over IPv6
            "100.100.100.200",  # Alibaba Cloud
            "192.0.0.192",  # Oracle Cloud, legacy
            "168.63.129.16",  # Azure WireServer (VM agent and extension settings; also the platform DNS)
        ],
    )
)
NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052 well-known prefix; IPv4 in the last 32 bits


@dataclass
class Tunnel:
    """What the gateway knows about one client connection, for its records."""

    id: str
    source_address: str
    source_port: int
    started: float
    request: ConnectRequest | None = None
    destination_address: str | None = None
    bytes_up: int = 0
    bytes_down: int = 0
    server_names: list[str] = field(default_factory=list)
    error: str = ""


class Inspector:
    """Watches the first client bytes to decide between HTTP records, SNI, or nothing."""

    def __init__(self, tunnel: Tunnel, sink: Sink, clock: Callable[[], float] = time.time):
        self._tunnel = tunnel
        self._sink = sink
        self._clock = clock
        self._http: HttpObserver | None = None
        self._tls_buffer: bytearray | None = None
        self._tls_hello = tls.HelloReader()  # goes on where the last chunk left off
        self._decided = False
        self._lines: RequestLines | None = None  # how request records are written

    def client_data(self, data: bytes) -> None:
        self._tunnel.bytes_up += len(data)
        if not self._decided:
            self._decide(data)
        http = self._http
        if http is not None:
            try:
                http.client_data(data)
            except Exception:  # observation must never break the relay
                self._stopped()
        elif self._tls_buffer is not None:
            self._read_sni(data)

    def server_data(self, data: bytes) -> None:
        self._tunnel.bytes_down += len(data)
        http = self._http
        if http is not None:
            try:
                exchanges = http.server_data(data)
            except Exception:
                self._stopped()
                return
            if exchanges:
                self._emit(exchanges)

    def _stopped(self) -> None:
        """A parser bug: log it and stop observing this tunnel."""
        log.exception("tunnel %s: HTTP observation stopped", self._tunnel.id)
        self._http = None

    def close(self) -> None:
        if self._http is not None:
            self._emit(self._http.close())

    def _decide(self, data: bytes) -> None:
        self._decided = True
        request = self._tunnel.request
        assert request is not None
        if request.protocol != "https" and looks_like_http(data):
            self._http = HttpObserver(default_host=request.host, clock=self._clock)
        elif request.protocol == "https" or tls.looks_like_tls(data):
            self._tls_buffer = bytearray()

    def _read_sni(self, data: bytes) -> None:
        assert self._tls_buffer is not None
        self._tls_buffer += data
        try:
            name = tls.server_name(self._tls_hello.read(self._tls_buffer))
            self._tunnel.server_names = [name.lower().rstrip(".")] if name else []
        except tls.NeedMore:
            return
        except tls.NotClientHello:
            pass
        self._tls_buffer = None

    def _emit(self, exchanges: list) -> None:
        tunnel = self._tunnel
        assert tunnel.request is not None
        for exchange in exchanges:
            duration = None if exchange.finished is None else (exchange.finished - exchange.started) * 1000
            if self._sink is emit:  # the record's line written directly, as emit would
                lines = self._lines
                if lines is None:
                    lines = self._lines = RequestLines(
                        tunnel.id, tunnel.source_address, tunnel.source_port, tunnel.request.source
                    )
                write_line(
                    lines.line(
                        exchange.started,
                        exchange.host,
                        exchange.path,
                        exchange.method,
                        exchange.status,
                        None if duration is None else round(duration, 3),
                        exchange.response_bytes,
                    )
                )
                continue
            self._sink(
                accesslog.request_record(
                    connection_id=tunnel.id,
                    request_time=exchange.started,
                    source_address=tunnel.source_address,
                    source_port=tunnel.source_port,
                    host=exchange.host,
                    path=exchange.path,
                    method=exchange.method,
                    status=exchange.status,
                    source_identity=tunnel.request.source,
                    duration_ms=None if duration is None else round(duration, 3),
                    response_bytes=exchange.response_bytes,
                )
            )


class Observations:
    """Copies of the relayed chunks, observed in batches: each chunk is written on at once, and
    the observing and records of the chunks that arrived within ``delay`` seconds run together,
    in arrival order (less CPU per request: docs/benchmark.md, fifth round). A chunk is observed
    with the time it arrived (``clock``), so the records' times do not move; a record reaches
    the log at most ``delay`` after its response (or at once when its tunnel ends)."""

    DELAY = 0.01
    MAX_QUEUED = 1 << 20  # bytes waiting: beyond that, observed at once

    def __init__(self, delay: float = DELAY) -> None:
        self.delay = delay
        self._queue: list[tuple[Callable[[bytes], None], bytes, float]] = []
        self._queued = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._now: float | None = None  # the arrival time of the chunk being observed

    def clock(self) -> float:
        now = self._now
        return time.time() if now is None else now

    def later(self, observe: Callable[[bytes], None]) -> Callable[[bytes], None]:
        queue = self._queue
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # (tests run one loop after another)
            self.run()
            self._loop = loop
        delay, run, now = self.delay, self.run, time.time

        def queued(data: bytes) -> None:
            if not queue:
                loop.call_later(delay, run)
            queue.append((observe, data, now()))
            self._queued += len(data)
            if self._queued > self.MAX_QUEUED:
                run()

        return queued

    def run(self) -> None:
        """Observe what is queued, in the order it arrived."""
        queue = self._queue
        while queue:
            batch = queue[:]
            queue.clear()
            self._queued = 0
            for observe, data, arrived in batch:
                self._now = arrived
                try:
                    observe(data)
                except Exception:  # observation must never break the relay (nor the next tunnel's)
                    log.exception("observing a tunnel's bytes failed")
            self._now = None


class Gateway:
    def __init__(self, connect_timeout: float = 5.0, sink: Sink = emit, allow_loopback: bool | None = None):
        self.connect_timeout = connect_timeout
        self.sink = sink
        self.allow_loopback = allow_loopback  # None: only when listening on a loopback address
        self._ports: set[int] = set()
        self._open: dict[asyncio.Task, list[Channel]] = {}
        self._observations = Observations()

    async def start(self, host: str = "0.0.0.0", port: int = GATEWAY_PORT) -> asyncio.Server:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: Channel(on_open=self._opened), host, port, reuse_address=True, backlog=1024
        )
        self._ports.update(sock.getsockname()[1] for sock in server.sockets)
        if self.allow_loopback is None:
            self.allow_loopback = host == "localhost" or _is_loopback(host)
        return server

    def refusal(self, address: str, port: int) -> str | None:
        """Why the gateway will not connect to ``address:port``, or None."""
        ip = _reached(address)
        if port in self._ports and (ip.is_loopback or ip.is_unspecified or _is_local(str(ip))):
            return "that is the gateway itself"
        if ip.is_unspecified:
            return "unspecified address"
        if ip.is_loopback and not self.allow_loopback:
            return "loopback address"
        if ip.is_link_local:
            return "link-local address"
        if ip in CLOUD_METADATA:
            return "cloud metadata address"
        return None

    def _opened(self, channel: Channel) -> None:
        task = asyncio.get_running_loop().create_task(self._handle(channel))
        self._open[task] = [channel]

    async def _handle(self, channel: Channel) -> None:
        task = asyncio.current_task()
        _keepalive(channel)
        peer = channel.get_extra_info("peername") or ("", 0)
        tunnel = Tunnel(accesslog.new_connection_id(), str(peer[0]), int(peer[1]), time.time())
        try:
            await self._serve(tunnel, channel)
        except Exception as exc:  # one broken tunnel must never take the gateway down
            log.warning("tunnel %s from %s:%s failed: %r", tunnel.id, *peer[:2], exc)
        finally:
            channel.close()
            self._open.pop(task, None)  # type: ignore[arg-type]

    async def _serve(self, tunnel: Tunnel, channel: Channel) -> None:
        request = await self._read_connect(tunnel, channel)
        if request is None:
            return
        tunnel.request = request
        try:
            upstream = await self._connect(request)
        except TunnelError as exc:
            tunnel.error = str(exc)
            await _send(channel, error_response(exc.status, str(exc)))
            self._log_connection(tunnel)
            return
        _keepalive(upstream)
        self._open.get(asyncio.current_task(), []).append(upstream)  # type: ignore[arg-type]
        peer = upstream.get_extra_info("peername") or ("", 0)
        tunnel.destination_address = str(peer[0])
        observations = self._observations
        inspector = Inspector(tunnel, self.sink, observations.clock)
        try:
            channel.write(ESTABLISHED)
            await Splice(
                channel,
                upstream,
                observations.later(inspector.client_data),
                observations.later(inspector.server_data),
            ).done
        except (ConnectionError, OSError):
            pass
        finally:
            upstream.close()
            observations.run()
            inspector.close()
            self._log_connection(tunnel)

    async def _read_connect(self, tunnel: Tunnel, channel: Channel) -> ConnectRequest | None:
        try:
            head = await asyncio.wait_for(channel.read_until(b"\r\n\r\n", MAX_HEAD), HEAD_TIMEOUT)
            if head is None:
                return None
            return ConnectRequest.decode(head)
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            return None  # the client went away (or never spoke): nothing to answer
        except HeadTooLarge:
            error = TunnelError(400, f"request head larger than {MAX_HEAD} bytes")
        except TunnelError as exc:
            error = exc
        log.info("refused request from %s:%s: %s", tunnel.source_address, tunnel.source_port, error)
        await _send(channel, error_response(error.status, str(error)))
        return None

    async def _connect(self, request: ConnectRequest) -> Channel:
        """Resolve, vet every address, connect to the first permitted one that answers (the vetted
        address itself, so a second DNS answer cannot differ)."""
        target = f"{request.host}:{request.port}"
        try:
            async with asyncio.timeout(self.connect_timeout):
                addresses = await resolve(request.host, request.port)
                permitted = [a for a in addresses if not self.refusal(a, request.port)]
                if not permitted:
                    reason = self.refusal(addresses[0], request.port) if addresses else "no address"
                    raise TunnelError(403, f"refusing to connect to {target}: {reason}")
                failure: OSError | None = None
                for address in permitted:
                    try:
                        return await connect(address, request.port)
                    except OSError as exc:
                        failure = exc
                assert failure is not None
                raise failure
        except TimeoutError:
            raise TunnelError(
                504, f"connecting to {target} timed out after {self.connect_timeout:g}s"
            ) from None
        except OSError as exc:
            raise TunnelError(502, f"cannot connect to {target}: {_reason(exc)}") from None

    def _log_connection(self, tunnel: Tunnel) -> None:
        request = tunnel.request
        assert request is not None
        self.sink(
            accesslog.connection_record(
                connection_id=tunnel.id,
                start_time=tunnel.started,
                source_address=tunnel.source_address,
                source_port=tunnel.source_port,
                destination_address=tunnel.destination_address,
                destination_port=request.port,
                end_time=time.time(),
                protocol=request.protocol,
                source_identity=request.source,
                server_names=tunnel.server_names,
                bytes_up=tunnel.bytes_up,
                bytes_down=tunnel.bytes_down,
                error=tunnel.error,
            )
        )

    async def close(self, grace: float = 2.0) -> None:
        """Shut down the tunnels still open: abort their sockets and let each write its record.

        (Cancelling a stream handler task makes Python 3.11 log a spurious traceback.)
        """
        for channels in self._open.values():
            for channel in channels:
                channel.abort()
        if self._open:
            await asyncio.wait(list(self._open), timeout=grace)


def _keepalive(channel: Channel) -> None:
    """Notice peers that vanished without a FIN (a deleted pod), so their tunnels end."""
    sock = channel.get_extra_info("socket")
    if sock is None:
        return
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, KEEPALIVE_IDLE)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, KEEPALIVE_INTERVAL)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, KEEPALIVE_PROBES)


async def resolve(host: str, port: int) -> list[str]:
    """The addresses of ``host``, in resolver order, without duplicates."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@lru_cache(maxsize=1024)
def _reached(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The IP that ``address`` reaches: for IPv4-mapped and NAT64 addresses, the IPv4 one inside."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped:
            return ip.ipv4_mapped
        if ip in NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)
    return ip


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@lru_cache(maxsize=256)
def _is_local(ip: str) -> bool:
    """Whether ``ip`` is one of this host's own addresses (only those can be bound)."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((ip, 0))
        return True
    except OSError:
        return False


def _reason(exc: OSError) -> str:
    if isinstance(exc, socket.gaierror) or not exc.errno:
        return exc.strerror or str(exc)
    return os.strerror(exc.errno).lower()


async def _send(channel: Channel, data: bytes) -> None:
    try:
        channel.write(data)
        await channel.drain()
    except (ConnectionError, OSError):
        pass
