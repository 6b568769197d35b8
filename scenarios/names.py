"""Names the harness shares across its rooms (the article's sample objects); one definition each.

Facts of the mesh itself (MeshConfig name, mesh namespace, labels, manifest suffixes, ports) live
in ``mesh.api`` and are imported from there.
"""

from __future__ import annotations

from pathlib import Path

#: the article's sample manifests (local copies of what it applies from osm-edge-docs), package data
MANIFESTS_DIR = Path(__file__).resolve().parent / "manifests"

#: where the article deploys the egress gateway, and how its pod is found
GATEWAY_NAMESPACE = "egress-gateway"
GATEWAY_SELECTOR = "app=global-egress-gateway"
#: the article's sample client
CURL_NAMESPACE = "curl"
CURL_SELECTOR = "app=curl"
#: the article's sample namespaces: removed by every backend's reset(), so each scenario can create them
SAMPLE_NAMESPACES = frozenset({CURL_NAMESPACE, GATEWAY_NAMESPACE})
#: the external services of the article (DESIGN section 1), answered by the stand-ins unless
#: ``--external internet``
EXTERNAL_HOSTS = ("httpbin.org", "httpstat.us")
#: the file names the pytest plugin collects as scenario tests (ini option ``scenario_files``)
SCENARIO_FILE_PATTERN = "*.scenario.yaml"
