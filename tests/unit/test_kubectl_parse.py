"""The one kubectl / osm command-line parser (scenarios/clusters/kubectl.py)."""

from __future__ import annotations

import pytest

from scenarios.clusters.base import Unsupported
from scenarios.clusters.kubectl import parse


def test_exec_keeps_the_command_after_the_double_dash():
    cmd = parse(["kubectl", "exec", "curl-1", "-n", "curl", "-c", "curl", "--", "curl", "-sI", "-n", "x"])
    assert (cmd.verb, cmd.names, cmd.namespace, cmd.container) == ("exec", ["curl-1"], "curl", "curl")
    assert cmd.command == ["curl", "-sI", "-n", "x"]


def test_flags_anywhere_and_in_both_spellings():
    cmd = parse(
        ["kubectl", "get", "pod", "-l", "app=curl", "--namespace=curl", "-o", "jsonpath={.items..podIP}"]
    )
    assert (cmd.target, cmd.selector, cmd.namespace, cmd.output) == (
        ("pod", None),
        "app=curl",
        "curl",
        "jsonpath={.items..podIP}",
    )


def test_kind_slash_name_and_unknown_flags():
    cmd = parse(["kubectl", "delete", "deployment/curl", "-n", "curl", "--ignore-not-found", "--wait=false"])
    assert cmd.target == ("deployment", "curl")
    assert cmd.unknown == ["--ignore-not-found", "--wait=false"]


def test_patch_and_metadata():
    cmd = parse(
        ["kubectl", "patch", "meshconfig", "osm-mesh-config", "-n", "osm-system", "-p", "{}", "--type=merge"]
    )
    assert (cmd.target, cmd.patch, cmd.patch_type) == (("meshconfig", "osm-mesh-config"), "{}", "merge")
    cmd = parse(["kubectl", "annotate", "ns", "curl", "a=b", "c-", "--overwrite"])
    assert (cmd.names, cmd.overwrite) == (["ns", "curl", "a=b", "c-"], True)


def test_osm_namespace_add():
    cmd = parse(
        ["osm", "namespace", "add", "curl", "other", "--mesh-name", "m", "--disable-sidecar-injection"]
    )
    assert (cmd.program, cmd.verb, cmd.names) == ("osm", "namespace", ["add", "curl", "other"])
    assert (cmd.mesh_name, cmd.disable_injection) == ("m", True)


@pytest.mark.parametrize("argv", [["helm", "install", "x"], ["kubectl"], ["kubectl", "get", "-n"]])
def test_what_it_cannot_read_is_unsupported(argv):
    with pytest.raises(Unsupported):
        parse(argv)
