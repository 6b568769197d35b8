"""The few Kubernetes API calls meshctl makes, behind one small class.

``Kubernetes`` talks to a real cluster through the official client (server-side apply with the
dynamic client; KUBECONFIG, ``~/.kube/config`` or the in-cluster service account). Tests use any
object with the same methods (``KubeApi``). Every failure surfaces as ``ClusterUnreachable`` or
``KubeError`` with a message meant for the user.
"""

from __future__ import annotations

from typing import Any, Protocol

FIELD_MANAGER = "meshctl"


class KubeError(RuntimeError):
    """The API server refused a request; the message says what and why."""


class ClusterUnreachable(KubeError):
    pass


class NotServed(KubeError):
    """The API server does not (yet) serve this kind: CRD missing, or just created and not discovered yet."""


class KubeApi(Protocol):
    def server_version(self) -> str: ...

    def apply(self, obj: dict[str, Any]) -> str:
        """Create or update ``obj``; returns "created" or "configured"."""

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None: ...

    def list(
        self, api_version: str, kind: str, namespace: str | None = None, label_selector: str | None = None
    ) -> list[dict[str, Any]]: ...

    def patch_merge(
        self, api_version: str, kind: str, name: str, patch: dict[str, Any], namespace: str | None = None
    ) -> dict[str, Any]: ...

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool:
        """Delete; False when it did not exist."""


def _describe(kind: str, name: str, namespace: str | None) -> str:
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


class Kubernetes:
    """A cluster reached through the official ``kubernetes`` client."""

    def __init__(self, kubeconfig: str | None = None, context: str | None = None, timeout: float = 10.0):
        from kubernetes import client, config, dynamic
        from kubernetes.config.config_exception import ConfigException

        try:
            config.load_kube_config(config_file=kubeconfig, context=context)
        except (ConfigException, FileNotFoundError, OSError) as exc:
            try:
                config.load_incluster_config()
            except ConfigException:
                raise ClusterUnreachable(
                    f"no Kubernetes cluster reachable: no usable kubeconfig ({exc}); set KUBECONFIG or "
                    "create ~/.kube/config"
                ) from None
        self._timeout = timeout
        self._api = client.ApiClient()
        host = self._api.configuration.host
        try:
            info = client.VersionApi(self._api).get_code(_request_timeout=timeout)
            self._dynamic = dynamic.DynamicClient(self._api)
        except Exception as exc:  # urllib3 connection errors, TLS errors, 401/403...
            if getattr(exc, "status", None) in (401, 403):
                raise ClusterUnreachable(
                    f"the cluster at {host} refused the credentials: {_reason(exc)}"
                ) from None
            raise ClusterUnreachable(f"no Kubernetes cluster reachable: {host}: {_reason(exc)}") from None
        self._version = info.git_version

    def server_version(self) -> str:
        return self._version

    def _resource(self, api_version: str, kind: str) -> Any:
        from kubernetes.dynamic.exceptions import ResourceNotFoundError

        try:
            return self._dynamic.resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError:  # discovery was refreshed once already by the client
            raise NotServed(
                f"the cluster does not serve {kind} ({api_version}); is the mesh installed?"
            ) from None

    def _call(self, what: str, fn: Any, *args: Any, missing_ok: bool = False, **kwargs: Any) -> Any:
        """Call the API; None for 404 when ``missing_ok``; KubeError/ClusterUnreachable otherwise."""
        from kubernetes.dynamic.exceptions import DynamicApiError, NotFoundError

        try:
            return fn(*args, _request_timeout=self._timeout, **kwargs)
        except NotFoundError as exc:
            if missing_ok:
                return None
            raise KubeError(f"{what}: not found ({_api_message(exc)})") from None
        except DynamicApiError as exc:
            raise KubeError(f"{what}: {exc.status} {_api_message(exc)}") from None
        except Exception as exc:
            raise ClusterUnreachable(f"{what}: cluster not reachable: {_reason(exc)}") from None

    def apply(self, obj: dict[str, Any]) -> str:
        meta = obj["metadata"]
        existed = self.get(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace")) is not None
        resource = self._resource(obj["apiVersion"], obj["kind"])
        self._call(
            f"applying {_describe(obj['kind'], meta['name'], meta.get('namespace'))}",
            self._dynamic.server_side_apply,
            resource,
            body=obj,
            namespace=meta.get("namespace"),
            field_manager=FIELD_MANAGER,
            force_conflicts=True,
        )
        return "configured" if existed else "created"

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        resource = self._resource(api_version, kind)
        what = f"reading {_describe(kind, name, namespace)}"
        found = self._call(what, self._dynamic.get, resource, name=name, namespace=namespace, missing_ok=True)
        return found.to_dict() if found is not None else None

    def list(
        self, api_version: str, kind: str, namespace: str | None = None, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        resource = self._resource(api_version, kind)
        found = self._call(
            f"listing {kind}", self._dynamic.get, resource, namespace=namespace, label_selector=label_selector
        )
        return [item for item in found.to_dict().get("items", [])]

    def patch_merge(
        self, api_version: str, kind: str, name: str, patch: dict[str, Any], namespace: str | None = None
    ) -> dict[str, Any]:
        resource = self._resource(api_version, kind)
        found = self._call(
            f"patching {_describe(kind, name, namespace)}",
            self._dynamic.patch,
            resource,
            body=patch,
            name=name,
            namespace=namespace,
            content_type="application/merge-patch+json",
        )
        return found.to_dict()

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool:
        try:
            resource = self._resource(api_version, kind)
        except KubeError:
            return False  # the kind is gone (CRDs deleted): nothing of it is left
        what = f"deleting {_describe(kind, name, namespace)}"
        done = self._call(
            what, self._dynamic.delete, resource, name=name, namespace=namespace, missing_ok=True
        )
        return done is not None


def _reason(exc: Exception) -> str:
    reason = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
    return str(reason).splitlines()[0][:300]


def _api_message(exc: Any) -> str:
    import json

    try:
        return json.loads(exc.body).get("message", "") or exc.reason
    except Exception:
        return str(getattr(exc, "reason", "") or exc)
