"""The article's catalog, one test per scenario, on the session's cluster (``--backend``)."""

from __future__ import annotations

import pytest

from scenarios.format import catalog

pytestmark = pytest.mark.e2e
SCENARIOS = catalog()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_article_scenario(passes, scenario):
    passes(scenario)
