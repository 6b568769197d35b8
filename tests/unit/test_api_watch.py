"""The one file watcher (mesh/api/watch.py): events, not a poll loop, and renames of one file."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from mesh.api.watch import changes


async def first_change(path, act, **kwargs) -> float:
    """Seconds from ``act()`` to the first wake-up of ``changes(path)``."""
    stream = changes(path, **kwargs)
    waiter = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0.3)  # the watch is set up
    started = time.monotonic()
    act()
    await asyncio.wait_for(waiter, 10)
    await stream.aclose()
    return time.monotonic() - started


async def test_a_new_file_wakes_the_watcher_long_before_the_poll_interval(tmp_path):
    took = await first_change(tmp_path, lambda: (tmp_path / "a.yaml").write_text("x"), poll=30, rescan=30)
    assert took < 3


async def test_one_file_replaced_by_rename_is_seen(tmp_path):
    target = tmp_path / "config.json"
    target.write_text("{}")

    def replace():
        (tmp_path / ".config.json.tmp").write_text('{"v": 2}')
        os.replace(tmp_path / ".config.json.tmp", target)

    assert await first_change(target, replace, poll=30, rescan=30) < 3


async def test_one_file_watch_ignores_its_neighbours(tmp_path):
    target = tmp_path / "config.json"
    target.write_text("{}")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(
            first_change(target, lambda: (tmp_path / "other.json").write_text("{}"), rescan=30), 2
        )


async def test_without_events_it_still_wakes_every_rescan(tmp_path):
    assert await first_change(tmp_path, lambda: None, poll=30, rescan=0.5) < 3


async def test_polling_where_there_are_no_events(tmp_path, monkeypatch):
    monkeypatch.setenv("WATCHFILES_FORCE_POLLING", "1")
    took = await first_change(tmp_path, lambda: (tmp_path / "a.yaml").write_text("x"), poll=0.1, rescan=30)
    assert took < 3


async def test_a_configmap_volume_update_is_seen(tmp_path):
    """The kubelet's atomic writer: ``config.json -> ..data/config.json``, ``..data -> ..v1``; an
    update writes ``..v2`` and renames a new link over ``..data``."""
    (tmp_path / "..v1").mkdir()
    (tmp_path / "..v1" / "config.json").write_text("{}")
    (tmp_path / "..data").symlink_to("..v1")
    target = tmp_path / "config.json"
    target.symlink_to("..data/config.json")

    def update():
        (tmp_path / "..v2").mkdir()
        (tmp_path / "..v2" / "config.json").write_text('{"v": 2}')
        (tmp_path / "..data_tmp").symlink_to("..v2")
        os.replace(tmp_path / "..data_tmp", tmp_path / "..data")

    assert await first_change(target, update, poll=30, rescan=30) < 3
    assert target.read_text() == '{"v": 2}'
