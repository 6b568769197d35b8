"""The manifest-directory source: files written, changed and deleted become new config versions."""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import threading
import time
from pathlib import Path

import pytest
import requests
import yaml
from aiohttp.test_utils import TestServer

from mesh.api.proxyconfig import Identity, Mode
from mesh.controller.server import ConfigStore, make_app
from mesh.controller.sources import DirectorySource, SourceError
from tests import hostile
from tests.article import egress_text, meshconfig_yaml
from tests.integration.helpers import until, write_atomically

CURL = Identity("curl", "curl")


@contextlib.asynccontextmanager
async def running(directory: Path):
    store = ConfigStore(source_description=str(directory))
    task = asyncio.create_task(DirectorySource(directory, interval=0.05).run(store.publish))
    try:
        yield store
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def hosts(store: ConfigStore) -> list[str]:
    cfg = store.config(CURL)
    return sorted(h for r in cfg.rules for h in r.hosts) if cfg else []


async def test_add_change_delete_files_give_new_versions(tmp_path: Path):
    write_atomically(tmp_path / "meshconfig.yaml", meshconfig_yaml(False))
    async with running(tmp_path) as store:
        await until(lambda: store.ready)
        first = store.config(CURL)
        assert first.mode is Mode.DISABLED

        write_atomically(tmp_path / "egress.yaml", egress_text(name="httpbin-80", host="httpbin.org"))
        await until(lambda: hosts(store) == ["httpbin.org"])
        second = store.config(CURL)
        assert second.mode is Mode.POLICY and second.version != first.version

        write_atomically(tmp_path / "egress.yaml", egress_text(name="httpbin-80", host="httpstat.us"))
        await until(lambda: hosts(store) == ["httpstat.us"])

        # two documents in one file, in a subdirectory
        (tmp_path / "more").mkdir()
        both = (
            egress_text(name="a", host="a.example.com")
            + "---\n"
            + egress_text(name="b", host="b.example.com")
        )
        write_atomically(tmp_path / "more" / "two.yml", both)
        await until(lambda: hosts(store) == ["a.example.com", "b.example.com", "httpstat.us"])

        (tmp_path / "egress.yaml").unlink()
        await until(lambda: hosts(store) == ["a.example.com", "b.example.com"])

        write_atomically(tmp_path / "meshconfig.yaml", meshconfig_yaml(True))
        await until(lambda: store.config(CURL).mode is Mode.PERMISSIVE)


async def test_bad_file_is_reported_by_name_and_the_rest_stays(tmp_path: Path):
    write_atomically(tmp_path / "meshconfig.yaml", meshconfig_yaml(False))
    write_atomically(tmp_path / "egress.yaml", egress_text(name="httpbin-80", host="httpbin.org"))
    async with running(tmp_path) as store:
        await until(lambda: hosts(store) == ["httpbin.org"])
        good_version = store.config(CURL).version

        write_atomically(tmp_path / "broken.yaml", "kind: Egress\nmetadata: {name: [unclosed\n")
        await until(lambda: bool(store.snapshot.errors))
        assert any("broken.yaml" in e for e in store.snapshot.errors), store.snapshot.errors
        assert store.config(CURL).version == good_version

        # a previously good file turning bad keeps its last good content
        write_atomically(tmp_path / "egress.yaml", "this: is: not: yaml")
        await until(lambda: any("egress.yaml" in e for e in store.snapshot.errors))
        assert hosts(store) == ["httpbin.org"]
        assert store.status()["errors"] == list(store.snapshot.errors)

        # fixing the files clears the errors
        (tmp_path / "broken.yaml").unlink()
        write_atomically(tmp_path / "egress.yaml", egress_text(name="httpbin-80", host="httpstat.us"))
        await until(lambda: hosts(store) == ["httpstat.us"] and not store.snapshot.errors)


async def test_invalid_object_in_a_file_is_refused_with_its_field(tmp_path: Path):
    write_atomically(tmp_path / "meshconfig.yaml", meshconfig_yaml(False))
    bad = yaml.safe_load(egress_text(name="bad-port", host="x.org"))
    bad["spec"]["ports"][0]["number"] = 0
    write_atomically(tmp_path / "bad.yaml", yaml.safe_dump(bad))
    async with running(tmp_path) as store:
        await until(lambda: store.ready)
        assert store.config(CURL).mode is Mode.DISABLED
        assert any("Egress curl/bad-port" in e and "spec.ports[0].number" in e for e in store.snapshot.errors)


def test_missing_directory_is_a_clear_error(tmp_path: Path):
    with pytest.raises(SourceError, match="does not exist"):
        DirectorySource(tmp_path / "nope")


# --- hostile input (issue 10) -------------------------------------------------------------------


async def test_hostile_files_are_reported_by_name_and_never_stop_the_source(tmp_path: Path):
    write_atomically(tmp_path / "meshconfig.yaml", meshconfig_yaml(False))
    write_atomically(tmp_path / "egress.yaml", egress_text(name="httpbin-80", host="httpbin.org"))
    store = ConfigStore(source_description=str(tmp_path))
    task = asyncio.create_task(DirectorySource(tmp_path, interval=0.05).run(store.publish))
    try:
        await until(lambda: hosts(store) == ["httpbin.org"])
        good_version = store.config(CURL).version
        bad = {**hostile.ALL, "odd-shapes.yaml": hostile.ODD_SHAPES}
        for name, text in bad.items():
            write_atomically(tmp_path / name, text)
        (tmp_path / "latin1.yaml").write_bytes(b"kind: Caf\xe9\n")
        await until(lambda: all(any(n in e for e in store.snapshot.errors) for n in [*bad, "latin1.yaml"]))
        assert not task.done()
        assert store.config(CURL).version == good_version  # the good files are untouched
        for name in hostile.ALL:
            (error,) = [e for e in store.snapshot.errors if name in e]
            assert error.startswith(f"{tmp_path / name}: "), error

        # the source still follows changes
        write_atomically(tmp_path / "more.yaml", egress_text(name="more", host="more.example.com"))
        await until(lambda: hosts(store) == ["httpbin.org", "more.example.com"])
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_fifo_among_the_manifests_blocks_nothing(tmp_path: Path):
    write_atomically(tmp_path / "meshconfig.yaml", meshconfig_yaml(False))
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    done = threading.Event()

    def rescue() -> None:  # releases a reader stuck waiting for a writer (the code before issue 10)
        while not done.wait(1):
            with contextlib.suppress(OSError):
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))

    threading.Thread(target=rescue, daemon=True).start()
    started = time.monotonic()
    try:
        async with running(tmp_path) as store:
            await until(
                lambda: store.ready and any("fifo.yaml" in e for e in store.snapshot.errors), timeout=10
            )
            assert time.monotonic() - started < 3
            assert any(e.endswith("fifo.yaml: not a regular file") for e in store.snapshot.errors)
    finally:
        done.set()


async def test_the_object_in_force_stays_when_an_earlier_file_defines_it_again(tmp_path: Path):
    """The issue's case: a dropped file that sorts first used to replace Egress httpbin-80."""
    write_atomically(tmp_path / "meshconfig.yaml", meshconfig_yaml(False))
    write_atomically(tmp_path / "policy.yaml", egress_text(name="httpbin-80", host="httpbin.org"))
    async with running(tmp_path) as store:
        await until(lambda: hosts(store) == ["httpbin.org"])
        write_atomically(tmp_path / "00-dropped.yaml", egress_text(name="httpbin-80", host="httpstat.us"))
        await until(lambda: any("defined twice" in e for e in store.snapshot.errors))
        assert hosts(store) == ["httpbin.org"]
        (error,) = store.status()["errors"]
        assert error == (
            f"{tmp_path / '00-dropped.yaml'}: document 1 (line 1): Egress curl/httpbin-80: metadata.name: "
            f"is defined twice: {tmp_path / 'policy.yaml'}: document 1 (line 1) stays in force, "
            "this copy is refused"
        )
        # an unrelated change later does not flip it either
        write_atomically(tmp_path / "other.yaml", egress_text(name="other", host="other.example.com"))
        await until(lambda: "other.example.com" in hosts(store))
        assert "httpstat.us" not in hosts(store)
        # once the live copy is gone, the remaining one is the object
        (tmp_path / "policy.yaml").unlink()
        await until(lambda: hosts(store) == ["httpstat.us", "other.example.com"])
        assert store.snapshot.errors == ()


async def test_a_large_manifest_is_parsed_off_the_event_loop(tmp_path: Path):
    """6.3 MB of valid Egresses froze the controller for 10 s; /healthz must keep answering."""
    write_atomically(tmp_path / "meshconfig.yaml", meshconfig_yaml(False))
    store = ConfigStore(source_description=str(tmp_path))
    server = TestServer(make_app(store), host="127.0.0.1")
    await server.start_server()
    task = asyncio.create_task(DirectorySource(tmp_path, interval=0.05).run(store.publish))
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    admitted = threading.Event()

    def probe() -> None:  # a client outside the event loop, as the kubelet's probe is
        with requests.Session() as session:
            while not admitted.is_set():
                sent = time.monotonic()
                assert session.get(f"http://127.0.0.1:{server.port}/healthz", timeout=120).status_code == 200
                latencies.append(time.monotonic() - sent)
                time.sleep(0.05)

    try:
        await until(lambda: store.ready)
        text = hostile.large_manifest(16_000)
        assert 6_000_000 < len(text) < 6_600_000
        prober = threading.Thread(target=probe, daemon=True)
        prober.start()
        started = loop.time()
        write_atomically(tmp_path / "large.yaml", text)
        await until(lambda: dict(store.snapshot.counts).get("Egress") == 16_000, timeout=600)
        took = loop.time() - started
        admitted.set()
        await asyncio.to_thread(prober.join, 130)
        print(
            f"\n6.3 MB manifest admitted in {took:.1f} s; /healthz during it: {len(latencies)} requests, "
            f"median {statistics.median(latencies) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms"
        )
        # what remains are the garbage collector's full passes over millions of new objects (~0.2 s)
        assert len(latencies) > 10 and max(latencies) < 1.0
        assert store.snapshot.errors == ()

        # a small change next to it: only the changed file is parsed and the changed object validated
        changed = loop.time()
        write_atomically(tmp_path / "egress.yaml", egress_text(name="httpbin-80", host="httpbin.org"))
        await until(lambda: hosts(store) == ["httpbin.org"], timeout=60)
        print(f"a small change next to it reached the config in {loop.time() - changed:.1f} s")
    finally:
        admitted.set()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await server.close()
