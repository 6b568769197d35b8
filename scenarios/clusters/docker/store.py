"""The Docker backend's API objects: kept in memory and as files in the manifest directory the
controller container reads (``mesh-controller run --source directory``). Mesh objects are
validated as the API server's admission would before they are stored."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

from mesh.api.load import LoadError, load_text
from scenarios.clusters.docker.naming import CLUSTER_SCOPED, kind_of, manifest_filename

Key = tuple[str, str, str]  # (kind, namespace or "", name)


def key_of(obj: dict[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return (obj["kind"], meta.get("namespace") or "", meta["name"])


def object_key(kind: str, name: str, namespace: str | None) -> Key:
    """The key of ``kubectl VERB KIND NAME [-n NS]`` (``kind`` as kubectl takes it: ``egresses``, ``ns``)."""
    kind = kind_of(kind)
    return (kind, "" if kind in CLUSTER_SCOPED else (namespace or "default"), name)


def parse_manifest(manifest: str) -> list[Any]:
    """The objects of a (multi-document) manifest; ValueError saying where it is not valid."""
    try:
        return [doc.obj for doc in load_text(manifest, "<manifest>")]
    except LoadError as exc:
        raise ValueError(f"error: the manifest is not valid: {exc}") from None


def admit(obj: Any, namespace: str | None) -> str | None:
    """Default the namespace and validate; return the problem text or None."""
    if not isinstance(obj, dict) or not obj.get("kind") or not isinstance(obj.get("metadata"), dict):
        return f"error: not a Kubernetes object: {str(obj)[:80]}"
    meta = obj["metadata"]
    if not isinstance(meta.get("name"), str) or not meta["name"]:
        return f"error: {obj['kind']}: metadata.name is required"
    if obj["kind"] in CLUSTER_SCOPED:
        meta.pop("namespace", None)
    else:
        given = meta.get("namespace")
        if namespace and given and given != namespace:
            return (
                f"error: the namespace from the provided object {given!r} does not match the namespace "
                f"{namespace!r}. You must pass '--namespace={given}' to perform this operation."
            )
        meta["namespace"] = given or namespace or "default"
    from mesh.api.validation import validate_object

    problems = validate_object(obj)
    return "\n".join(f"error: {p}" for p in problems) if problems else None


class ObjectStore:
    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory
        self.objects: dict[Key, dict[str, Any]] = {}

    def get(self, key: Key) -> dict[str, Any] | None:
        return self.objects.get(key)

    def __contains__(self, key: Key) -> bool:
        return key in self.objects

    def keys(self) -> list[Key]:
        return list(self.objects)

    def all(self) -> list[dict[str, Any]]:
        return list(self.objects.values())

    def path(self, key: Key) -> Path:
        return Path(self.directory or ".", manifest_filename(*key))

    def store(self, obj: dict[str, Any]) -> list[str]:
        """Keep ``obj`` and write its file atomically; returns the command shown for it."""
        key = key_of(obj)
        self.objects[key] = copy.deepcopy(obj)
        path = self.path(key)
        tmp = path.with_name("." + path.name + ".tmp")
        tmp.write_text(_dump(obj))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        return [f"# write {path}"]

    def forget(self, key: Key) -> list[str]:
        self.objects.pop(key, None)
        path = self.path(key)
        path.unlink(missing_ok=True)
        return [f"rm {path}"]

    def clear(self) -> None:
        self.objects.clear()


def _dump(obj: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(obj, sort_keys=False)
