"""Which pod a selector means, whether it is ready, and why not (pure, on ``kubectl get -o json``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence


def pod_is_ready(pod: dict) -> bool:
    status = pod.get("status") or {}
    if status.get("phase") == "Succeeded":
        return True
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


def live_pods(pods: Iterable[dict]) -> list[dict]:
    return [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]


def pick_pod(pods: Iterable[dict]) -> dict | None:
    """The pod the article's ``$(kubectl get pod ...)`` would mean: live, running, ready first."""
    candidates = live_pods(pods)
    candidates.sort(
        key=lambda p: (
            not pod_is_ready(p),
            (p.get("status") or {}).get("phase") != "Running",
            p["metadata"]["name"],
        )
    )
    return candidates[0] if candidates else None


def container_problem(status: dict) -> str | None:
    state = status.get("state") or {}
    name = status.get("name", "?")
    restarts = status.get("restartCount", 0)
    suffix = f" (restarts: {restarts})" if restarts else ""
    if "waiting" in state:
        waiting = state["waiting"] or {}
        return (
            f"container {name} waiting: {waiting.get('reason', '?')} {waiting.get('message', '')}".rstrip()
            + suffix
        )
    if "terminated" in state:
        term = state["terminated"] or {}
        if term.get("exitCode", 0) == 0 and term.get("reason") == "Completed":
            return None
        return (
            f"container {name} terminated: {term.get('reason', '?')} exit code {term.get('exitCode')} "
            f"{term.get('message', '')}".rstrip()
            + suffix
        )
    if not status.get("ready", False):
        return f"container {name} running but not ready{suffix}"
    return None


def describe_not_ready(
    namespace: str,
    selector: str,
    pods: Sequence[dict],
    events: Sequence[dict],
    logs: Mapping[tuple[str, str], str],
) -> str:
    """Why pods matching ``selector`` are not ready: status, events, last log lines."""
    what = f"pods -l {selector}" if selector else "pods"
    lines = [f"{what} in namespace {namespace} not ready:"]
    pods = live_pods(pods)
    if not pods:
        lines.append(
            "  no pod exists (check the Deployment/ReplicaSet events below, e.g. a webhook refusing pods)"
        )
    for pod in pods:
        if pod_is_ready(pod):
            continue
        meta, status = pod.get("metadata") or {}, pod.get("status") or {}
        lines.append(f"  pod {meta.get('name')}: phase {status.get('phase', '?')}")
        for cond in status.get("conditions") or []:
            if cond.get("status") != "True" and (cond.get("reason") or cond.get("message")):
                lines.append(
                    f"    {cond.get('type')}: {cond.get('reason', '')} {cond.get('message', '')}".rstrip()
                )
        for cs in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
            problem = container_problem(cs)
            if problem:
                lines.append(f"    {problem}")
    names = {(p.get("metadata") or {}).get("name") for p in pods}
    relevant = [
        e
        for e in events
        if e.get("type") == "Warning" or (e.get("involvedObject") or {}).get("name") in names or not pods
    ]
    if relevant:
        lines.append("  events:")
        for event in relevant[-15:]:
            obj = event.get("involvedObject") or {}
            lines.append(
                f"    {event.get('type', '')} {obj.get('kind', '')}/{obj.get('name', '')}: "
                f"{event.get('reason', '')}: {event.get('message', '')}"
            )
    for (pod, container), text in logs.items():
        tail = [line for line in text.splitlines() if line.strip()][-10:]
        if tail:
            lines.append(f"  last log lines of {pod}/{container}:")
            lines += [f"    {line}" for line in tail]
    return "\n".join(lines)
