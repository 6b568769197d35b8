"""Where the sidecar's ProxyConfig comes from: a local file, or the controller's config server.

Both sources hand every valid new document to a callback. Invalid documents are logged and
ignored (the last good config stays).

The controller source presents the token at ``token_file`` (``mesh.api.credentials``), read again
before every request because the kubelet rotates it. An unreachable controller (connect timeout
``CONNECT_TIMEOUT``), a 503 (shutting down, no state yet, busy) and any other failure are retried
with full-jitter exponential backoff capped at ``max_backoff`` (1 s), so every sidecar is back
within about a second of the controller; refusals that a retry soon will not cure (401, 403,
429) back off up to ``max_refused_backoff`` (10 s). Each failed attempt is one log event.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_random_exponential

from mesh.api.credentials import MAX_TOKEN_BYTES, TOKEN_PATH
from mesh.api.proxyconfig import Identity, ProxyConfig, config_url
from mesh.proxy.log import emit

OnConfig = Callable[[ProxyConfig], Awaitable[None]]
Seen = tuple[int, int, int] | None | str  # the config file's (mtime, size, inode) when last read
LONG_POLL_SECONDS = 30
CONNECT_TIMEOUT = 0.5  # seconds; a controller on the cluster network answers a SYN in milliseconds
#: answers that say "not you" or "not so often": retrying soon would not help
REFUSALS_TO_SLOW_DOWN = (401, 403, 429)


def parse(text: str | bytes, origin: str) -> ProxyConfig | None:
    try:
        return ProxyConfig.from_json(text)
    except (ValueError, KeyError, TypeError) as exc:  # InvalidProxyConfig and JSON errors are ValueErrors
        emit("config_rejected", origin=origin, reason=str(exc))
        return None


class FileSource:
    """Reads a JSON ProxyConfig file and reloads it whenever it changes (``mesh.api.watch``: inotify,
    or polling every ``poll`` seconds where there is none; looked at again every ``rescan`` seconds
    in any case)."""

    def __init__(self, path: Path, poll: float = 0.2, rescan: float = 5.0):
        self.path = path
        self.poll = poll
        self.rescan = rescan

    def _signature(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    async def run(self, on_config: OnConfig) -> None:
        if not self.path.parent.is_dir():  # nothing to watch yet (a volume not mounted)
            emit("config_rejected", origin=str(self.path), reason="file missing or unreadable")
            while not self.path.parent.is_dir():
                await asyncio.sleep(self.rescan)
        seen = await self._reload("never", on_config)
        from mesh.api.watch import changes  # here: sidecars fed by the controller never load watchfiles

        async for _ in changes(self.path, poll=self.poll, rescan=self.rescan):
            seen = await self._reload(seen, on_config)

    async def _reload(self, seen: Seen, on_config: OnConfig) -> Seen:
        """Reads the file when it changed since ``seen``; returns what it saw."""
        signature = self._signature()
        if signature == seen:
            return seen
        if signature is None:
            emit("config_rejected", origin=str(self.path), reason="file missing or unreadable")
            return None
        try:
            text = self.path.read_bytes()
        except OSError as exc:
            emit("config_rejected", origin=str(self.path), reason=str(exc))
            return signature
        config = parse(text, str(self.path))
        if config is not None:
            await on_config(config)
        return signature


class ControllerError(Exception):
    pass


class ControllerRefused(ControllerError):
    """The config server answered 401, 403, 429 or 503; ``reason`` is its explanation."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"config server answered {status}: {reason}")
        self.status = status
        self.reason = reason


class ControllerSource:
    """Long-polls ``GET /v1/proxyconfig/{ns}/{sa}?version=V&wait=S`` on the controller."""

    def __init__(
        self,
        base_url: str,
        identity: Identity,
        wait: int = LONG_POLL_SECONDS,
        max_backoff: float = 1.0,
        token_file: Path | None = Path(TOKEN_PATH),
        connect_timeout: float = CONNECT_TIMEOUT,
        max_refused_backoff: float = 10.0,
    ):
        self.url = config_url(base_url, identity)
        self.wait = wait
        self.token_file = token_file
        self.connect_timeout = connect_timeout
        self.version = ""
        self._soon = wait_random_exponential(multiplier=0.1, max=max_backoff)
        self._slowly = wait_random_exponential(multiplier=0.5, max=max_refused_backoff)

    async def run(self, on_config: OnConfig) -> None:
        timeout = aiohttp.ClientTimeout(total=self.wait + 15, sock_connect=self.connect_timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:  # each poll answered starts a fresh backoff
                retrying = AsyncRetrying(
                    retry=retry_if_exception_type((aiohttp.ClientError, TimeoutError, ControllerError)),
                    wait=self._backoff,
                    before_sleep=self._failed,
                )
                async for attempt in retrying:
                    with attempt:
                        await self.poll(session, on_config)

    def _backoff(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        slow = isinstance(exc, ControllerRefused) and exc.status in REFUSALS_TO_SLOW_DOWN
        return (self._slowly if slow else self._soon)(state)

    def _failed(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        retry_in = round(state.upcoming_sleep, 3)
        if isinstance(exc, ControllerRefused):
            emit(
                "controller_refused",
                url=self.url,
                status=exc.status,
                reason=exc.reason,
                attempt=state.attempt_number,
                retry_in=retry_in,
            )
            return
        reason = str(exc) or repr(exc)
        attempt = state.attempt_number
        emit("controller_unreachable", url=self.url, attempt=attempt, reason=reason, retry_in=retry_in)

    def credential(self) -> dict[str, str]:
        """``Authorization: Bearer <token>`` from the token file, read now (it rotates); none
        without a file (a controller that authenticates answers 401, logged and retried)."""
        if self.token_file is None:
            return {}
        try:
            with self.token_file.open("rb") as file:
                token = file.read(MAX_TOKEN_BYTES + 1).decode("ascii").strip()
        except (OSError, UnicodeDecodeError):
            return {}
        if not token or len(token) > MAX_TOKEN_BYTES:
            return {}
        return {"Authorization": f"Bearer {token}"}

    async def poll(self, session: aiohttp.ClientSession, on_config: OnConfig) -> None:
        params = {"wait": str(self.wait)}
        if self.version:
            params["version"] = self.version
        async with session.get(self.url, params=params, headers=self.credential()) as response:
            if response.status == 304:
                return
            if response.status in (*REFUSALS_TO_SLOW_DOWN, 503):
                reason = (await response.content.read(512)).decode(errors="replace").strip()
                raise ControllerRefused(response.status, reason or response.reason or "")
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
