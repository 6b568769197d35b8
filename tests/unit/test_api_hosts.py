"""The one normal form of host names (mesh/api/hosts.py)."""

from __future__ import annotations

import pytest

from mesh.api.hosts import normalise_host


@pytest.mark.parametrize(
    "host, normal",
    [
        ("HttpBin.ORG", "httpbin.org"),
        ("httpbin.org.", "httpbin.org"),
        ("httpbin.org..", "httpbin.org."),  # one trailing dot is DNS's root; a second is not removed
        (" \thttpbin.org\t ", "httpbin.org"),
        ("*.Example.COM", "*.example.com"),
        ("Bücher.de.", "xn--bcher-kva.de"),
        ("*.Bücher.de", "*.xn--bcher-kva.de"),
        ("[2001:DB8::1]", "2001:db8::1"),
        ("2001:0db8:0::1", "2001:db8::1"),
        ("10.0.0.1", "10.0.0.1"),
        ("[10.0.0.1]", "10.0.0.1"),
    ],
)
def test_normal_forms(host, normal):
    assert normalise_host(host) == normal


@pytest.mark.parametrize("space", ["\xa0", "\x85", "\u2003"])
def test_unicode_spaces_are_part_of_the_name_not_blanks(space):
    try:
        normal = normalise_host("localhost" + space)
    except UnicodeError:  # not a name IDNA can encode: the caller refuses it
        return
    assert normal != "localhost"


def test_the_callers_share_it():
    from mesh.api import validation
    from mesh.controller import reconciler
    from scenarios.demo import outcomes

    assert validation.normalize_host is normalise_host
    assert reconciler.normalise_host is normalise_host
    assert outcomes.host_of("http://HttpBin.org.:80/get") == "httpbin.org"
