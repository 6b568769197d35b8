"""k3s-container and a container of its name that egress-mesh did not start, with real Docker."""

from __future__ import annotations

import uuid

import pytest

from scenarios.__main__ import main
from scenarios.clusters import k3s_container, records
from scenarios.clusters.base import BackendOptions, BackendUnavailable

pytestmark = pytest.mark.docker


@pytest.fixture
def foreign(tmp_path, monkeypatch):
    """A created (never started) container named like the backend's, from a FROM scratch image."""
    docker = pytest.importorskip("docker")
    try:
        client = docker.from_env()
        client.ping()
    except Exception as error:
        pytest.skip(f"no Docker engine answers: {error}")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY Dockerfile /marker\n")
    tag = f"egress-mesh/ownership-test:{uuid.uuid4().hex[:12]}"
    client.images.build(path=str(tmp_path), tag=tag, rm=True)
    name = f"t{uuid.uuid4().hex[:8]}"
    container = client.containers.create(tag, ["/marker"], name=f"{name}-k3s")
    yield name, container
    container.remove(force=True)
    client.images.remove(tag, force=True)


def test_a_container_it_did_not_start_is_refused_not_reused_and_not_removed(foreign, capsys):
    name, container = foreign
    cluster = k3s_container.K3sContainerCluster(BackendOptions(cluster_name=name))
    with pytest.raises(
        BackendUnavailable, match=f"{name}.*was not created by egress-mesh.*docker rm -f {name}-k3s"
    ):
        cluster.up()
    cluster.down()
    reused = k3s_container.K3sContainerCluster(BackendOptions(cluster_name=name, reuse=True))
    with pytest.raises(BackendUnavailable, match=f"container {name}-k3s is not running"):
        reused.up()
    assert main(["clean"]) == 0 and records.all_records() == []
    container.reload()  # still there
    assert container.name == f"{name}-k3s"
