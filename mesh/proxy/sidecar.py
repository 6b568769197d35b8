"""The transparent sidecar: the outbound listener and its config.

The listener exists only while the config's mode is not ``disabled`` (closed listener: apps
get "connection refused"). Each accepted connection is served by a ``ClientConnection``
(mesh/proxy/connection.py); a new config closes those it no longer allows.
"""

from __future__ import annotations

import asyncio

from mesh.api.proxyconfig import Identity, Mode, ProxyConfig, closed
from mesh.proxy import http1
from mesh.proxy.connection import ClientConnection
from mesh.proxy.log import emit
from mesh.proxy.origdst import OriginalDestination, so_original_dst
from mesh.proxy.stream import Channel

PROXY_PORT = 15001
CONNECT_TIMEOUT = 10.0
REQUEST_HEAD_TIMEOUT = 10.0  # from the first byte of a request head to its empty line (slowloris)
KEEPALIVE_IDLE_TIMEOUT = 120.0  # an HTTP connection with no request this long is closed


class Sidecar:
    def __init__(
        self,
        identity: Identity | None,
        port: int = PROXY_PORT,
        host: str | None = None,
        gateway_timeout: float = 1.0,
        original_destination: OriginalDestination = so_original_dst,
        connect_timeout: float = CONNECT_TIMEOUT,
    ):
        self.identity = identity
        self.config = closed(identity or Identity("unknown", "unknown"))
        self.identity_text = str(self.config.identity)
        self.port = port
        self.host = host
        self.gateway_timeout = gateway_timeout
        self.connect_timeout = connect_timeout
        self.original_destination = original_destination
        self.server: asyncio.Server | None = None
        self.listen_port = port
        self.head_timeout = REQUEST_HEAD_TIMEOUT
        self.idle_timeout = KEEPALIVE_IDLE_TIMEOUT
        self.connections: set[ClientConnection] = set()

    async def apply(self, config: ProxyConfig) -> None:
        if self.identity and config.identity != self.identity:
            emit("config_rejected", version=config.version, reason=f"config is for {config.identity}")
            return
        self.config = config
        self.identity_text = str(config.identity)
        emit(
            "config",
            identity=str(config.identity),
            version=config.version,
            mode=config.mode.value,
            rules=len(config.rules),
            gateway=str(config.gateway) if config.gateway else None,
        )
        await self.sync_listener()
        self.recheck_connections()

    def recheck_connections(self) -> None:
        """Fail closed on a new config: close every connection it no longer allows (all of them
        when egress is disabled); HTTP requests are decided one by one anyway."""
        for connection in list(self.connections):
            reason = connection.denied_now()
            if reason:
                emit("connection_closed", client=connection.client, reason=f"config changed: {reason}")
                connection.abort()

    async def sync_listener(self) -> None:
        """Open the listener unless egress is disabled; close it when it is."""
        wanted = self.config.mode != Mode.DISABLED
        if wanted and self.server is None:
            self.server = await self._listen()
            self.listen_port = self.server.sockets[0].getsockname()[1]
            emit("listener", state="open", port=self.listen_port)
        elif not wanted and self.server is not None:
            self.server.close()
            self.server = None
            emit("listener", state="closed", port=self.port)

    async def _listen(self) -> asyncio.Server:
        loop = asyncio.get_running_loop()

        def channel() -> Channel:
            return Channel(on_open=self._opened)

        if self.host is not None:
            return await loop.create_server(channel, self.host, self.port, backlog=1024)
        try:
            return await loop.create_server(channel, None, self.port, backlog=1024)
        except OSError:  # no IPv6 in this network namespace
            return await loop.create_server(channel, "0.0.0.0", self.port, backlog=1024)

    def close(self) -> None:
        """Stop listening and drop every open connection."""
        if self.server is not None:
            self.server.close()
            self.server = None
        for connection in list(self.connections):
            connection.abort()

    def _opened(self, channel: Channel) -> None:
        connection = ClientConnection(self, channel)
        self.connections.add(connection)
        asyncio.get_running_loop().create_task(self._serve(connection))

    async def _serve(self, connection: ClientConnection) -> None:
        try:
            await connection.run()
        except (OSError, asyncio.IncompleteReadError, http1.BadMessage, TimeoutError):
            pass  # the client or the upstream went away; nothing useful to tell anyone
        except asyncio.CancelledError:
            pass  # shutting down; ending quietly keeps asyncio from logging the cancellation
        except Exception as exc:  # a bug must cost one connection, not the proxy
            emit("connection_error", client=connection.client, reason=repr(exc))
        finally:
            self.connections.discard(connection)
            connection.close()
            connection.writer.close()
