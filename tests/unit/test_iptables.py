"""Rule rendering for ``mesh-proxy init`` (golden outputs) and its option handling."""

from __future__ import annotations

import argparse
import subprocess

import pytest

from mesh.proxy import init, iptables

GOLDEN_DEFAULT = """\
# egress-mesh outbound interception (IPv4)
*nat
:OSM_PROXY_OUTBOUND - [0:0]
:OSM_PROXY_OUT_REDIRECT - [0:0]
-A OSM_PROXY_OUT_REDIRECT -p tcp -j REDIRECT --to-ports 15001
-A OSM_PROXY_OUTBOUND -o lo -j RETURN
-A OSM_PROXY_OUTBOUND -m owner --uid-owner 1500 -j RETURN
-A OSM_PROXY_OUTBOUND -d 127.0.0.1/32 -j RETURN
-A OSM_PROXY_OUTBOUND -j OSM_PROXY_OUT_REDIRECT
-A OUTPUT -p tcp -j OSM_PROXY_OUTBOUND
COMMIT
"""

GOLDEN_EXCLUSIONS_INCLUSIONS = """\
# egress-mesh outbound interception (IPv4)
*nat
:OSM_PROXY_OUTBOUND - [0:0]
:OSM_PROXY_OUT_REDIRECT - [0:0]
-A OSM_PROXY_OUT_REDIRECT -p tcp -j REDIRECT --to-ports 15555
-A OSM_PROXY_OUTBOUND -o lo -j RETURN
-A OSM_PROXY_OUTBOUND -m owner --uid-owner 2000 -j RETURN
-A OSM_PROXY_OUTBOUND -d 127.0.0.1/32 -j RETURN
-A OSM_PROXY_OUTBOUND -d 10.0.0.0/8 -j RETURN
-A OSM_PROXY_OUTBOUND -d 192.168.1.1/32 -j RETURN
-A OSM_PROXY_OUTBOUND -p tcp -m multiport --dports 22,5432 -j RETURN
-A OSM_PROXY_OUTBOUND -d 203.0.113.0/24 -j OSM_PROXY_OUT_REDIRECT
-A OSM_PROXY_OUTBOUND -j RETURN
COMMIT
"""


def options(**kw) -> iptables.Interception:
    parser = argparse.ArgumentParser()
    init.add_arguments(parser)
    argv = [f"--{k.replace('_', '-')}={v}" for k, v in kw.items()]
    return init.interception_from_args(parser.parse_args(argv))


def test_default_rules_match_golden():
    assert iptables.render(options()) == GOLDEN_DEFAULT


def test_exclusions_and_inclusions_match_golden():
    opts = options(
        proxy_uid=2000,
        proxy_port=15555,
        exclude_ip_ranges="10.0.0.0/8, 192.168.1.1",
        exclude_ports="22,5432,22",
        include_ip_ranges="203.0.113.0/24",
    )
    assert iptables.render(opts, output_jump=False) == GOLDEN_EXCLUSIONS_INCLUSIONS


def test_ipv6_rules_only_carry_ipv6_ranges():
    opts = options(exclude_ip_ranges="10.0.0.0/8,fd00::/8", include_ip_ranges="2001:db8::/32")
    v6 = iptables.chain_rules(opts, iptables.IPV6)
    assert "-A OSM_PROXY_OUTBOUND -d ::1/128 -j RETURN" in v6
    assert "-A OSM_PROXY_OUTBOUND -d fd00::/8 -j RETURN" in v6
    assert "-A OSM_PROXY_OUTBOUND -d 2001:db8::/32 -j OSM_PROXY_OUT_REDIRECT" in v6
    assert not any("10.0.0.0" in rule for rule in v6)


def test_inclusion_list_of_other_family_redirects_nothing():
    rules = iptables.chain_rules(options(include_ip_ranges="2001:db8::/32"), iptables.IPV4)
    assert rules[-1] == "-A OSM_PROXY_OUTBOUND -j RETURN"
    assert not any(r.endswith("-j OSM_PROXY_OUT_REDIRECT") for r in rules)


def test_more_than_fifteen_ports_are_split_across_multiport_rules():
    ports = ",".join(str(p) for p in range(1000, 1020))
    rules = [r for r in iptables.chain_rules(options(exclude_ports=ports)) if "multiport" in r]
    assert rules == [
        "-A OSM_PROXY_OUTBOUND -p tcp -m multiport --dports "
        + ",".join(str(p) for p in range(1000, 1015))
        + " -j RETURN",
        "-A OSM_PROXY_OUTBOUND -p tcp -m multiport --dports "
        + ",".join(str(p) for p in range(1015, 1020))
        + " -j RETURN",
    ]


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["--exclude-ip-ranges", "10.0.0.0/33"],
            "'10.0.0.0/33' is not an IP address range",
        ),
        (
            ["--include-ip-ranges", "example.com"],
            "'example.com' is not an IP address range",
        ),
        (["--exclude-ports", "80,http"], "--exclude-ports: 'http' is not a port number"),
        (["--exclude-ports", "0"], "--exclude-ports: '0' is not a port number"),
        (["--proxy-port", "70000"], "--proxy-port: 70000 is not a port number"),
        (["--proxy-uid", "-1"], "--proxy-uid must be a user id"),
    ],
)
def test_invalid_options_exit_2_with_a_clear_message(argv, message, capsys):
    assert init.main([*argv, "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_dry_run_prints_rules_and_runs_nothing(capsys, monkeypatch):
    def forbidden(*a, **kw):
        raise AssertionError("dry run must not execute anything")

    monkeypatch.setattr(subprocess, "run", forbidden)
    assert init.main(["--dry-run", "--exclude-ports", "22"]) == 0
    out = capsys.readouterr().out
    assert "-A OSM_PROXY_OUTBOUND -p tcp -m multiport --dports 22 -j RETURN" in out
    assert "-A OUTPUT -p tcp -j OSM_PROXY_OUTBOUND" in out


class FakeIptables:
    """Records commands; ``-C`` answers as if the OUTPUT jump were present or not."""

    def __init__(self, jump_present: bool, stderr: str = "", restore_rc: int = 0):
        self.jump_present = jump_present
        self.stderr = stderr
        self.restore_rc = restore_rc
        self.calls: list[tuple[list[str], str | None]] = []

    def __call__(self, cmd, input=None, **kw):
        self.calls.append((cmd, input))
        if "-C" in cmd:
            return subprocess.CompletedProcess(cmd, 0 if self.jump_present else 1, "", self.stderr)
        return subprocess.CompletedProcess(cmd, self.restore_rc, "", self.stderr)


def test_apply_adds_output_jump_only_when_missing(monkeypatch):
    monkeypatch.setattr(iptables.shutil, "which", lambda name: "/usr/sbin/" + name)
    fresh = FakeIptables(jump_present=False)
    iptables.apply(options(), run=fresh)
    again = FakeIptables(jump_present=True)
    iptables.apply(options(), run=again)
    assert fresh.calls[-1][0] == ["iptables-restore", "-w", "--noflush"]
    assert "-A OUTPUT -p tcp -j OSM_PROXY_OUTBOUND" in fresh.calls[-1][1]
    assert "-A OUTPUT" not in again.calls[-1][1]


def test_apply_without_net_admin_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(iptables.shutil, "which", lambda name: "/usr/sbin/" + name)
    fake = FakeIptables(False, stderr="iptables: Permission denied (you must be root)", restore_rc=4)
    with pytest.raises(iptables.InitError, match="needs root and the NET_ADMIN capability"):
        iptables.apply(options(), run=fake)


def test_missing_iptables_binary_exits_1(monkeypatch, capsys):
    monkeypatch.setattr(iptables.shutil, "which", lambda name: None)
    assert init.main([]) == 1
    err = capsys.readouterr().err
    assert "iptables-restore not found" in err
    assert "Traceback" not in err
