"""JSON lines on stdout: one record per decision, config change and listener change.

Records are encoded as ``json.dumps`` would encode them, and written once per turn of the event
loop rather than once per record: under load one write carries the records of many requests,
and nothing waits longer than the current turn (or process exit) to be written.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import json
import sys
import threading
import time
from collections.abc import Callable
from json.encoder import (  # type: ignore[attr-defined]
    c_make_encoder,
    encode_basestring,
    encode_basestring_ascii,
)
from typing import Any

_last_second = -1
_second_text = ""


def timestamp() -> str:
    """ISO 8601 UTC with milliseconds and ``Z`` (milliseconds truncated, as isoformat does)."""
    global _last_second, _second_text
    now = time.time()
    second = int(now)
    if second != _last_second:
        _last_second, _second_text = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    return _second_text + _MILLISECONDS[int((now - second) * 1000)]


_MILLISECONDS = tuple(f".{ms:03d}Z" for ms in range(1000))


def _float(value: float) -> str:
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    return float.__repr__(value)


def _unencodable(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def json_encoder(ensure_ascii: bool = True) -> Callable[[Any], str]:
    """``json.dumps`` with its default separators, as a ready-made C encoder (without the setup
    ``json.dumps`` repeats on every call)."""
    if c_make_encoder is None:  # pragma: no cover (Pythons without the C accelerator)
        return functools.partial(json.dumps, ensure_ascii=ensure_ascii)
    quote = encode_basestring_ascii if ensure_ascii else encode_basestring
    encoder = c_make_encoder(None, _unencodable, quote, None, ": ", ", ", False, False, True)
    return lambda value: "".join(encoder(value, 0))


encode = json_encoder()
quote = encode_basestring_ascii  # a string as ``encode`` writes it


_pending: list[str] = []
_scheduled_on: asyncio.AbstractEventLoop | None = None  # the loop a flush is queued on
_scheduled_in = 0  # the thread that loop runs in


def _flush() -> None:
    global _scheduled_on
    _scheduled_on = None
    if _pending:
        lines = "\n".join(_pending) + "\n"
        _pending.clear()
        sys.stdout.write(lines)
        sys.stdout.flush()


atexit.register(_flush)


def write_line(line: str) -> None:
    """Queue one line for the end of this turn of the event loop (at once outside a loop)."""
    global _scheduled_on, _scheduled_in
    scheduled = _scheduled_on
    if scheduled is not None and _scheduled_in == threading.get_ident() and scheduled.is_running():
        _pending.append(line)  # this thread's running loop (one at a time): without asking for it,
        return  # as asking costs a system call (getpid) per line
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if _scheduled_on is not None and _scheduled_on is not loop:
        _flush()  # queued on a loop that is gone (tests run one loop after another)
    _pending.append(line)
    if loop is None:
        _flush()
    elif _scheduled_on is None:
        _scheduled_on, _scheduled_in = loop, threading.get_ident()
        loop.call_soon(_flush)


def emit(event: str, **fields: Any) -> None:
    record = {"time": timestamp(), "event": event}
    for key, value in fields.items():
        if value is not None:
            record[key] = value
    write_line(encode(record))
