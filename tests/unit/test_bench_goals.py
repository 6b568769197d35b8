"""The benchmark's goal lines (issue 13) from a summary: each judged on its own figures, and the
gateway's line showing what the same hop does with squid relaying the tunnels."""

from __future__ import annotations

import pytest

from benchmarks.dataplane import CONNECTIONS, PATHS, PEER_GATEWAY, goals, main


def _summary(rps: dict[str, float], cpu: dict[str, float], p99: dict[str, float]) -> dict:
    rows = {}
    for path in PATHS:
        row: dict = {}
        for c in CONNECTIONS:
            row[f"rps_{c}"] = rps[path]
            row[f"cpu_us_{c}"] = cpu.get(path)
        row["added_p99_ms"] = p99.get(path, 0.0)
        rows[path] = row
    return {"nginx": rows}


MEMORY = {"sidecar permissive": {"kb_per_connection": 6.3, "idle_rss_mb": 25.8}}


def test_the_gateway_line_is_judged_on_our_gateway_and_shows_the_peer_hop():
    rps = {path: 10_000.0 for path in PATHS}
    rps |= {"sidecar permissive": 20_000.0, "sidecar policy": 20_000.0, "squid": 10_000.0}
    rps |= {"sidecar + gateway": 13_000.0, PEER_GATEWAY: 15_000.0}
    cpu = {"sidecar permissive": 50.0, "sidecar policy": 50.0, "squid": 100.0}
    checks = {name: (ok, figure) for name, ok, figure in goals(_summary(rps, cpu, {}), MEMORY)}
    assert checks["sidecar + gateway at 8 conns >= 0.7x sidecar"] == (
        False,
        "0.65x (with squid as the gateway: 0.75x)",
    )
    rps["sidecar + gateway"] = 14_000.0
    rps[PEER_GATEWAY] = 11_000.0  # a slower peer does not make ours fail
    checks = {name: (ok, figure) for name, ok, figure in goals(_summary(rps, cpu, {}), MEMORY)}
    assert checks["sidecar + gateway at 64 conns >= 0.7x sidecar"] == (
        True,
        "0.70x (with squid as the gateway: 0.55x)",
    )
    assert len(checks) == 14  # the goal lines, no more: the peer hop is not a goal
    assert all(ok for ok, _ in checks.values())


@pytest.mark.parametrize("duration", ["0.5", "0", "-1", "four"])
def test_a_duration_wrk_cannot_take_is_refused_before_anything_starts(duration, capsys):
    """wrk takes whole seconds: ``--duration 0.5`` used to reach it and end in a traceback."""
    with pytest.raises(SystemExit) as exit:
        main(["--duration", duration])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert "--duration" in err and "Traceback" not in err
