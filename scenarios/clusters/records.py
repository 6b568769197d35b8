"""Which clusters the harness created: one JSON file per cluster in the harness state directory.

A record is written just before the harness creates a cluster and removed when it deletes it, so
the records are exactly the clusters the harness made and has not deleted: those kept with
``--keep`` (``python -m scenarios clean`` lists and removes them) or left by a crash. A cluster
without a record was not made by the harness; it is never reused or deleted unless the user
passes ``--reuse`` (and even then never deleted).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path


@dataclass(frozen=True)
class Record:
    backend: str
    name: str
    kubeconfig: str
    created: str


def state_dir() -> Path:
    """``$XDG_CACHE_HOME/egress-mesh`` (``~/.cache/egress-mesh``): kubeconfigs and records."""
    base = _records_dir().parent
    base.mkdir(parents=True, exist_ok=True)
    return base


def _records_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "egress-mesh"
    return base / "clusters"


def _path(backend: str, name: str) -> Path:
    return _records_dir() / f"{backend}--{name}.json"


def remember(backend: str, name: str, kubeconfig: str) -> Record:
    record = Record(backend, name, kubeconfig, datetime.now(UTC).isoformat(timespec="seconds"))
    _records_dir().mkdir(parents=True, exist_ok=True)
    _path(backend, name).write_text(json.dumps(asdict(record), indent=2) + "\n")
    return record


def forget(backend: str, name: str) -> None:
    _path(backend, name).unlink(missing_ok=True)


def find(backend: str, name: str) -> Record | None:
    path = _path(backend, name)
    if not path.is_file():
        return None
    return _load(path)


def _load(path: Path) -> Record | None:
    try:
        data = json.loads(path.read_text())
        return Record(data["backend"], data["name"], data["kubeconfig"], data["created"])
    except (OSError, ValueError, KeyError, TypeError):
        return None  # not one of ours (or damaged): ignored, never acted on


def all_records() -> list[Record]:
    directory = _records_dir()
    found = (_load(path) for path in sorted(directory.glob("*.json"))) if directory.is_dir() else ()
    return [record for record in found if record is not None]
