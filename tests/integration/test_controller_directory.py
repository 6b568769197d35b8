"""The manifest-directory source: files written, changed and deleted become new config versions."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest
import yaml

from mesh.api.proxyconfig import Identity, Mode
from mesh.controller.server import ConfigStore
from mesh.controller.sources import DirectorySource, SourceError
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
