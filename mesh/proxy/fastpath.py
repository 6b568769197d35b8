"""The sidecar's HTTP hot path: the following requests of a keep-alive connection served from the
protocol callbacks, with no task waking per request.

``ClientConnection.serve_http`` (one task per connection) serves whatever needs waiting: opening the
upstream connection (the first request, or a new Host), request bodies not all there yet,
100-continue, interim and upgrade responses, chunked or read-until-close responses, heads arriving in
pieces, errors, timeouts of a started head, a client that does not read. Between those, it hands
the connection to ``FastPath`` and sleeps. ``FastPath`` serves the ordinary exchange in the
callbacks: a whole request head (with all of its Content-Length body, if any) in what the client
sent, decided and logged by the same code as in the task, written to the kept upstream connection
in one write; then the response head, framed by the same parser, and its Content-Length body (or
none) passed to the client as they arrive. At anything else it stops and hands the connection back
to the task at the same point of the exchange (``Handover``), with every byte it did not use left
in the channels' buffers, so that the task goes on exactly as if it had done the exchange itself.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from mesh.proxy import http1
from mesh.proxy.match import Decision

if TYPE_CHECKING:
    from mesh.proxy.connection import ClientConnection
    from mesh.proxy.stream import Channel
    from mesh.proxy.upstream import Upstream

_NONE, _LENGTH, _CHUNKED = http1.Framing.NONE, http1.Framing.LENGTH, http1.Framing.CHUNKED
_HEAD_END = b"\r\n\r\n"
_HEAD_LIMIT = http1.MAX_HEAD + len(_HEAD_END)
_IDLE, _RESPONSE_HEAD, _RESPONSE_BODY = range(3)


class Step(Enum):
    """Where the task takes over."""

    REQUEST = "read the next request"
    FORWARD = "forward a decided request (opening the upstream connection when needed)"
    RESPONSE = "read the response to a request already sent"
    BODY = "relay the rest of a Content-Length response body"
    END = "close the connection"


@dataclass(slots=True)
class Handover:
    step: Step
    request: http1.Request | None = None
    decision: Decision | None = None
    response: http1.Response | None = None
    remaining: int = 0
    drain: bool = False  # wait until the client has taken what was written first


class FastPath:
    __slots__ = (
        "connection", "client", "upstream", "done", "state", "request", "response", "remaining", "routed"
    )  # fmt: skip

    def __init__(self, connection: ClientConnection):
        self.connection = connection
        self.client: Channel = connection.src
        self.upstream: Channel | None = None
        self.done: asyncio.Future[Handover] | None = None  # set while the callbacks serve
        self.state = _IDLE
        self.request: http1.Request | None = None
        self.response: http1.Response | None = None
        self.remaining = 0  # response body bytes still to pass on
        self.routed: Decision | None = None  # a decision already found to go to ``upstream``

    @property
    def active(self) -> bool:
        return self.done is not None

    def run(self, upstream: Upstream | None) -> asyncio.Future[Handover]:
        """Serve from the callbacks until the task is needed; the future says where it takes over."""
        self.done = done = asyncio.get_running_loop().create_future()
        self.state = _IDLE
        self.routed = None
        self.client._driver = self.client_data
        if upstream is not None:
            self.upstream = upstream.channel
            self.upstream._driver = self.upstream_data
        self.next_request()
        return done

    def hand_over(self, step: Step, **details: object) -> None:
        self.client._driver = None
        if self.upstream is not None:
            self.upstream._driver = None
            self.upstream = None
        self.state = _IDLE
        self.request = self.response = None
        done, self.done = self.done, None
        if done is not None and not done.done():
            done.set_result(Handover(step, **details))  # type: ignore[arg-type]

    def release_upstream(self) -> None:
        """The upstream connection is being dropped: stop listening to it."""
        if self.upstream is not None:
            self.upstream._driver = None
            self.upstream = None

    # ---------------------------------------------------------------- client side

    def client_data(self, data: bytes) -> None:
        if not data:  # end of stream: the task tells a clean end from a truncated head
            if self.state == _IDLE:
                self.hand_over(Step.REQUEST)
            return  # while a response is on its way: looked at when it is complete
        if self.state != _IDLE or self.client.buffer:
            self.client.keep(data)  # pipelined: served after the current response
            return
        self.serve(data)

    def next_request(self) -> None:
        client = self.client
        if client.buffer:
            self.serve(client.take(len(client.buffer)))
        elif client.eof:
            self.hand_over(Step.REQUEST)
        else:
            self.connection.watch(self.connection.sidecar.idle_timeout)

    def serve(self, data: bytes) -> None:
        """Serve the requests in ``data`` (the client's unread bytes, in order) while they are whole."""
        connection, client = self.connection, self.client
        while True:
            end = data.find(_HEAD_END, 0, _HEAD_LIMIT)
            if end < 0:
                client.keep(data)
                self.hand_over(Step.REQUEST)  # a head in pieces, too large, or not a head at all
                return
            connection.deadline = None  # connection.watch(None): a whole head is here
            cut = end + 4
            try:
                request = http1.parse_request(data if cut == len(data) else data[:cut])
            except ValueError:
                client.keep(data)
                self.hand_over(Step.REQUEST)  # the task refuses it, with the same record and answer
                return
            framing = request.framing
            if request.expect_continue or framing is _CHUNKED or len(data) - cut < request.length:
                client.keep(data)
                self.hand_over(Step.REQUEST)
                return
            decision = connection.decide_request(request)
            done = cut + request.length
            if not decision.allowed:
                client.write(http1.forbidden(request.method))
                if not request.keep_alive:
                    self.hand_over(Step.END, drain=True)
                    return
                data = data[done:]
                if client._drained is not None or client._closed:
                    if data:
                        client.keep(data)
                    self.hand_over(Step.REQUEST, drain=True)
                    return
                if not data:
                    self.next_request()
                    return
                continue
            upstream = connection.upstream
            up = self.upstream
            if (
                upstream is None
                or up is not upstream.channel
                or up.buffer
                or up.eof
                or (
                    decision is not self.routed  # (the connection's cached decision, mostly)
                    and upstream.key != (decision.target, connection.dst_port, decision.gateway)
                )
            ):
                client.keep(data[cut:])  # the body, if any, and what follows: the task forwards them
                self.hand_over(Step.FORWARD, request=request, decision=decision)
                return
            self.routed = decision
            transport = up.transport  # open: a closed channel has seen its end (up.eof)
            assert transport is not None
            if done == len(data):
                transport.write(data)
            else:
                transport.write(data[:done])
                client.keep(data[done:])
            self.request = request
            self.state = _RESPONSE_HEAD
            return

    # ---------------------------------------------------------------- upstream side

    def upstream_data(self, data: bytes) -> None:
        up = self.upstream
        assert up is not None
        state = self.state
        if state == _RESPONSE_BODY:
            if not data:
                details = {"request": self.request, "response": self.response, "remaining": self.remaining}
                self.hand_over(Step.BODY, **details)
                return
            remaining = self.remaining
            if len(data) < remaining:
                self.remaining = remaining - len(data)
                self.client.write(data)
                self.client.hold_until_drained(up)
                return
            if len(data) == remaining:
                self.client.write(data)
            else:
                self.client.write(data[:remaining])
                up.keep(data[remaining:])  # the next exchange finds them, as the task would
            self.finish()
            return
        if state != _RESPONSE_HEAD:
            if data:
                up.keep(data)  # unasked-for bytes: the next exchange finds them, as the task would
            return
        request = self.request
        assert request is not None
        if not data:
            self.hand_over(Step.RESPONSE, request=request)
            return
        end = data.find(_HEAD_END, 0, _HEAD_LIMIT)
        if end < 0:
            up.keep(data)
            self.hand_over(Step.RESPONSE, request=request)
            return
        cut = end + 4
        try:
            response = http1.parse_response(data if cut == len(data) else data[:cut], request.method)
        except ValueError:
            response = None
        if response is None or response.status < 200 or response.framing not in (_NONE, _LENGTH):
            up.keep(data)  # interim, upgrade, chunked, until close or refused: the task relays it
            self.hand_over(Step.RESPONSE, request=request)
            return
        self.response = response
        length = response.length
        if len(data) - cut <= length:
            self.client.write(data)
            self.remaining = length - (len(data) - cut)
        else:
            self.client.write(data[: cut + length])
            up.keep(data[cut + length :])
            self.remaining = 0
        if self.remaining:
            self.state = _RESPONSE_BODY
            self.client.hold_until_drained(up)
        else:
            self.finish()

    def finish(self) -> None:
        """The response is passed on: on to the next request (as ``ClientConnection.exchange`` ends)."""
        request, response, client = self.request, self.response, self.client
        assert request is not None and response is not None
        self.state = _IDLE
        self.request = self.response = None
        if not response.keep_alive:
            self.connection.drop_upstream()
        if not (request.keep_alive and response.keep_alive):
            self.hand_over(Step.END, drain=True)
        elif client._drained is not None or client._closed:
            self.hand_over(Step.REQUEST, drain=True)
        else:
            self.next_request()
