"""JSON lines on stdout: one record per decision, config change and listener change."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any


def timestamp() -> str:
    """ISO 8601 UTC with milliseconds and ``Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def emit(event: str, **fields: Any) -> None:
    record = {"time": timestamp(), "event": event, **{k: v for k, v in fields.items() if v is not None}}
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()
