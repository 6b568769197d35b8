"""Scenarios outside the article's catalog (``docs/examples/*.yaml``), on the session's cluster.

The catalog itself (``scenarios/catalog/*.scenario.yaml``) is collected by the plugin as scenario
files; these use the plugin's ``run_scenario`` fixture instead, as a hand-written test would."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
EXAMPLES = sorted((Path(__file__).parents[2] / "docs" / "examples").glob("*.yaml"))


def test_egress_matches_example_exists():
    assert "egress-matches.yaml" in [p.name for p in EXAMPLES]


def test_egress_boundary_example_exists():
    assert "egress-boundary.yaml" in [p.name for p in EXAMPLES]


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_scenario(run_scenario, path):
    run_scenario(path)
