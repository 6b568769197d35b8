"""The egress boundary's NetworkPolicies kept in the cluster, through the official kubernetes client.

- ``NetworkPolicySync.sync(policies)`` makes the NetworkPolicies labelled
  ``egress-mesh.io/boundary=<mesh>`` equal to ``policies``: creates the missing, replaces the
  changed (with the resourceVersion it read, so a concurrent writer makes it retry instead of
  being overwritten blindly), deletes the labelled ones no longer wanted. A NetworkPolicy of the
  same name that egress-mesh did not create is left alone and reported. Every other failure is
  raised (``BoundarySyncError``) after the rest was attempted.
- ``BoundaryReconciler`` runs it from the controller: ``update(snapshot)`` after every admitted
  source state, at least every ``resync`` seconds anyway (someone may edit or delete a policy), and
  with tenacity backoff while the API fails; a newer snapshot replaces the one being retried.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tenacity import AsyncRetrying, retry_if_exception, wait_exponential

from .boundary import BOUNDARY_LABEL, BoundaryPlan, compile_boundary, policy_key
from .reconciler import Snapshot

log = logging.getLogger("mesh.controller.boundary")

Key = tuple[str, str]  # namespace, name


class BoundarySyncError(RuntimeError):
    """Some NetworkPolicies could not be written; the message says which and why."""

    def __init__(self, message: str, list_forbidden: bool = False) -> None:
        super().__init__(message)
        #: the API refused to list NetworkPolicies (403): the controller lacks the permission
        self.list_forbidden = list_forbidden


@dataclass
class SyncResult:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    #: objects egress-mesh would need but must not touch (same name, not labelled as its own)
    foreign: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.deleted)


class NetworkPolicySync:
    def __init__(self, api: Any, mesh_name: str) -> None:
        """``api``: a ``kubernetes.client.NetworkingV1Api``."""
        self.api = api
        self.mesh_name = mesh_name

    @property
    def selector(self) -> str:
        return f"{BOUNDARY_LABEL}={self.mesh_name}"

    def existing(self) -> dict[Key, dict[str, Any]]:
        response = self.api.list_network_policy_for_all_namespaces(
            label_selector=self.selector, _preload_content=False
        )
        return {policy_key(item): item for item in json.loads(response.data).get("items") or ()}

    def sync(self, policies: Iterable[dict[str, Any]]) -> SyncResult:
        failed = _api_failures()
        try:
            current = self.existing()
        except failed as exc:
            raise BoundarySyncError(
                f"cannot list NetworkPolicies ({self.selector}): {_reason(exc)}",
                list_forbidden=getattr(exc, "status", None) == 403,
            ) from None
        wanted = {policy_key(p): p for p in policies}
        result, failures = SyncResult(), []
        for key, policy in sorted(wanted.items()):
            try:
                self._write(key, policy, current.get(key), result)
            except failed as exc:
                failures.append(f"NetworkPolicy {key[0]}/{key[1]}: {_reason(exc)}")
        for key in sorted(set(current) - set(wanted)):
            try:
                self.api.delete_namespaced_network_policy(key[1], key[0])
                result.deleted.append(f"{key[0]}/{key[1]}")
            except failed as exc:
                if getattr(exc, "status", None) != 404:
                    failures.append(f"NetworkPolicy {key[0]}/{key[1]}: cannot delete: {_reason(exc)}")
        if failures:
            raise BoundarySyncError("; ".join(failures))
        return result

    def _write(
        self, key: Key, policy: dict[str, Any], found: dict[str, Any] | None, result: SyncResult
    ) -> None:
        from kubernetes.client.exceptions import ApiException

        namespace, name = key
        if found is None:
            try:
                self.api.create_namespaced_network_policy(namespace, policy)
                result.created.append(f"{namespace}/{name}")
            except ApiException as exc:
                if exc.status == 409:  # not labelled as ours (we listed every labelled one)
                    result.foreign.append(
                        f"NetworkPolicy {namespace}/{name} exists without the label {self.selector}: "
                        "egress-mesh leaves it alone, so this namespace has no egress boundary"
                    )
                elif exc.status != 404:  # 404: the namespace is gone, and its pods with it
                    raise
            return
        if _same(found, policy):
            return
        body = {**policy, "metadata": {**policy["metadata"], **_version(found)}}
        self.api.replace_namespaced_network_policy(name, namespace, body)
        result.updated.append(f"{namespace}/{name}")


class BoundaryReconciler:
    """Keeps the cluster's boundary NetworkPolicies following the controller's snapshots."""

    def __init__(self, sync: NetworkPolicySync, resync: float = 60.0, retry_wait: Any = None) -> None:
        self.sync = sync
        self.resync = resync
        self.plan: BoundaryPlan | None = None
        self.last: SyncResult | None = None
        self._retry_wait = retry_wait or wait_exponential(multiplier=0.5, max=60)
        self._changed = asyncio.Event()
        self._quiet = False

    def update(self, snapshot: Snapshot) -> None:
        plan = compile_boundary(snapshot, self.sync.mesh_name)
        if plan == self.plan:
            return
        for warning in sorted(set(plan.warnings) - set(self.plan.warnings if self.plan else ())):
            log.warning("egress boundary: %s", warning)
        self.plan = plan
        self._changed.set()

    async def run(self) -> None:
        """Until cancelled. Nothing is written before the first ``update`` (the source's first full
        state): an empty plan before it would delete every policy."""
        while True:
            try:
                await asyncio.wait_for(self._changed.wait(), self.resync)
            except TimeoutError:
                pass
            self._changed.clear()
            if self.plan is not None:
                await self._apply_with_retries()

    def _worth_retrying(self, exc: BaseException) -> bool:
        """Every sync failure is retried, except a forbidden list while the boundary is off: a
        controller installed without the NetworkPolicy permission (an older install) then stays
        quiet instead of warning every minute about a feature nobody turned on."""
        if not isinstance(exc, BoundarySyncError):
            return False
        return not (exc.list_forbidden and self.plan is not None and not self.plan.policies)

    async def _apply_with_retries(self) -> None:
        retrying = AsyncRetrying(
            wait=self._retry_wait,
            retry=retry_if_exception(self._worth_retrying),
            before_sleep=lambda rs: log.warning(
                "egress boundary not in force yet (attempt %d): %s", rs.attempt_number, rs.outcome.exception()
            ),
        )
        try:
            async for attempt in retrying:
                with attempt:
                    self._changed.clear()
                    result = await asyncio.to_thread(self.sync.sync, self.plan.policies)  # newest plan
        except BoundarySyncError as exc:  # off, and not allowed to look: nothing to do (said once)
            if not self._quiet:
                log.info("egress boundary off; %s", exc)
            self._quiet = True
            return
        self._quiet = False
        self.last = result
        for message in result.foreign:
            log.warning("egress boundary: %s", message)
        if result.changed:
            log.info(
                "egress boundary NetworkPolicies: created %s, updated %s, deleted %s",
                result.created or "none",
                result.updated or "none",
                result.deleted or "none",
            )


def _same(found: dict[str, Any], wanted: dict[str, Any]) -> bool:
    labels = (found.get("metadata") or {}).get("labels") or {}
    wanted_labels = wanted["metadata"]["labels"]
    return found.get("spec") == wanted["spec"] and all(labels.get(k) == v for k, v in wanted_labels.items())


def _version(found: dict[str, Any]) -> dict[str, str]:
    version = (found.get("metadata") or {}).get("resourceVersion")
    return {"resourceVersion": version} if version else {}


def _api_failures() -> tuple[type[BaseException], ...]:
    """What a call through the client raises when the API refuses or cannot be reached, or when the
    client refuses a body (ValueError: its models validate what they send)."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    return ApiException, HTTPError, OSError, ValueError


def _reason(exc: BaseException) -> str:
    """One line: the API's message when it sent a Status, else the HTTP reason or the error."""
    status = getattr(exc, "status", None)
    if status is None:
        return " ".join(str(exc).split()) or type(exc).__name__
    try:
        message = json.loads(getattr(exc, "body", None) or "{}").get("message")
    except (ValueError, AttributeError):
        message = None
    text = message or getattr(exc, "reason", None) or str(exc)
    hint = (
        " (the controller's ClusterRole needs networkpolicies in networking.k8s.io)" if status == 403 else ""
    )
    return f"{status} {' '.join(str(text).split())}{hint}"
