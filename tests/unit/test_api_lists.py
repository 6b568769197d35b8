"""The one reading of CIDR and port lists (mesh/api/lists.py) and its callers."""

from __future__ import annotations

import pytest

from mesh.api.lists import parse_cidrs, parse_ports, split_list


def test_items_blanks_empties_and_helm_braces():
    assert split_list(" 10.0.0.0/8 , ,192.168.1.1 ") == ["10.0.0.0/8", "192.168.1.1"]
    assert split_list("{80,443}") == ["80", "443"]
    assert split_list(None) == [] and split_list("") == []


def test_cidrs_and_ports():
    assert parse_cidrs("10.0.0.0/8, 192.168.1.1, fd00::/8") == ["10.0.0.0/8", "192.168.1.1", "fd00::/8"]
    assert parse_ports("{80, 443,8080}") == [80, 443, 8080]


@pytest.mark.parametrize(
    "text, bad", [("10.0.0.0/33", "10.0.0.0/33"), ("10.0.0.0/8,example.com", "example.com")]
)
def test_a_bad_range_is_quoted(text, bad):
    with pytest.raises(ValueError, match=f"'{bad}' is not an IP address range"):
        parse_cidrs(text)


@pytest.mark.parametrize("bad", ["0", "65536", "http", "-1", "８０"])
def test_a_bad_port_is_quoted(bad):
    with pytest.raises(ValueError, match="is not a port number"):
        parse_ports(f"80,{bad}")


def test_every_caller_reads_lists_the_same_way():
    from mesh.controller import injector
    from mesh.manifests import options as install
    from mesh.proxy import iptables

    text = "{10.0.0.0/8, 192.168.0.1}"
    assert [str(n) for n in iptables.parse_cidrs(text, "--exclude-ip-ranges")] == [
        "10.0.0.0/8",
        "192.168.0.1/32",
    ]
    assert install._cidrs("k", text) == ["10.0.0.0/8", "192.168.0.1"]
    assert injector._cidrs({"a": text}, "a") == ["10.0.0.0/8", "192.168.0.1"]
    assert injector._ports({"a": "80, 443"}, "a") == install._ports("k", "80,443") == [80, 443]
