"""The sidecar's readiness endpoint: ``GET /healthz/ready`` (port 15021 when injected).

It answers ``503 no config yet`` until a ProxyConfig for the sidecar's identity has been applied,
then ``200 ready`` (the last good config stays in force, so it stays ready). The injected native
sidecar's startup and readiness probes point here; the kubelet starts the app containers only
after the startup probe passed. The probe reaches the pod from outside (inbound traffic is never
redirected) and the answers leave from the sidecar's UID, which the interception rules let out.
"""

from __future__ import annotations

from aiohttp import web

from mesh.api.proxyconfig import READINESS_PATH, ProxyConfig
from mesh.proxy.log import emit


class Readiness:
    """Whether a config has been applied, served over HTTP."""

    def __init__(self) -> None:
        self.version: str | None = None
        self._runner: web.AppRunner | None = None

    @property
    def ready(self) -> bool:
        return self.version is not None

    def applied(self, config: ProxyConfig) -> None:
        if not self.ready:
            emit("ready", version=config.version)
        self.version = config.version

    async def _answer(self, _: web.Request) -> web.Response:
        if self.ready:
            return web.Response(text=f"ready (config {self.version})\n")
        return web.Response(status=503, text="no config yet\n")

    async def start(self, port: int, host: str | None = None) -> None:
        """Listen on ``host`` (default: every address, IPv4 only where IPv6 is missing); OSError if taken."""
        app = web.Application()
        app.router.add_get(READINESS_PATH, self._answer)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        try:
            try:
                await web.TCPSite(self._runner, host, port).start()
            except OSError:
                if host is not None:
                    raise
                await web.TCPSite(self._runner, "0.0.0.0", port).start()  # no IPv6 in this namespace
        except OSError:
            await self.close()
            raise

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
