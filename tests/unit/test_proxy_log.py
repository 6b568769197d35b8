"""The data plane's JSON lines: the fast encoder writes what json.dumps writes, and records queued
during a turn of the event loop reach stdout, in order, by the end of that turn."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from mesh.gateway import accesslog
from mesh.proxy import log

_SCALARS = st.none() | st.booleans() | st.integers() | st.text() | st.floats()
_VALUES = _SCALARS | st.lists(st.text(), max_size=3)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(), _VALUES, max_size=8))
def test_encoders_write_what_json_dumps_writes(record):
    assert log.encode(record) == json.dumps(record)
    assert accesslog.dumps(record) == json.dumps(record, ensure_ascii=False)


def test_timestamp_is_iso_utc_with_truncated_milliseconds():
    before = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    stamp = log.timestamp()
    after = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert before <= stamp <= after and len(stamp) == len("2026-11-25T17:30:01.123Z")


async def test_records_of_one_turn_are_written_together_by_its_end(capsys):
    log.emit("one", n=1)
    log.emit("two", n=2, skipped=None)
    assert capsys.readouterr().out == ""  # queued, not yet written
    await asyncio.sleep(0)
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line) | {"time": "t"} for line in lines] == [
        {"time": "t", "event": "one", "n": 1},
        {"time": "t", "event": "two", "n": 2},
    ]


def test_outside_an_event_loop_a_record_is_written_at_once(capsys):
    log.emit("now", n=3)
    assert json.loads(capsys.readouterr().out)["event"] == "now"
