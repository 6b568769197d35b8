"""Where the sidecar's ProxyConfig comes from: a local file, or the controller's config server.

Both sources hand every valid new document to a callback. Invalid documents are logged and
ignored (the last good config stays); an unreachable controller is retried with backoff.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential, wait_random

from mesh.api.proxyconfig import Identity, ProxyConfig, config_url
from mesh.proxy.log import emit

OnConfig = Callable[[ProxyConfig], Awaitable[None]]
LONG_POLL_SECONDS = 30


def parse(text: str | bytes, origin: str) -> ProxyConfig | None:
    try:
        return ProxyConfig.from_json(text)
    except (ValueError, KeyError, TypeError) as exc:  # InvalidProxyConfig and JSON errors are ValueErrors
        emit("config_rejected", origin=origin, reason=str(exc))
        return None


class FileSource:
    """Reads a JSON ProxyConfig file and reloads it whenever it changes (polled)."""

    def __init__(self, path: Path, interval: float = 0.5):
        self.path = path
        self.interval = interval

    def _signature(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    async def run(self, on_config: OnConfig) -> None:
        seen: tuple[int, int, int] | None | str = "never"
        while True:
            signature = self._signature()
            if signature != seen:
                seen = signature
                if signature is None:
                    emit("config_rejected", origin=str(self.path), reason="file missing or unreadable")
                else:
                    try:
                        text = self.path.read_bytes()
                    except OSError as exc:
                        emit("config_rejected", origin=str(self.path), reason=str(exc))
                    else:
                        config = parse(text, str(self.path))
                        if config is not None:
                            await on_config(config)
            await asyncio.sleep(self.interval)


class ControllerError(Exception):
    pass


class ControllerSource:
    """Long-polls ``GET /v1/proxyconfig/{ns}/{sa}?version=V&wait=S`` on the controller."""

    def __init__(
        self, base_url: str, identity: Identity, wait: int = LONG_POLL_SECONDS, max_backoff: float = 10
    ):
        self.url = config_url(base_url, identity)
        self.wait = wait
        self.max_backoff = max_backoff
        self.version = ""

    async def run(self, on_config: OnConfig) -> None:
        timeout = aiohttp.ClientTimeout(total=self.wait + 15)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                retrying = AsyncRetrying(
                    retry=retry_if_exception_type((aiohttp.ClientError, TimeoutError, ControllerError)),
                    wait=wait_exponential(multiplier=0.5, max=self.max_backoff) + wait_random(0, 0.1),
                    before_sleep=self._unreachable,
                )
                async for attempt in retrying:
                    with attempt:
                        await self.poll(session, on_config)

    def _unreachable(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        reason = str(exc) or repr(exc)
        emit("controller_unreachable", url=self.url, attempt=state.attempt_number, reason=reason)

    async def poll(self, session: aiohttp.ClientSession, on_config: OnConfig) -> None:
        params = {"wait": str(self.wait)}
        if self.version:
            params["version"] = self.version
        async with session.get(self.url, params=params) as response:
            if response.status == 304:
                return
            if response.status != 200:
                raise ControllerError(f"config server answered {response.status}")
            text = await response.read()
        config = parse(text, self.url)
        if config is None:
            # Ask for anything newer than the rejected document instead of receiving it again.
            etag = response.headers.get("ETag", "").strip('"')
            try:
                self.version = etag or json.loads(text).get("version", "") or self.version
            except (ValueError, AttributeError):
                pass
            if not self.version:
                raise ControllerError("invalid config without a version")
            return
        self.version = config.version
        await on_config(config)
