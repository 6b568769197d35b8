"""What the gateway records when each message arrives in a piece of its own (how clients and servers
usually send them), for heads of plain ASCII and for heads with a byte over 0x7f in a field value,
which the observer reads another way: the records must be the same. Also: answers cut at every byte,
and framings only a whole message shows (a reason phrase of digits, Content-Length with chunked)."""

from __future__ import annotations

import itertools

import pytest

from mesh.gateway.httpstream import HttpObserver

NOTES = {"plain": b"", "non-ascii": b"X-Note: caf\xe9\r\n"}


def message(start: bytes, *fields: bytes, note: bytes = b"", body: bytes = b"") -> bytes:
    """A message: the start line, then the note field (if any), then ``fields``, then ``body``."""
    return start + b"\r\n" + note + b"".join(field + b"\r\n" for field in fields) + b"\r\n" + body


def record(client: list[bytes], server: list[bytes]) -> tuple[list[tuple], bool]:
    """Each client piece, then each server piece; the exchanges recorded and whether the observer had
    stopped before the close."""
    clock = itertools.count(100)
    observer = HttpObserver("default.test", clock=lambda: float(next(clock)))
    for piece in client:
        observer.client_data(piece)
    recorded = []
    for piece in server:
        recorded += observer.server_data(piece)
    stopped = observer.stopped
    recorded += observer.close()
    fields = [(e.method, e.host, e.path, e.status, e.response_bytes, e.started, e.finished) for e in recorded]
    return fields, stopped


@pytest.mark.parametrize("note", NOTES.values(), ids=NOTES)
def test_a_request_and_its_answer_each_whole(note):
    get = message(b"GET /get HTTP/1.1", b"Host: A.test:8080", note=note)
    ok = message(b"HTTP/1.1 201 Created", b"Content-Length: 2", note=note, body=b"ok")
    assert record([get], [ok]) == ([("GET", "a.test", "/get", 201, 2, 100.0, 101.0)], False)


@pytest.mark.parametrize("note", NOTES.values(), ids=NOTES)
def test_the_host_field_last_in_a_whole_request_is_read_to_its_end(note):
    get = message(b"PUT /x HTTP/1.1", b"X-A: 1", b"Host: b.test", note=note)
    answer = message(b"HTTP/1.1 200 OK", b"Content-Length: 0", note=note)
    assert record([get], [answer])[0] == [("PUT", "b.test", "/x", 200, 0, 100.0, 101.0)]


@pytest.mark.parametrize("note", NOTES.values(), ids=NOTES)
def test_whole_requests_one_after_another_are_recorded_once_each(note):
    first = message(b"GET /1 HTTP/1.1", b"Host: a.test", note=note)
    second = message(b"GET /2 HTTP/1.1", b"Host: b.test", note=note)
    ok = message(b"HTTP/1.1 200 OK", b"Content-Length: 2", note=note, body=b"ok")
    assert record([first, second], [ok, ok])[0] == [
        ("GET", "a.test", "/1", 200, 2, 100.0, 102.0),
        ("GET", "b.test", "/2", 200, 2, 101.0, 103.0),
    ]


@pytest.mark.parametrize("note", NOTES.values(), ids=NOTES)
@pytest.mark.parametrize(
    "fields",
    [(), (b"Content-Length: 0",), (b"Content-Length:host",), (b"Transfer-Encoding: chunked",)],
    ids=["none", "length", "length-host", "chunked"],
)
def test_a_whole_request_without_a_host_field_has_the_tunnel_s_host(fields, note):
    """Whatever its other fields say, the host of a request without Host (nor an absolute target)
    is the tunnel's. A request that does not follow the rules (Content-Length: host) is still
    recorded; only what follows it is not observed."""
    request = message(b"GET /x HTTP/1.1", *fields, note=note)
    if fields and fields[0].startswith(b"Transfer"):
        request += b"0\r\n\r\n"
    answer = message(b"HTTP/1.1 200 OK", b"Content-Length: 2", note=note, body=b"ok")
    assert record([request], [answer])[0] == [("GET", "default.test", "/x", 200, 2, 100.0, 101.0)]


@pytest.mark.parametrize("note", NOTES.values(), ids=NOTES)
def test_the_bytes_after_a_head_answer_in_the_same_piece_start_the_next_answer(note):
    head = message(b"HEAD /h HTTP/1.1", b"Host: a.test", note=note)
    get = message(b"GET /g HTTP/1.1", b"Host: a.test", note=note)
    head_answer = message(b"HTTP/1.1 200 OK", b"Content-Length: 5", note=note)
    ok = message(b"HTTP/1.1 200 OK", b"Content-Length: 2", note=note, body=b"ok")
    assert record([head, get], [head_answer + ok[:5], ok[5:]])[0] == [
        ("HEAD", "a.test", "/h", 200, 0, 100.0, 102.0),
        ("GET", "a.test", "/g", 200, 2, 101.0, 103.0),
    ]


@pytest.mark.parametrize("note", NOTES.values(), ids=NOTES)
@pytest.mark.parametrize("status", [b"204 No Content", b"304 Not Modified"])
def test_the_bytes_after_a_bodyless_answer_in_the_same_piece_start_the_next_answer(status, note):
    get = message(b"GET /g HTTP/1.1", b"Host: a.test", note=note)
    bodyless = message(b"HTTP/1.1 " + status, b"Content-Length: 5", note=note)
    ok = message(b"HTTP/1.1 200 OK", b"Content-Length: 2", note=note, body=b"ok")
    assert record([get, get], [bodyless + ok[:5], ok[5:]])[0] == [
        ("GET", "a.test", "/g", int(status[:3]), 0, 100.0, 102.0),
        ("GET", "a.test", "/g", 200, 2, 101.0, 103.0),
    ]


@pytest.mark.parametrize("note", NOTES.values(), ids=NOTES)
def test_a_connect_answered_2xx_in_a_whole_piece_opens_a_tunnel(note):
    connect = message(b"CONNECT b.test:443 HTTP/1.1", b"Host: b.test:443", note=note)
    answer = message(b"HTTP/1.1 200 Connection Established", b"Content-Length: 3", note=note, body=b"abc")
    ok = message(b"HTTP/1.1 200 OK", b"Content-Length: 2", body=b"ok")
    assert record([connect], [answer, ok]) == (
        [("CONNECT", "b.test", "b.test:443", 200, 0, 100.0, 101.0)],
        True,
    )


@pytest.mark.parametrize("note", NOTES.values(), ids=NOTES)
def test_an_interim_answer_in_a_whole_piece_answers_nothing(note):
    post = message(b"POST /p HTTP/1.1", b"Host: a.test", b"Content-Length: 1", note=note, body=b"x")
    interim = message(b"HTTP/1.1 199 Whatever", b"Content-Length: 0", note=note)
    ok = message(b"HTTP/1.1 200 OK", b"Content-Length: 2", note=note, body=b"ok")
    assert record([post], [interim, ok])[0] == [("POST", "a.test", "/p", 200, 2, 100.0, 101.0)]


@pytest.mark.parametrize("note", NOTES.values(), ids=NOTES)
@pytest.mark.parametrize("start", [b"HTTP/2.0 200 OK", b"HTTP/1.1 2x0 OK", b"HTTP/1.1 \xb200 OK"])
def test_a_whole_answer_that_is_not_http_1_answers_nothing(start, note):
    get = message(b"GET /g HTTP/1.1", b"Host: a.test", note=note)
    answer = message(start, b"Content-Length: 2", note=note, body=b"ok")
    assert record([get], [answer])[0] == [("GET", "a.test", "/g", None, 0, 100.0, None)]


@pytest.mark.parametrize("note", NOTES.values(), ids=NOTES)
def test_the_status_is_the_code_not_a_reason_phrase_of_digits(note):
    get = message(b"GET /g HTTP/1.1", b"Host: a.test", note=note)
    answer = message(b"HTTP/1.1 404 200", b"Content-Length: 2", note=note, body=b"no")
    assert record([get], [answer])[0] == [("GET", "a.test", "/g", 404, 2, 100.0, 101.0)]


@pytest.mark.parametrize("note", NOTES.values(), ids=NOTES)
def test_a_chunked_answer_with_a_content_length_too_is_read_as_chunked(note):
    """RFC 9112 6.3: Transfer-Encoding overrides Content-Length (here the length of the chunked
    body on the wire, so a reader trusting the length would also find the answer whole)."""
    chunked = b"3\r\nabc\r\n0\r\n\r\n"
    get = message(b"GET /g HTTP/1.1", b"Host: a.test", note=note)
    answer = message(
        b"HTTP/1.1 200 OK",
        b"Content-Length: %d" % len(chunked),
        b"Transfer-Encoding: chunked",
        note=note,
        body=chunked,
    )
    assert record([get], [answer])[0] == [("GET", "a.test", "/g", 200, 3, 100.0, 101.0)]


@pytest.mark.parametrize("note", NOTES.values(), ids=NOTES)
def test_an_answer_cut_in_two_anywhere_is_recorded_as_whole(note):
    """An answer with a 200-byte body and the next answer, cut into two pieces at every byte."""
    get = message(b"GET /g HTTP/1.1", b"Host: a.test", note=note)
    long = message(b"HTTP/1.1 200 OK", b"Content-Length: 200", note=note, body=bytes(range(200)))
    ok = message(b"HTTP/1.1 200 OK", b"Content-Length: 2", note=note, body=b"ok")
    server = long + ok
    expected = [("GET", "a.test", "/g", 200, 200), ("GET", "a.test", "/g", 200, 2)]
    for cut in range(1, len(server)):
        recorded, _ = record([get, get], [server[:cut], server[cut:]])
        assert [r[:5] for r in recorded] == expected, cut


@pytest.mark.parametrize("note", NOTES.values(), ids=NOTES)
def test_only_content_length_frames_an_answer_other_fields_of_digits_do_not(note):
    """An answer with neither Content-Length nor Transfer-Encoding runs until the close, whatever
    number another field holds."""
    get = message(b"GET /g HTTP/1.1", b"Host: a.test", note=note)
    answer = message(b"HTTP/1.1 200 OK", b"Host: 2", note=note, body=b"ok")
    assert record([get], [answer, b"more"])[0] == [("GET", "a.test", "/g", 200, 6, 100.0, 101.0)]


@pytest.mark.parametrize("note", NOTES.values(), ids=NOTES)
def test_a_trailer_field_named_content_length_does_not_frame_the_answer(note):
    """The trailer's Content-Length here is the length of the whole chunked body on the wire."""
    body = b"5\r\nhello\r\n0\r\nContent-Length: 35\r\n\r\n"
    assert len(body) == 35
    get = message(b"GET /g HTTP/1.1", b"Host: a.test", note=note)
    answer = message(b"HTTP/1.1 200 OK", b"Transfer-Encoding: chunked", note=note, body=body)
    assert record([get], [answer])[0] == [("GET", "a.test", "/g", 200, 5, 100.0, 101.0)]


@pytest.mark.parametrize("note", NOTES.values(), ids=NOTES)
def test_a_content_length_line_inside_a_body_read_until_close_does_not_frame_it(note):
    """The body (an HTTP message itself, say) holds a Content-Length line giving its own length."""
    body = b"x\r\nContent-Length: 23\r\n"
    assert len(body) == 23
    get = message(b"GET /g HTTP/1.1", b"Host: a.test", note=note)
    answer = message(b"HTTP/1.0 200 OK", b"Server: x", note=note, body=body)
    assert record([get], [answer, b"more"])[0] == [("GET", "a.test", "/g", 200, 27, 100.0, 101.0)]


@pytest.mark.parametrize("note", NOTES.values(), ids=NOTES)
def test_an_answer_with_two_differing_content_length_lines_ends_the_records(note):
    """RFC 9112 6.3: differing lengths make the framing unknown; the answer is recorded with its
    status and no body, and nothing after it."""
    get = message(b"GET /g HTTP/1.1", b"Host: a.test", note=note)
    answer = message(b"HTTP/1.1 200 OK", b"Content-Length: 2", b"Content-Length: 3", note=note, body=b"ok")
    ok = message(b"HTTP/1.1 200 OK", b"Content-Length: 2", body=b"ok")
    assert record([get, get], [answer + ok])[0] == [
        ("GET", "a.test", "/g", 200, 0, 100.0, 102.0),
        ("GET", "a.test", "/g", None, 0, 101.0, None),
    ]
