"""The stand-in names in CoreDNS: k3s-based backends use k3s's ``coredns-custom``, kind the Corefile.

k3s re-applies its ``coredns`` ConfigMap when it restarts, so an edit there would silently vanish;
its extension point is ``kube-system/coredns-custom`` with ``*.override`` keys (k3s
``manifests/coredns.yaml``: the ConfigMap is mounted at ``/etc/coredns/custom`` and the Corefile
imports ``/etc/coredns/custom/*.override`` in its root server block). Against the kubectl
stand-in of ``tests/fake_tools.py``, which keeps ConfigMaps.
"""

from __future__ import annotations

import pytest

from scenarios.clusters import coredns, k3d, k3s, k3s_container, kind
from scenarios.clusters.base import BackendOptions
from tests import fake_tools
from tests.unit.test_k8s_backends import K3S_COREFILE, KIND_COREFILE

K3S_BACKENDS = [k3s.K3sCluster, k3d.K3dCluster, k3s_container.K3sContainerCluster]
NODE_HOSTS = "172.18.0.2 k3d-egress-mesh-server-0\n"


@pytest.fixture
def state(tmp_path, monkeypatch):
    return fake_tools.use(tmp_path, monkeypatch)


def seed(**configmaps: dict) -> None:
    current = fake_tools.load()
    current["configmaps"] = configmaps
    fake_tools.save(current)


def configmaps() -> dict:
    return fake_tools.load()["configmaps"]


def kubectl_calls(state) -> list[list[str]]:
    return [c["args"] for c in fake_tools.calls(state, "kubectl")]


def backend(cls, tmp_path):
    cluster = cls(BackendOptions())
    cluster.kubeconfig = str(tmp_path / "kubeconfig")
    return cluster


@pytest.mark.parametrize("cls", K3S_BACKENDS, ids=lambda c: c.name)
def test_k3s_backends_add_an_override_key_and_never_edit_the_k3s_managed_configmap(cls, state, tmp_path):
    seed(
        coredns={"Corefile": K3S_COREFILE, "NodeHosts": NODE_HOSTS},
        **{"coredns-custom": {"mine.server": "x"}},
    )
    cluster = backend(cls, tmp_path)
    coredns.add_rewrites(cluster)
    assert configmaps()["coredns"] == {"Corefile": K3S_COREFILE, "NodeHosts": NODE_HOSTS}
    assert not [c for c in kubectl_calls(state) if c[:3] == ["patch", "configmap", "coredns"]]
    custom = configmaps()["coredns-custom"]
    assert custom["mine.server"] == "x"  # the user's key stays
    override = custom["egress-mesh.override"]
    assert "rewrite name exact httpbin.org httpbin.external-services.svc.cluster.local\n" in override
    assert "rewrite name exact httpstat.us httpstat.external-services.svc.cluster.local\n" in override
    assert ["rollout", "restart", "deployment/coredns", "-n", "kube-system"] in kubectl_calls(state)
    before = len(kubectl_calls(state))
    assert coredns.add_rewrites(cluster) == []  # already there: no write, no restart
    assert not [c for c in kubectl_calls(state)[before:] if c[0] in ("patch", "create", "rollout")]
    coredns.remove_rewrites(cluster)
    assert configmaps()["coredns-custom"] == {"mine.server": "x"}
    assert configmaps()["coredns"]["Corefile"] == K3S_COREFILE


def test_without_a_coredns_custom_the_harness_creates_it_and_deletes_it_again(state, tmp_path):
    seed(coredns={"Corefile": K3S_COREFILE.replace("cluster.local", "corp.internal")})
    cluster = backend(k3d.K3dCluster, tmp_path)
    coredns.add_rewrites(cluster)
    [create] = [c for c in fake_tools.calls(state, "kubectl") if c["args"][:1] == ["create"]]
    assert create["args"] == ["create", "-f", "-"] and '"name": "coredns-custom"' in create["stdin"]
    override = configmaps()["coredns-custom"]["egress-mesh.override"]
    assert "httpbin.external-services.svc.corp.internal" in override  # the cluster's domain
    coredns.remove_rewrites(cluster)
    assert "coredns-custom" not in configmaps()


def test_a_k3s_whose_coredns_does_not_import_overrides_is_refused_with_the_reason(state, tmp_path):
    old = K3S_COREFILE.replace("    import /etc/coredns/custom/*.override\n", "")
    seed(coredns={"Corefile": old})
    with pytest.raises(RuntimeError, match=r"lacks 'import /etc/coredns/custom/\*.override'"):
        coredns.add_rewrites(backend(k3s.K3sCluster, tmp_path))
    assert "coredns-custom" not in configmaps()


def test_kind_keeps_the_corefile_edit(state, tmp_path):
    seed(coredns={"Corefile": KIND_COREFILE})
    cluster = backend(kind.KindCluster, tmp_path)
    coredns.add_rewrites(cluster)
    assert configmaps()["coredns"]["Corefile"] == coredns.add_block(KIND_COREFILE)
    assert "coredns-custom" not in configmaps()
    coredns.remove_rewrites(cluster)
    assert configmaps()["coredns"]["Corefile"] == KIND_COREFILE
