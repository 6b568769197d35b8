"""Access-log records: the contract between the egress gateway and its users (people, tests, harness).

The gateway writes JSON lines on stdout, two kinds, with the article's fields first and in its order:

request record, one per HTTP request seen inside a tunnel, written when its response is complete
(or when the tunnel closes)::

    {"connection_id": "f34e0b0aa1034190", "request_time": "2022-11-10T08:15:31.864Z",
     "source_address": "10.42.0.17", "source_port": 36856, "host": "httpbin.org", "path": "/get",
     "method": "HEAD", "status": 200, "source_identity": "curl/curl", "duration_ms": 3.1,
     "response_bytes": 0}

connection record, one per tunnel when it closes (``id`` equals the request records'
``connection_id``; ``serverNames`` only when a TLS ClientHello carried SNI)::

    {"id": "f34e0b0aa1034190", "start_time": "...", "source_address": "10.42.0.17",
     "source_port": 36856, "destination_address": "93.184.216.34", "destination_port": 80,
     "end_time": "...", "protocol": "http",
     "source_identity": "curl/curl", "bytes_up": 78, "bytes_down": 230}

A tunnel that never reached its destination has ``destination_address: null`` and an ``error``.
No field of the connection record carries the requested host name (it is in ``serverNames`` for
TLS only, as in osm-edge), so the article's ``kubectl logs ... | grep httpbin.org | jq`` shows the
request records.

The gateway writes them with ``mesh.gateway.accesslog`` (``emit``, and ``RequestLines`` on its fast path).
"""

from __future__ import annotations

import json
import math
import secrets
import time
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import jsonschema

REQUEST_FIELDS = ("connection_id", "request_time", "source_address", "source_port", "host", "path", "method")
CONNECTION_FIELDS = (
    "id",
    "start_time",
    "source_address",
    "source_port",
    "destination_address",
    "destination_port",
    "end_time",
)
TIME_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$"
ID_PATTERN = r"^[0-9a-f]{16}$"


def new_connection_id() -> str:
    return secrets.token_hex(8)


@lru_cache(maxsize=4)  # a busy gateway writes many records within the same second
def _second(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))


def iso_time(epoch: float) -> str:
    """``2022-11-10T08:15:31.864Z``: UTC, milliseconds, ``Z``; what ``datetime.fromtimestamp(epoch,
    UTC)`` gives (microseconds rounded half to even, then truncated to milliseconds), computed
    without building a datetime."""
    fraction, whole = math.modf(epoch)
    micros = round(fraction * 1e6)
    second = int(whole)
    if micros >= 1_000_000:
        second, micros = second + 1, micros - 1_000_000
    elif micros < 0:
        second, micros = second - 1, micros + 1_000_000
    return _second(second) + _MILLISECONDS[micros // 1000]


_MILLISECONDS = tuple(f"{ms:03d}Z" for ms in range(1000))


def request_record(
    *,
    connection_id: str,
    request_time: float,
    source_address: str,
    source_port: int,
    host: str,
    path: str,
    method: str,
    status: int | None,
    source_identity: str = "",
    duration_ms: float | None = None,
    response_bytes: int = 0,
) -> dict[str, Any]:
    return {
        "connection_id": connection_id,
        "request_time": iso_time(request_time),
        "source_address": source_address,
        "source_port": source_port,
        "host": host,
        "path": path,
        "method": method,
        "status": status,
        "source_identity": source_identity,
        "duration_ms": duration_ms,
        "response_bytes": response_bytes,
    }


def connection_record(
    *,
    connection_id: str,
    start_time: float,
    source_address: str,
    source_port: int,
    destination_address: str | None,
    destination_port: int,
    end_time: float,
    protocol: str,
    source_identity: str = "",
    server_names: Iterable[str] = (),
    bytes_up: int = 0,
    bytes_down: int = 0,
    error: str = "",
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": connection_id,
        "start_time": iso_time(start_time),
        "source_address": source_address,
        "source_port": source_port,
        "destination_address": destination_address,
        "destination_port": destination_port,
        "end_time": iso_time(end_time),
    }
    names = list(server_names)
    if names:
        record["serverNames"] = names
    record.update(
        protocol=protocol,
        source_identity=source_identity,
        bytes_up=bytes_up,
        bytes_down=bytes_down,
    )
    if error:
        record["error"] = error
    return record


_TIME = {"type": "string", "pattern": TIME_PATTERN}
_ID = {"type": "string", "pattern": ID_PATTERN}
_PORT = {"type": "integer", "minimum": 0, "maximum": 65535}

REQUEST_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "egress-mesh.io/accesslog/request/v1",
    "type": "object",
    "required": list(REQUEST_FIELDS),
    "properties": {
        "connection_id": _ID,
        "request_time": _TIME,
        "source_address": {"type": "string", "minLength": 1},
        "source_port": _PORT,
        "host": {"type": "string"},
        "path": {"type": "string"},
        "method": {"type": "string", "pattern": "^[A-Z]+$"},
        "status": {"type": ["integer", "null"], "minimum": 100, "maximum": 999},
        "source_identity": {"type": "string"},
        "duration_ms": {"type": ["number", "null"], "minimum": 0},
        "response_bytes": {"type": "integer", "minimum": 0},
    },
}

CONNECTION_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "egress-mesh.io/accesslog/connection/v1",
    "type": "object",
    "required": list(CONNECTION_FIELDS),
    "properties": {
        "id": _ID,
        "start_time": _TIME,
        "source_address": {"type": "string", "minLength": 1},
        "source_port": _PORT,
        "destination_address": {"type": ["string", "null"]},
        "destination_port": _PORT,
        "end_time": _TIME,
        "serverNames": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "protocol": {"type": "string"},
        "source_identity": {"type": "string"},
        "bytes_up": {"type": "integer", "minimum": 0},
        "bytes_down": {"type": "integer", "minimum": 0},
        "error": {"type": "string"},
    },
}


class InvalidRecord(ValueError):
    pass


def kind(record: dict[str, Any]) -> str:
    """``request`` or ``connection``."""
    if "connection_id" in record:
        return "request"
    if "id" in record:
        return "connection"
    raise InvalidRecord(f"not an access-log record (no connection_id or id): {record!r}")


def validate(record: dict[str, Any]) -> str:
    """Check schema and the article's field order; return the record's kind. Raises InvalidRecord."""
    which = kind(record)
    schema, fields = (
        (REQUEST_SCHEMA, REQUEST_FIELDS) if which == "request" else (CONNECTION_SCHEMA, CONNECTION_FIELDS)
    )
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(record))
    if errors:
        where = ".".join(str(p) for p in errors[0].absolute_path) or "(record)"
        raise InvalidRecord(f"{which} record {where}: {errors[0].message}")
    leading = tuple(record)[: len(fields)]
    if leading != fields:
        raise InvalidRecord(f"{which} record fields must start with {list(fields)}, got {list(leading)}")
    return which


def parse_lines(text: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Split gateway output into (request records, connection records); other lines are skipped."""
    requests: list[dict[str, Any]] = []
    connections: list[dict[str, Any]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and ("connection_id" in record or "id" in record):
            (requests if kind(record) == "request" else connections).append(record)
    return requests, connections
