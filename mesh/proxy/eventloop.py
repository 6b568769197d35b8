"""Run the data plane's event loop: uvloop where it is installed (it is in the images), asyncio's
own loop otherwise. Both behave the same; uvloop is faster on the hot path."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)
