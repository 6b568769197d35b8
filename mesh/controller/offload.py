"""Running CPU-heavy work (parsing, validation) off the event loop.

``off_loop(fn, *args)`` runs ``fn`` in a daemon thread and awaits its result, so the config
server keeps answering (health checks, long polls) while a large manifest is parsed. Unlike
``asyncio.to_thread`` the thread is not joined when the controller exits: SIGTERM in the middle
of a 10 s validation still stops the process at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def off_loop(fn: Callable[..., T], *args: Any) -> T:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def deliver(setter: Callable[[Any], None], value: Any) -> None:
        if not future.done():
            setter(value)

    def work() -> None:
        try:
            result = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
            outcome: tuple[Callable[[Any], None], Any] = (future.set_exception, exc)
        else:
            outcome = (future.set_result, result)
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody is waiting
            loop.call_soon_threadsafe(deliver, *outcome)

    threading.Thread(target=work, name=f"off-loop-{getattr(fn, '__name__', 'work')}", daemon=True).start()
    return await future
