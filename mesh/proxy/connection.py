"""One client connection of the sidecar: dispatch by protocol, and the HTTP exchange.

Each accepted connection is handled as HTTP, TLS or TCP according to the rules for its original
destination port, or by sniffing its first bytes. HTTP requests are decided one by one; the
following requests of a keep-alive connection are served by ``FastPath`` (mesh/proxy/fastpath.py)
from the protocol callbacks while it can.
"""

from __future__ import annotations

import asyncio
import re
import socket
from typing import TYPE_CHECKING, Any

from mesh.api.proxyconfig import Mode, Protocol, ProxyConfig
from mesh.api.tunnel import ConnectRequest
from mesh.proxy import http1, tls
from mesh.proxy.fastpath import FastPath, Step
from mesh.proxy.log import emit, encode, quote, timestamp, write_line
from mesh.proxy.match import BadHost, Decision, HttpRequest, decide, handling, needs_request, normalise_host
from mesh.proxy.origdst import NoOriginalDestination
from mesh.proxy.stream import Channel
from mesh.proxy.upstream import Upstream, UpstreamError, open_direct, open_tunnel, splice

if TYPE_CHECKING:
    from mesh.proxy.sidecar import Sidecar

SNIFF_TIMEOUT = 0.5  # a client that says nothing this long is treated as plain TCP
HELLO_TIMEOUT = 10.0
LINGER_SECONDS = 1.0
_METHOD = re.compile(rb"^[A-Z]{1,16}")


class ClientConnection:
    def __init__(self, sidecar: Sidecar, channel: Channel):
        self.sidecar = sidecar
        self.src = self.writer = channel  # read from and answer on the same connection
        peer = channel.get_extra_info("peername") or ("?", 0)
        self.client = f"[{peer[0]}]:{peer[1]}" if ":" in str(peer[0]) else f"{peer[0]}:{peer[1]}"
        self.dst_ip = ""
        self.dst_port = 0
        self.upstreams: set[Upstream] = set()
        self.upstream: Upstream | None = None  # the HTTP requests' upstream connection, kept alive
        # (config, host, decision, encoded record middle) of the last request, see decide_request
        self.last_decision: tuple[ProxyConfig, str | None, Decision, str] | None = None
        self.fast = FastPath(self)
        self.relaying: tuple[Protocol, str | None] | None = None  # set once bytes flow unparsed
        self.deadline: float | None = None  # when the current wait for the client times out
        self.timer: asyncio.TimerHandle | None = None
        self.loop = asyncio.get_running_loop()
        self.timer_at = 0.0

    def close(self) -> None:
        for upstream in self.upstreams:
            upstream.close()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def watch(self, seconds: float | None) -> None:
        """Time out the client's waits ``seconds`` from now (None: no timeout). One timer per
        connection, moved lazily: setting a later deadline costs no timer operation."""
        if seconds is None:
            self.deadline = None
            return
        loop = self.loop
        self.deadline = deadline = loop.time() + seconds
        if self.timer is None or self.timer_at > deadline:
            if self.timer is not None:
                self.timer.cancel()
            self.timer, self.timer_at = loop.call_at(deadline, self._expire), deadline

    def _expire(self) -> None:
        self.timer = None
        if self.deadline is None:
            return
        loop = self.loop
        if loop.time() < self.deadline:
            self.timer, self.timer_at = loop.call_at(self.deadline, self._expire), self.deadline
            return
        self.deadline = None
        if self.fast.active:  # only waiting for a next request, which did not come
            self.fast.hand_over(Step.END)
        else:
            self.src.interrupt(TimeoutError())

    def abort(self) -> None:
        self.close()
        self.writer.close()

    def denied_now(self) -> str | None:
        """Why the current config would not allow this connection any more, or None."""
        if self.config.mode == Mode.DISABLED:
            return "egress disabled"
        if self.relaying is None:
            return None
        protocol, name = self.relaying
        decision = decide(self.config, protocol, self.dst_port, self.dst_ip, name)
        return None if decision.allowed else decision.reason

    @property
    def config(self) -> ProxyConfig:
        return self.sidecar.config

    def log(self, protocol: Protocol | str, host: str | None, decision: Decision, **extra: Any) -> None:
        """Write the decision record (docs/proxy.md); ``extra`` fields that are None are left out."""
        record = self.record(protocol, host, decision)
        for key, value in extra.items():
            if value is not None:
                record[key] = value
        write_line(encode(record))

    def record(self, protocol: Protocol | str, host: str | None, decision: Decision) -> dict[str, Any]:
        """The decision record without its protocol's extra fields, built directly as ``emit`` would."""
        address = f"[{self.dst_ip}]" if ":" in self.dst_ip else self.dst_ip
        record = {
            "time": timestamp(),
            "event": "decision",
            "identity": self.sidecar.identity_text,
            "protocol": str(protocol),
            "host": host or self.dst_ip,
            "port": self.dst_port,
            "decision": "allow" if decision.allowed else "deny",
            "reason": decision.reason,
            "client": self.client,
            "destination": f"{address}:{self.dst_port}",
        }
        if decision.allowed:
            record["route"] = f"gateway {decision.gateway}" if decision.gateway else "direct"
        if decision.target:
            record["target"] = decision.target
        if decision.egress:
            record["egress"] = decision.egress
        return record

    async def run(self) -> None:
        sock: socket.socket = self.writer.get_extra_info("socket")
        try:
            self.dst_ip, self.dst_port = self.sidecar.original_destination(sock)
        except NoOriginalDestination as exc:
            emit("connection_refused", client=self.client, reason=str(exc))
            return
        local = self.writer.get_extra_info("sockname") or ("", 0)
        if self.dst_port == self.sidecar.listen_port and self.dst_ip in (local[0], "127.0.0.1", "::1"):
            emit("connection_refused", client=self.client, reason="connection was not redirected")
            return
        if self.config.mode == Mode.DISABLED:
            self.log("tcp", None, Decision(False, "egress disabled"))
            return
        protocol = handling(self.config, self.dst_port) or await self.sniff()
        if protocol == Protocol.HTTP:
            await self.serve_http()
        elif protocol == Protocol.HTTPS:
            await self.serve_tls()
        else:
            await self.serve_tcp()

    async def sniff(self) -> Protocol:
        """Classify by the first bytes: an HTTP/1.x request line, a TLS ClientHello, or TCP."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SNIFF_TIMEOUT
        while True:
            data = bytes(self.src.buffer[:17])
            if tls.looks_like_tls(data):
                return Protocol.HTTPS
            method = _METHOD.match(data)
            if data and (not method or method.end() < len(data)):
                return Protocol.HTTP if method and data[method.end()] == 0x20 else Protocol.TCP
            if len(data) >= 17 or self.src.eof:
                return Protocol.TCP
            try:
                if not await asyncio.wait_for(self.src.fill(), max(0.0, deadline - loop.time())):
                    return Protocol.TCP
            except TimeoutError:
                return Protocol.TCP

    async def open_upstream(self, decision: Decision, protocol: Protocol) -> Upstream:
        key = (decision.target, self.dst_port, decision.gateway)
        if decision.gateway:
            request = ConnectRequest(decision.target, self.dst_port, str(self.config.identity), str(protocol))
            channel = await open_tunnel(decision.gateway, request, self.sidecar.gateway_timeout)
        else:
            channel = await open_direct(decision.target, self.dst_port, self.sidecar.connect_timeout)
        upstream = Upstream(key, channel)
        self.upstreams.add(upstream)
        return upstream

    async def answer(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def answer_and_close(self, data: bytes) -> None:
        """Send a final answer, then discard what the client still sends for a moment, so the
        kernel does not reset the connection (and lose the answer) over unread bytes."""
        await self.answer(data)
        if self.writer.can_write_eof():
            self.writer.write_eof()
        try:
            async with asyncio.timeout(LINGER_SECONDS):
                while await self.src.read_some():
                    pass
        except TimeoutError:
            pass

    async def serve_http(self) -> None:
        """Serve requests until the connection ends: ``FastPath`` in the protocol callbacks while it
        can, this task wherever waiting is needed (see mesh/proxy/fastpath.py)."""
        try:
            while True:
                handover = await self.fast.run(self.upstream)
                if handover.drain:
                    await self.writer.drain()
                step = handover.step
                if step is Step.REQUEST:
                    keep = await self.serve_request()
                elif step is Step.FORWARD:
                    assert handover.request is not None and handover.decision is not None
                    keep = await self.forward(handover.request, handover.decision)
                elif step is Step.RESPONSE:
                    assert handover.request is not None and self.upstream is not None
                    keep = self.kept(*await self.relay_response(handover.request, self.upstream.channel))
                elif step is Step.BODY:
                    assert handover.request is not None and handover.response is not None
                    assert self.upstream is not None
                    keep = self.kept(
                        *await self.relay_response_body(
                            handover.request, handover.response, self.upstream.channel, handover.remaining
                        )
                    )
                else:
                    return
                if not keep:
                    return
        finally:
            self.drop_upstream()

    async def serve_request(self) -> bool:
        """Read, decide and serve one request; False when the connection is to end."""
        try:
            raw = await self.read_request_head()
            if raw is None:
                return False
            request = http1.parse_request(raw)
        except TimeoutError:
            reason = f"request head not complete within {self.sidecar.head_timeout:g}s"
            self.log(Protocol.HTTP, None, Decision(False, reason))
            await self.answer_and_close(http1.status_response(408, "Request Timeout", reason))
            return False
        except ValueError as exc:  # BadMessage, or anything else a malformed head provokes
            self.log(Protocol.HTTP, None, Decision(False, f"bad request: {exc}"))
            await self.answer_and_close(http1.status_response(400, "Bad Request", f"bad request: {exc}"))
            return False
        decision = self.decide_request(request)
        if not decision.allowed:
            if request.expect_continue and request.framing != http1.Framing.NONE:
                await self.answer_and_close(http1.forbidden(request.method))
                return False
            await http1.relay_body(self.src, None, request.framing, request.length)
            await self.answer(http1.forbidden(request.method))
            return request.keep_alive
        return await self.forward(request, decision)

    async def forward(self, request: http1.Request, decision: Decision) -> bool:
        """Send an allowed request upstream and relay the response; False when the connection is to end."""
        key = (decision.target, self.dst_port, decision.gateway)
        if self.upstream is None or self.upstream.key != key or self.upstream.channel.eof:
            self.drop_upstream()  # (an upstream that has ended since the last exchange: a new one)
            try:
                self.upstream = await self.open_upstream(decision, Protocol.HTTP)
            except UpstreamError as exc:
                emit("upstream_error", client=self.client, host=request.host, reason=str(exc))
                status = (503, "Service Unavailable") if exc.via_gateway else (502, "Bad Gateway")
                await self.answer_and_close(http1.status_response(*status, str(exc)))
                return False
        return self.kept(*await self.exchange(request, self.upstream))

    def kept(self, keep_client: bool, keep_upstream: bool) -> bool:
        """After an exchange: drop the upstream connection unless it is kept; whether the client's is."""
        if not keep_upstream:
            self.drop_upstream()
        return keep_client

    def drop_upstream(self) -> None:
        upstream, self.upstream = self.upstream, None
        if upstream is not None:
            self.fast.release_upstream()
            upstream.close()
            self.upstreams.discard(upstream)

    def decide_request(self, request: http1.Request) -> Decision:
        """Decide an HTTP request and write its decision record.

        Where no rule for the port looks at more than the host (no HTTPRouteGroup matches), the
        decision and all of its record but time, method and path depend only on config and host:
        both are kept for the connection's next request with the same host."""
        config, host = self.sidecar.config, request.host
        cached = self.last_decision
        if cached is None or cached[0] is not config or cached[1] != host:
            if needs_request(config, self.dst_port):
                facts = HttpRequest(request.method, request.target, tuple(request.head.headers))
                decision = decide(config, Protocol.HTTP, self.dst_port, self.dst_ip, host, facts)
                self.log(Protocol.HTTP, host, decision, method=request.method, path=request.target)
                return decision
            decision = decide(config, Protocol.HTTP, self.dst_port, self.dst_ip, host)
            cached = self.last_decision = (config, host, decision, self.record_middle(host, decision))
        write_line(
            f'{{"time": "{timestamp()}{cached[3]}, "method": {quote(request.method)}, '
            f'"path": {quote(request.target)}}}'
        )
        return cached[2]

    def record_middle(self, host: str | None, decision: Decision) -> str:
        """The encoded decision record of an HTTP request between its time and its method."""
        record = self.record(Protocol.HTTP, host, decision)
        record["time"] = ""
        return encode(record)[len('{"time": "') : -1]

    async def read_request_head(self) -> bytes | None:
        """The next request head; None when the client ends or idles out between requests.
        Raises TimeoutError when a started head trickles in too slowly."""
        src = self.src
        if not src.buffer:
            self.watch(self.sidecar.idle_timeout)
            try:
                if not await src.fill():
                    return None
            except TimeoutError:
                return None
        end = src.buffer.find(b"\r\n\r\n", 0, http1.MAX_HEAD + 4)
        if end >= 0:  # the usual case: the whole head came at once
            self.watch(None)
            return src.take(end + 4)
        self.watch(self.sidecar.head_timeout)
        try:
            return await http1.read_head(src)
        finally:
            self.watch(None)

    async def exchange(self, request: http1.Request, upstream: Upstream) -> tuple[bool, bool]:
        """Forward one request and relay its response; returns (keep client, keep upstream)."""
        first, remaining = http1.with_buffered_body(
            self.src, request.head.raw, request.framing, request.length
        )
        up = upstream.channel
        up.write(first)
        body = None
        if request.framing == http1.Framing.CHUNKED or remaining:
            body = asyncio.create_task(http1.relay_body(self.src, up, request.framing, remaining))
            # A client that goes away mid-body must not leave us waiting for an answer forever.
            body.add_done_callback(lambda t: t.cancelled() or t.exception() is None or up.close())
        try:
            return await self.relay_response(request, up, body)
        finally:
            if body is not None and not body.done():
                body.cancel()

    async def relay_response(
        self, request: http1.Request, up: Channel, body: asyncio.Task | None = None
    ) -> tuple[bool, bool]:
        """Relay the response to ``request`` (sent, its body still going out in ``body`` if any)."""
        answered = False
        while True:
            try:
                raw = await http1.read_head(up)
                if raw is None:
                    raise http1.BadMessage("upstream closed the connection without answering")
                response = http1.parse_response(raw, request.method)
            except (http1.BadMessage, asyncio.IncompleteReadError, OSError) as exc:
                bad_body = body is not None and body.done() and not body.cancelled() and body.exception()
                if isinstance(bad_body, http1.BadMessage):
                    self.log(Protocol.HTTP, request.host, Decision(False, f"bad request: {bad_body}"))
                    if not answered:
                        await self.answer_and_close(
                            http1.status_response(400, "Bad Request", f"bad request: {bad_body}")
                        )
                    return False, False
                if not answered:
                    emit("upstream_error", client=self.client, host=request.host, reason=str(exc))
                    reply = http1.status_response(502, "Bad Gateway", f"bad upstream response: {exc}")
                    await self.answer(reply)
                return False, False
            answered = True
            if response.status >= 200 and response.status != 101:
                break
            await self.answer(raw)
            if response.status == 101:
                self.relaying = (Protocol.HTTP, request.host)
                await splice(self.src, up)
                return False, False
        first, remaining = http1.with_buffered_body(up, raw, response.framing, response.length)
        self.writer.write(first)
        return await self.relay_response_body(request, response, up, remaining, body)

    async def relay_response_body(
        self,
        request: http1.Request,
        response: http1.Response,
        up: Channel,
        remaining: int,
        body: asyncio.Task | None = None,
    ) -> tuple[bool, bool]:
        """Relay what is left of the response body once its head and ``with_buffered_body`` went out."""
        if remaining or response.framing in (http1.Framing.CHUNKED, http1.Framing.UNTIL_CLOSE):
            await http1.relay_body(up, self.writer, response.framing, remaining)
        await self.writer.drain()
        if body is not None:
            done, _ = await asyncio.wait({body}, timeout=1.0)
            if not done or body.exception() is not None:
                return False, False
        return request.keep_alive and response.keep_alive, response.keep_alive

    async def serve_tls(self) -> None:
        try:
            hello = await asyncio.wait_for(tls.read_client_hello(self.src), HELLO_TIMEOUT)
            sni = tls.server_name(hello)
            name = normalise_host(sni) if sni else None
        except (tls.NotClientHello, BadHost, TimeoutError) as exc:
            self.log(Protocol.HTTPS, None, Decision(False, f"bad ClientHello: {exc}"))
            return
        decision = decide(self.config, Protocol.HTTPS, self.dst_port, self.dst_ip, name)
        self.log(Protocol.HTTPS, name, decision, sni=sni)
        if decision.allowed:
            await self.relay(decision, Protocol.HTTPS, name)

    async def serve_tcp(self) -> None:
        decision = decide(self.config, Protocol.TCP, self.dst_port, self.dst_ip, None)
        self.log(Protocol.TCP, None, decision)
        if decision.allowed:
            await self.relay(decision, Protocol.TCP, None)

    async def relay(self, decision: Decision, protocol: Protocol, name: str | None) -> None:
        try:
            upstream = await self.open_upstream(decision, protocol)
        except UpstreamError as exc:
            emit("upstream_error", client=self.client, host=decision.target, reason=str(exc))
            return
        self.relaying = (protocol, name)
        try:
            await splice(self.src, upstream.channel)
        finally:
            upstream.close()
