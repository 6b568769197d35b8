"""What ``meshctl install`` deploys authenticates sidecars with TokenReview (issue 10): the
controller's arguments select it, and its ClusterRole lets it create TokenReviews and nothing more
in that API group. The arguments are run through the controller's own parser and set-up, against
the stand-in API server of test_controller_tokenreview."""

from __future__ import annotations

import pytest

from mesh.api.proxyconfig import Identity
from mesh.controller.__main__ import build_parser, make_authenticator
from mesh.controller.auth import AuthSetupError, Denied, TokenReviewVerifier
from mesh.manifests.install import render_install
from tests.integration.test_controller_tokenreview import api  # noqa: F401 - the fixture

OBJECTS = render_install()


def installed(kind: str) -> dict:
    (found,) = [o for o in OBJECTS if o["kind"] == kind]
    return found


def controller_args() -> list[str]:
    (container,) = installed("Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["mesh-controller"]
    return container["args"]


def test_the_cluster_role_grants_create_on_tokenreviews_only():
    granted = {
        (verb, resource)
        for rule in installed("ClusterRole")["rules"]
        if "authentication.k8s.io" in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert granted == {("create", "tokenreviews")}


async def test_the_installed_controller_checks_sidecar_tokens_with_tokenreview(api):  # noqa: F811
    fake, _server = api
    args = build_parser().parse_args(controller_args())
    assert args.auth == "tokenreview"
    auth = make_authenticator(args)
    assert isinstance(auth.verifier, TokenReviewVerifier)
    assert await auth.caller("Bearer curl-token") == Identity("curl", "curl")
    assert fake.reviews[-1]["spec"] == {"token": "curl-token", "audiences": ["egress-mesh-controller"]}
    with pytest.raises(Denied) as denied:
        await auth.caller("Bearer forged")
    assert denied.value.status == 401


def test_the_installed_controller_without_cluster_credentials_is_a_clear_error(tmp_path, monkeypatch):
    (tmp_path / "kubeconfig").write_text("clusters: [\n")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kubeconfig"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(AuthSetupError, match="^no Kubernetes credentials for TokenReview: "):
        make_authenticator(build_parser().parse_args(controller_args()))
