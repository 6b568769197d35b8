"""Where the controller reads resources from: one interface, two implementations.

A ``Source`` delivers the complete current set of raw Kubernetes objects once at start and
again after every change, through the coroutine ``publish`` (awaited, so states never overlap).
Problems a user can cause (a file that does not parse) come along as ``errors``; they never stop
the source.

- ``DirectorySource``: every ``*.yaml``/``*.yml``/``*.json`` file below a directory, each holding
  one or more YAML documents (``kind: List`` is expanded), read with the bounds of
  ``mesh.api.load`` (size, documents, depth, alias expansion) in a thread, off the event loop.
  Objects come as ``Document``s, so messages name their file. Changes are watched
  (``mesh.api.watch``: inotify, or polling every ``interval`` seconds where there is none) and
  confirmed by each file's (mtime, size, inode). A file that fails to load is reported by name and its
  previous good content (if any) stays in force; other files are not affected.
- ``KubernetesSource``: list + watch through the official ``kubernetes`` client, one thread per
  resource kind (control plane only): MeshConfig (mesh namespace), Egress, EgressGateway,
  HTTPRouteGroup, Service, Namespace, ServiceAccount. Watches resume from the last resourceVersion; a 410 Gone
  re-lists; failures are retried with tenacity backoff.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tenacity import Retrying, retry_if_exception, wait_exponential

from mesh.api.load import MANIFEST_SUFFIXES, Document, LoadError, load_file
from mesh.api.resources import DEFAULT_MESH_NAMESPACE, MESHCONFIG_API, POLICY_API, SMI_SPECS_API
from mesh.api.watch import changes

from .offload import off_loop
from .reconciler import ObjectKey, object_key

log = logging.getLogger("mesh.controller.sources")


@dataclass(frozen=True)
class SourceState:
    """Objects as plain dicts (Kubernetes API) or as Documents that know their file and position."""

    objects: tuple[dict[str, Any] | Document, ...] = ()
    errors: tuple[str, ...] = ()


Publish = Callable[[SourceState], Awaitable[None]]


class SourceError(RuntimeError):
    """The source cannot start (missing directory, no cluster credentials); the message says why."""


class Source(ABC):
    description: str = ""

    @abstractmethod
    async def run(self, publish: Publish) -> None:
        """Publish the full state now and after every change, until cancelled."""


# --- manifest directory -----------------------------------------------------------------------


@dataclass
class _FileEntry:
    signature: tuple[int, int, int]
    documents: tuple[Document, ...] = ()
    error: str | None = None


class DirectorySource(Source):
    def __init__(self, directory: str | os.PathLike[str], interval: float = 0.2) -> None:
        self.directory = Path(directory)
        self.interval = interval
        self.description = f"directory {self.directory}"
        self._files: dict[Path, _FileEntry] = {}
        if not self.directory.is_dir():
            raise SourceError(f"manifest directory {self.directory} does not exist or is not a directory")

    def scan(self) -> bool:
        """Re-read what changed; True if anything did. Blocking: ``run`` calls it off the event loop."""
        changed = False
        seen: set[Path] = set()
        for path in self._manifest_files():
            try:
                st = path.stat()
            except OSError:
                continue
            seen.add(path)
            signature = (st.st_mtime_ns, st.st_size, st.st_ino)
            entry = self._files.get(path)
            if entry and entry.signature == signature:
                continue
            changed = True
            self._files[path] = self._read(path, signature, entry.documents if entry else ())
        for gone in set(self._files) - seen:
            del self._files[gone]
            changed = True
        return changed

    @staticmethod
    def _read(path: Path, signature: tuple[int, int, int], previous: tuple[Document, ...]) -> _FileEntry:
        """One file's documents; on any error its previous good documents, and the error."""
        try:
            return _FileEntry(signature, tuple(load_file(path)))
        except LoadError as exc:
            message = str(exc)
        except Exception as exc:  # noqa: BLE001 - no file may stop the source
            log.exception("unexpected error reading %s", path)
            message = f"{path}: cannot read: {type(exc).__name__}: {exc}"
        if previous:
            message += " (keeping its last good content)"
        log.warning("bad manifest file: %s", message)
        return _FileEntry(signature, previous, message)

    def state(self) -> SourceState:
        files = sorted(self._files.items())
        documents = [doc for _, entry in files for doc in entry.documents]
        return SourceState(tuple(documents), tuple(entry.error for _, entry in files if entry.error))

    async def run(self, publish: Publish) -> None:
        await off_loop(self.scan)
        await publish(self.state())
        async for _ in changes(self.directory, poll=self.interval):
            if await off_loop(self.scan):
                await publish(self.state())

    def _manifest_files(self) -> Iterator[Path]:
        if not self.directory.is_dir():
            return
        for root, dirs, files in os.walk(self.directory):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if not name.startswith(".") and name.endswith(MANIFEST_SUFFIXES):
                    yield Path(root) / name


# --- Kubernetes API ---------------------------------------------------------------------------

ListFn = Callable[[], dict[str, Any]]  # -> {"metadata": {"resourceVersion"}, "items": [...]}
WatchFn = Callable[[str], Iterable[dict[str, Any]]]  # resourceVersion -> {"type", "raw_object"}


class Gone(Exception):
    """The watch's resourceVersion is too old (HTTP 410): list again."""


@dataclass
class Watched:
    kind: str
    api_version: str
    list_fn: ListFn
    watch_fn: WatchFn
    objects: dict[ObjectKey, dict[str, Any]] = field(default_factory=dict)
    synced: bool = False


class KubernetesSource(Source):
    def __init__(
        self,
        mesh_namespace: str = DEFAULT_MESH_NAMESPACE,
        resources: list[Watched] | None = None,
        retry_wait: Any = None,
    ) -> None:
        self.mesh_namespace = mesh_namespace
        self.description = "kubernetes API"
        self._core: Any = None
        self._resources = resources if resources is not None else self._default_resources()
        self._retry_wait = retry_wait or wait_exponential(multiplier=0.5, max=30)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed = asyncio.Event()

    def _default_resources(self) -> list[Watched]:
        try:
            from kubernetes import client, config
            from kubernetes.config.config_exception import ConfigException
        except ImportError as exc:  # pragma: no cover - dependency of the package
            raise SourceError(f"the kubernetes client is not installed: {exc}") from None
        try:
            config.load_incluster_config()
        except ConfigException:
            try:
                config.load_kube_config(config_file=os.environ.get("KUBECONFIG") or None)
            except Exception as exc:  # noqa: BLE001 - yaml, OS and config errors alike
                detail = " ".join(str(exc).split())
                raise SourceError(
                    f"no usable Kubernetes credentials (in-cluster or kubeconfig): {detail}"
                ) from None
        core = self._core = client.CoreV1Api()
        custom = client.CustomObjectsApi()
        mesh_group, mesh_version = MESHCONFIG_API.split("/")
        policy_group, policy_version = POLICY_API.split("/")
        smi_group, smi_version = SMI_SPECS_API.split("/")

        def custom_fn(group: str, version: str, plural: str, namespaced: bool) -> Callable[..., Any]:
            if namespaced:
                return lambda **kw: custom.list_namespaced_custom_object(
                    group, version, self.mesh_namespace, plural, **kw
                )
            return lambda **kw: custom.list_cluster_custom_object(group, version, plural, **kw)

        listers: list[tuple[str, str, Callable[..., Any]]] = [
            ("MeshConfig", MESHCONFIG_API, custom_fn(mesh_group, mesh_version, "meshconfigs", True)),
            ("Egress", POLICY_API, custom_fn(policy_group, policy_version, "egresses", False)),
            ("EgressGateway", POLICY_API, custom_fn(policy_group, policy_version, "egressgateways", False)),
            ("HTTPRouteGroup", SMI_SPECS_API, custom_fn(smi_group, smi_version, "httproutegroups", False)),
            ("Service", "v1", core.list_service_for_all_namespaces),
            ("Namespace", "v1", core.list_namespace),
            ("ServiceAccount", "v1", core.list_service_account_for_all_namespaces),
        ]
        return [Watched(kind, api, *self._api_calls(fn)) for kind, api, fn in listers]

    def _api_calls(self, fn: Callable[..., Any]) -> tuple[ListFn, WatchFn]:
        from kubernetes import watch
        from kubernetes.client.exceptions import ApiException

        def list_fn() -> dict[str, Any]:
            response = fn(_preload_content=False)
            return json.loads(response.data)

        def watch_fn(resource_version: str) -> Iterator[dict[str, Any]]:
            try:
                yield from watch.Watch().stream(
                    fn, resource_version=resource_version, timeout_seconds=30, allow_watch_bookmarks=True
                )
            except ApiException as exc:
                if exc.status == 410:
                    raise Gone() from None
                raise

        return list_fn, watch_fn

    def read_namespace(self, name: str) -> dict[str, Any] | None:
        """Fresh read of one Namespace (the webhook's fallback for namespaces not yet watched)."""
        if self._core is None:
            return None
        try:
            response = self._core.read_namespace(name, _preload_content=False)
        except Exception as exc:  # noqa: BLE001 - any API failure means "unknown"
            if getattr(exc, "status", None) != 404:
                log.warning("cannot read namespace %s: %s", name, getattr(exc, "reason", None) or exc)
            return None
        return {"kind": "Namespace", "apiVersion": "v1", **json.loads(response.data)}

    def state(self) -> SourceState:
        with self._lock:
            objects = [obj for res in self._resources for _, obj in sorted(res.objects.items())]
        return SourceState(tuple(objects))

    @property
    def synced(self) -> bool:
        return all(res.synced for res in self._resources)

    async def run(self, publish: Publish) -> None:
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        self._stop.clear()
        threads = [
            threading.Thread(target=self._follow, args=(res,), name=f"watch-{res.kind}", daemon=True)
            for res in self._resources
        ]
        for thread in threads:
            thread.start()
        try:
            while True:
                await self._changed.wait()
                self._changed.clear()
                if self.synced:
                    await publish(self.state())
        finally:
            self._stop.set()

    def _notify(self) -> None:
        if self._loop and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._changed.set)

    def _follow(self, res: Watched) -> None:
        """List, then watch from the list's resourceVersion; re-list on 410; retry on errors."""
        retrying = Retrying(
            wait=self._retry_wait,
            retry=retry_if_exception(lambda e: not isinstance(e, Gone) and not self._stop.is_set()),
            before_sleep=lambda rs: log.warning(
                "%s list/watch failed (attempt %d): %s", res.kind, rs.attempt_number, rs.outcome.exception()
            ),
            reraise=True,
        )
        while not self._stop.is_set():
            try:
                version = retrying(self._list, res)
                while not self._stop.is_set():
                    version = retrying(self._watch_once, res, version)
            except Gone:
                log.info("%s watch expired (410 Gone), listing again", res.kind)
            except Exception:  # noqa: BLE001 - stop requested while failing
                return

    def _list(self, res: Watched) -> str:
        data = res.list_fn()
        objects = {}
        for item in data.get("items") or ():
            item.setdefault("kind", res.kind)
            item.setdefault("apiVersion", res.api_version)
            objects[object_key(item)] = item
        with self._lock:
            res.objects = objects
            res.synced = True
        self._notify()
        return str((data.get("metadata") or {}).get("resourceVersion") or "")

    def _watch_once(self, res: Watched, version: str) -> str:
        for event in res.watch_fn(version):
            if self._stop.is_set():
                break
            kind, obj = event.get("type"), event.get("raw_object") or {}
            if kind == "ERROR":
                if obj.get("code") == 410:
                    raise Gone()
                raise RuntimeError(f"watch error: {obj.get('message', obj)}")
            version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
            if kind == "BOOKMARK":
                continue
            obj.setdefault("kind", res.kind)
            obj.setdefault("apiVersion", res.api_version)
            with self._lock:
                if kind == "DELETED":
                    res.objects.pop(object_key(obj), None)
                else:
                    res.objects[object_key(obj)] = obj
            self._notify()
        return version
