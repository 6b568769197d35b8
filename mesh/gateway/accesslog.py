"""The gateway's access-log writer: records as JSON lines on stdout, written fast.

The records' contract (fields, order, schema, validation) is ``mesh.api.accesslog``; this module only
writes them: ``dumps``/``emit`` for any record, ``RequestLines`` for the request records of a busy tunnel.
"""

from __future__ import annotations

from collections.abc import Callable
from json.encoder import encode_basestring as _quote  # type: ignore[attr-defined]
from typing import Any, TextIO

from mesh.api.accesslog import iso_time
from mesh.proxy.log import json_encoder, write_line


def request_line(
    connection_id: str,
    request_time: float,
    source_address: str,
    source_port: int,
    host: str,
    path: str,
    method: str,
    status: int | None,
    source_identity: str,
    duration_ms: float | None,
    response_bytes: int,
) -> str:
    """``dumps(request_record(...))`` (same arguments), written directly: one per request."""
    return RequestLines(connection_id, source_address, source_port, source_identity).line(
        request_time, host, path, method, status, duration_ms, response_bytes
    )


class RequestLines:
    """``request_line`` for the requests of one tunnel: what they share is encoded once."""

    __slots__ = ("_start", "_source", "_identity")

    def __init__(self, connection_id: str, source_address: str, source_port: int, source_identity: str):
        self._start = f'{{"connection_id": {_quote(connection_id)}, "request_time": "'
        self._source = (
            f'", "source_address": {_quote(source_address)}, "source_port": {int.__repr__(source_port)}, '
            '"host": '
        )
        self._identity = f', "source_identity": {_quote(source_identity)}, "duration_ms": '

    def line(
        self,
        request_time: float,
        host: str,
        path: str,
        method: str,
        status: int | None,
        duration_ms: float | None,
        response_bytes: int,
    ) -> str:
        return (
            f"{self._start}{iso_time(request_time)}{self._source}{_quote(host)}, "
            f'"path": {_quote(path)}, "method": {_quote(method)}, '
            f'"status": {"null" if status is None else int.__repr__(status)}{self._identity}'
            f"{'null' if duration_ms is None else _number(duration_ms)}, "
            f'"response_bytes": {int.__repr__(response_bytes)}}}'
        )


def _number(value: float) -> str:
    if isinstance(value, int):
        return int.__repr__(value)
    if value != value or value in (float("inf"), float("-inf")):
        return dumps(value)
    return float.__repr__(value)


dumps: Callable[[Any], str] = json_encoder(ensure_ascii=False)  # json.dumps(ensure_ascii=False)


def emit(record: dict[str, Any], stream: TextIO | None = None) -> None:
    """Write one record as a line, so ``kubectl logs`` shows it at once: to ``stream`` now and
    flushed, or to stdout at the end of the event loop's turn (one write for all of its records)."""
    if stream is None:
        write_line(dumps(record))
        return
    stream.write(dumps(record) + "\n")
    stream.flush()
