"""KubernetesSource list/watch logic against a scripted API (no cluster needed).

The scripted API stands in for the API server's list and watch responses; what is checked is
what the controller would publish: the objects, re-listing after 410 Gone, retrying failures.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time

from tenacity import wait_fixed

from mesh.controller.sources import Gone, KubernetesSource, SourceState, Watched


def egress(name: str, rv: str) -> dict:
    return {"metadata": {"name": name, "namespace": "curl", "resourceVersion": rv}, "spec": {}}


class ScriptedApi:
    """list() answers the next scripted list; watch(rv) plays the next scripted event batch."""

    def __init__(self, lists: list, watches: list) -> None:
        self.lists, self.watches = lists, watches
        self.list_calls = 0
        self.watch_versions: list[str] = []
        self.lock = threading.Lock()

    def list_fn(self) -> dict:
        with self.lock:
            self.list_calls += 1
            answer = self.lists.pop(0) if len(self.lists) > 1 else self.lists[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def watch_fn(self, version: str):
        with self.lock:
            self.watch_versions.append(version)
            batch = self.watches.pop(0) if self.watches else []
        if not batch:
            time.sleep(0.02)  # an idle watch that times out
        for event in batch:
            if isinstance(event, Exception):
                raise event
            yield event


def recorder(states: list[SourceState]):
    async def publish(state: SourceState) -> None:
        states.append(state)

    return publish


async def collect(source: KubernetesSource, until, timeout: float = 5.0) -> list[SourceState]:
    states: list[SourceState] = []
    task = asyncio.create_task(source.run(recorder(states)))
    try:
        deadline = time.monotonic() + timeout
        while not (states and until(states[-1])):
            assert time.monotonic() < deadline, f"never reached; last states: {states[-3:]}"
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return states


def names(state: SourceState, kind: str) -> list[str]:
    return sorted(o["metadata"]["name"] for o in state.objects if o["kind"] == kind)


async def test_list_then_watch_events_and_relist_after_410():
    api = ScriptedApi(
        lists=[
            {"metadata": {"resourceVersion": "10"}, "items": [egress("a", "9")]},
            {"metadata": {"resourceVersion": "20"}, "items": [egress("a", "9"), egress("c", "19")]},
        ],
        watches=[
            [
                {"type": "ADDED", "raw_object": egress("b", "11")},
                {"type": "BOOKMARK", "raw_object": {"metadata": {"resourceVersion": "12"}}},
                {"type": "DELETED", "raw_object": egress("a", "13")},
            ],
            *[[]] * 25,  # idle watches: time for the controller to publish the state above
            [{"type": "ERROR", "raw_object": {"kind": "Status", "code": 410, "message": "too old"}}],
        ],
    )
    source = KubernetesSource(
        resources=[Watched("Egress", "policy.openservicemesh.io/v1alpha1", api.list_fn, api.watch_fn)],
        retry_wait=wait_fixed(0.01),
    )
    states = await collect(
        source,
        lambda s: names(s, "Egress") == ["a", "c"] and api.list_calls >= 2 and "20" in api.watch_versions,
    )
    seen = [names(s, "Egress") for s in states]
    assert ["b"] in seen  # b added, a deleted (intermediate states may be coalesced)
    assert api.watch_versions[:2] == ["10", "13"]  # resumes from the last resourceVersion seen
    assert "20" in api.watch_versions  # after the 410 the watch starts from the new list
    assert all(o["apiVersion"] == "policy.openservicemesh.io/v1alpha1" for o in states[-1].objects)


async def test_watch_raising_gone_relists_and_failures_are_retried():
    api = ScriptedApi(
        lists=[
            ConnectionError("API server unreachable"),
            {"metadata": {"resourceVersion": "5"}, "items": [egress("a", "5")]},
            {"metadata": {"resourceVersion": "7"}, "items": [egress("z", "7")]},
        ],
        watches=[[RuntimeError("stream broken")], [Gone()]],
    )
    source = KubernetesSource(
        resources=[Watched("Egress", "policy.openservicemesh.io/v1alpha1", api.list_fn, api.watch_fn)],
        retry_wait=wait_fixed(0.01),
    )
    await collect(source, lambda s: names(s, "Egress") == ["z"])
    assert api.watch_versions[:2] == ["5", "5"]  # the broken stream is retried from the same version
    assert api.list_calls >= 3  # the failed list, the list retried, the list after Gone


async def test_nothing_is_published_until_every_kind_has_listed():
    slow_ready = threading.Event()
    fast = ScriptedApi([{"metadata": {"resourceVersion": "1"}, "items": [egress("a", "1")]}], [])
    namespaces = ScriptedApi(
        [
            {
                "metadata": {"resourceVersion": "1"},
                "items": [{"metadata": {"name": "curl", "resourceVersion": "1"}}],
            }
        ],
        [],
    )

    def slow_list() -> dict:
        slow_ready.wait(5)
        return namespaces.list_fn()

    source = KubernetesSource(
        resources=[
            Watched("Egress", "policy.openservicemesh.io/v1alpha1", fast.list_fn, fast.watch_fn),
            Watched("Namespace", "v1", slow_list, namespaces.watch_fn),
        ],
        retry_wait=wait_fixed(0.01),
    )
    states: list[SourceState] = []
    task = asyncio.create_task(source.run(recorder(states)))
    await asyncio.sleep(0.3)
    assert states == []
    slow_ready.set()
    for _ in range(200):
        if states:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert names(states[0], "Egress") == ["a"] and names(states[0], "Namespace") == ["curl"]
