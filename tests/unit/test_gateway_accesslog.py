"""The access-log record contract (mesh.api.accesslog): field order, id and time formats, schema validation;
and the gateway's writer (mesh.gateway.accesslog) writes exactly those records."""

from __future__ import annotations

import asyncio
import io
import json
import re
import time
from datetime import UTC, datetime

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from mesh.api import accesslog
from mesh.gateway.accesslog import dumps, emit, request_line

SAMPLE = dict(
    connection_id="f34e0b0aa1034190",
    request_time=1668068131.8645,
    source_address="10.42.0.17",
    source_port=36856,
    host="httpbin.org",
    path="/get",
    method="HEAD",
    status=200,
    source_identity="curl/curl",
)


def sample_request(**overrides) -> dict:
    return accesslog.request_record(**{**SAMPLE, **overrides})


def sample_connection(**overrides) -> dict:
    values = dict(
        connection_id="f34e0b0aa1034190",
        start_time=1668068131.8,
        source_address="10.42.0.17",
        source_port=36856,
        destination_address="203.0.113.7",
        destination_port=443,
        end_time=1668068132.0,
        protocol="https",
        server_names=["httpbin.org"],
    )
    values.update(overrides)
    return accesslog.connection_record(**values)


def test_request_record_matches_the_article_line():
    line = dumps(sample_request())
    article = (
        '{"connection_id": "f34e0b0aa1034190", "request_time": "2022-11-10T08:15:31.864Z", '
        '"source_address": "10.42.0.17", "source_port": 36856, "host": "httpbin.org", '
        '"path": "/get", "method": "HEAD"'
    )
    assert line.startswith(article)
    assert accesslog.validate(json.loads(line)) == "request"


def test_connection_record_fields_in_order_with_server_names():
    record = sample_connection()
    assert tuple(record)[:8] == (*accesslog.CONNECTION_FIELDS, "serverNames")
    assert record["start_time"] == "2022-11-10T08:15:31.800Z"
    assert record["serverNames"] == ["httpbin.org"]
    assert accesslog.validate(record) == "connection"


def test_connection_record_without_tls_has_no_server_names():
    assert "serverNames" not in sample_connection(server_names=[])


def test_connection_ids_are_16_lowercase_hex_and_distinct():
    ids = {accesslog.new_connection_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(re.fullmatch(r"[0-9a-f]{16}", i) for i in ids)


@pytest.mark.parametrize(
    "epoch, text",
    [
        (0, "1970-01-01T00:00:00.000Z"),
        (1668068131.8649, "2022-11-10T08:15:31.864Z"),
        (1.0009, "1970-01-01T00:00:01.000Z"),
        (-1.5, "1969-12-31T23:59:58.500Z"),  # before 1970: the fraction counts back from the second
        (-0.0004, "1969-12-31T23:59:59.999Z"),
        (-86400.25, "1969-12-30T23:59:59.750Z"),
        (-1.000001, "1969-12-31T23:59:58.999Z"),
    ],
)
def test_times_are_utc_with_milliseconds(epoch, text):
    assert accesslog.iso_time(epoch) == text


@given(st.floats(min_value=0, max_value=2**33) | st.sampled_from([1.9999995, 1668068131.9999996, 1.0000005]))
@example(1668068131.9999995)
def test_times_are_those_datetime_gives(epoch):
    moment = datetime.fromtimestamp(epoch, UTC)
    expected = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    assert accesslog.iso_time(epoch) == expected


@pytest.mark.parametrize(
    "broken, message",
    [
        (lambda r: r.update(connection_id="F34E0B0AA1034190"), "connection_id"),
        (lambda r: r.update(request_time="2022-11-10 08:15:31"), "request_time"),
        (lambda r: r.update(source_port="36856"), "source_port"),
    ],
)
def test_validate_names_the_broken_field(broken, message):
    record = sample_request()
    broken(record)
    with pytest.raises(accesslog.InvalidRecord, match=message):
        accesslog.validate(record)


def test_validate_refuses_a_record_missing_a_field_as_missing_not_as_misordered():
    """The schema's ``required`` must catch it: the field-order check would refuse it anyway, for
    the wrong reason."""
    record = sample_request()
    record.pop("method")
    with pytest.raises(accesslog.InvalidRecord) as refused:
        accesslog.validate(record)
    assert str(refused.value) == "request record (record): 'method' is a required property"
    record = sample_connection()
    record.pop("end_time")
    with pytest.raises(
        accesslog.InvalidRecord, match=r"^connection record \(record\): 'end_time' is a required"
    ):
        accesslog.validate(record)


def test_validate_names_a_nested_field_by_its_path():
    with pytest.raises(accesslog.InvalidRecord) as refused:
        accesslog.validate(sample_connection(server_names=["httpbin.org", 5]))
    assert str(refused.value) == "connection record serverNames.1: 5 is not of type 'string'"


def test_validate_rejects_reordered_fields():
    record = sample_request()
    reordered = {"host": record.pop("host"), **record}
    with pytest.raises(accesslog.InvalidRecord, match="must start with"):
        accesslog.validate(reordered)


def test_emit_writes_one_flushed_line_and_parse_lines_splits_kinds():
    out = io.StringIO()
    emit(sample_request(), out)
    out.write("not json\n")
    emit(sample_connection(), out)
    requests, connections = accesslog.parse_lines(out.getvalue())
    assert [r["path"] for r in requests] == ["/get"]
    assert [c["destination_port"] for c in connections] == [443]
    assert out.getvalue().count("\n") == 3


# ---------------------------------------------------------------- every field (issue 14, item 9)


def test_request_record_has_every_field_with_its_name_and_value():
    record = sample_request(duration_ms=3.1, response_bytes=230)
    assert record == {
        "connection_id": "f34e0b0aa1034190",
        "request_time": "2022-11-10T08:15:31.864Z",
        "source_address": "10.42.0.17",
        "source_port": 36856,
        "host": "httpbin.org",
        "path": "/get",
        "method": "HEAD",
        "status": 200,
        "source_identity": "curl/curl",
        "duration_ms": 3.1,
        "response_bytes": 230,
    }
    assert accesslog.validate(record) == "request"


def test_request_record_defaults():
    record = accesslog.request_record(
        connection_id="f34e0b0aa1034190",
        request_time=0,
        source_address="10.42.0.17",
        source_port=1,
        host="h",
        path="/",
        method="GET",
        status=None,
    )
    assert {k: record[k] for k in ("status", "source_identity", "duration_ms", "response_bytes")} == {
        "status": None,
        "source_identity": "",
        "duration_ms": None,
        "response_bytes": 0,
    }
    assert accesslog.validate(record) == "request"


def test_connection_record_has_every_field_in_order():
    record = sample_connection(source_identity="curl/curl", bytes_up=78, bytes_down=230)
    assert list(record.items()) == [
        ("id", "f34e0b0aa1034190"),
        ("start_time", "2022-11-10T08:15:31.800Z"),
        ("source_address", "10.42.0.17"),
        ("source_port", 36856),
        ("destination_address", "203.0.113.7"),
        ("destination_port", 443),
        ("end_time", "2022-11-10T08:15:32.000Z"),
        ("serverNames", ["httpbin.org"]),
        ("protocol", "https"),
        ("source_identity", "curl/curl"),
        ("bytes_up", 78),
        ("bytes_down", 230),
    ]


def test_connection_record_defaults_and_the_error_of_a_tunnel_that_failed():
    record = sample_connection(server_names=[], destination_address=None, error="connect refused")
    assert list(record)[7:] == ["protocol", "source_identity", "bytes_up", "bytes_down", "error"]
    assert (record["source_identity"], record["bytes_up"], record["bytes_down"]) == ("", 0, 0)
    assert (record["destination_address"], record["error"]) == (None, "connect refused")
    assert accesslog.validate(record) == "connection"
    assert "error" not in sample_connection()


def test_times_are_utc_whatever_the_local_time_zone(monkeypatch):
    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    try:
        assert accesslog.iso_time(1668068131.8649) == "2022-11-10T08:15:31.864Z"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_lines_keep_non_ascii_as_is():
    assert '"path": "/bücher"' in dumps(sample_request(path="/bücher"))


def test_parse_lines_skips_other_json_and_broken_lines_and_goes_on():
    text = "\n".join(
        [
            '{"event": "listener", "state": "open"}',
            "{broken",
            "[1, 2]",
            dumps(sample_request()),
            dumps(sample_connection()),
        ]
    )
    requests, connections = accesslog.parse_lines(text)
    assert (len(requests), len(connections)) == (1, 1)


def test_kind_refuses_what_is_not_a_record():
    with pytest.raises(
        accesslog.InvalidRecord, match=r"^not an access-log record \(no connection_id or id\)"
    ):
        accesslog.kind({"event": "listener"})


_TEXT = st.text(max_size=12) | st.sampled_from(["httpbin.org", '/get?a="b"', "ü\\x", "\u2028", "\x00"])


@given(
    st.tuples(
        _TEXT,
        st.floats(min_value=0, max_value=2**33),
        _TEXT,
        st.integers(0, 65535),
        _TEXT,
        _TEXT,
        _TEXT,
        st.none() | st.integers(100, 999),
        _TEXT,
        st.none() | st.floats(allow_nan=True, allow_infinity=True) | st.integers(0, 10),
        st.integers(0, 2**40),
    )
)
def test_request_line_is_the_record_as_emit_writes_it(values):
    names = (
        "connection_id", "request_time", "source_address", "source_port", "host", "path", "method", "status",
        "source_identity", "duration_ms", "response_bytes",
    )  # fmt: skip
    record = accesslog.request_record(**dict(zip(names, values, strict=True)))
    assert request_line(*values) == dumps(record)


@pytest.mark.parametrize(
    "duration, text",
    [
        (3, "3"),
        (3.1, "3.1"),
        (1e16, "1e+16"),
        (float("nan"), "NaN"),
        (float("inf"), "Infinity"),
        (float("-inf"), "-Infinity"),
        (None, "null"),
    ],
)
def test_request_line_writes_the_duration_as_json_dumps_does(duration, text):
    """Python's json writes NaN and the infinities as NaN, Infinity and -Infinity (what json.loads
    reads back), not as Python's nan and inf, nor as null."""
    values = {**SAMPLE, "method": "GET", "duration_ms": duration, "response_bytes": 230}
    line = request_line(**values)
    assert f'"duration_ms": {text}, "response_bytes": 230}}' in line
    assert line == dumps(accesslog.request_record(**values))


def test_emit_without_a_stream_writes_the_line_to_stdout_at_once_outside_a_loop(capsys):
    emit(sample_request())
    assert capsys.readouterr().out == dumps(sample_request()) + "\n"


def test_emit_without_a_stream_in_a_loop_writes_the_turn_s_records_at_its_end(capsys):
    async def two_records() -> str:
        emit(sample_request(path="/one"))
        emit(sample_connection())
        before = capsys.readouterr().out
        await asyncio.sleep(0)
        return before

    assert asyncio.run(two_records()) == ""
    out = capsys.readouterr().out
    assert out == dumps(sample_request(path="/one")) + "\n" + dumps(sample_connection()) + "\n"
    requests, connections = accesslog.parse_lines(out)
    assert ([r["path"] for r in requests], [c["id"] for c in connections]) == (["/one"], ["f34e0b0aa1034190"])
