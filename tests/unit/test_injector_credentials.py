"""The sidecar's credential in an injected pod (issue 10): a projected ServiceAccount token for the
config server's audience, mounted only into the sidecar, at the path the sidecar reads."""

from __future__ import annotations

import kubernetes_validate
import pytest

from mesh.api import credentials
from mesh.controller.injector import InjectionError, admission_review, inject_pod, inject_workload
from mesh.proxy.__main__ import build_parser
from tests.unit.test_injector import CURL_DEPLOYMENT, MONITORED, SETTINGS, apply_response, curl_pod, review

PROJECTED = {
    "name": "egress-mesh-token",
    "projected": {
        "sources": [
            {
                "serviceAccountToken": {
                    "audience": "egress-mesh-controller",
                    "expirationSeconds": 600,
                    "path": "token",
                }
            }
        ]
    },
}


def init_containers(pod: dict) -> dict[str, dict]:
    return {c["name"]: c for c in pod["spec"]["initContainers"]}


def test_the_sidecar_alone_mounts_a_projected_token_for_the_controller():
    pod = curl_pod()
    pod["spec"]["volumes"] = [{"name": "data", "emptyDir": {}}]
    injected = inject_pod(pod, SETTINGS)
    assert injected["spec"]["volumes"] == [{"name": "data", "emptyDir": {}}, PROJECTED]
    sidecar = init_containers(injected)["sidecar"]
    assert sidecar["volumeMounts"] == [
        {"name": "egress-mesh-token", "mountPath": "/var/run/secrets/egress-mesh", "readOnly": True}
    ]
    others = [*injected["spec"]["containers"], init_containers(injected)["osm-init"]]
    assert not any(m["name"] == "egress-mesh-token" for c in others for m in c.get("volumeMounts") or [])


def test_the_mounted_path_is_where_the_sidecar_reads_its_token():
    injected = inject_pod(curl_pod(), SETTINGS)
    sidecar = init_containers(injected)["sidecar"]
    mount = sidecar["volumeMounts"][0]["mountPath"]
    path = PROJECTED["projected"]["sources"][0]["serviceAccountToken"]["path"]
    run_args = build_parser(with_init=False).parse_args(sidecar["command"][1:])
    assert str(run_args.token_file) == f"{mount}/{path}" == credentials.TOKEN_PATH
    assert credentials.AUDIENCE == "egress-mesh-controller" and credentials.TOKEN_LIFETIME == 600


def test_the_admission_patch_adds_the_volume():
    for volumes in (None, [{"name": "data", "emptyDir": {}}]):
        pod = curl_pod()
        if volumes is not None:
            pod["spec"]["volumes"] = volumes
        patched = apply_response(pod, admission_review(review(pod), SETTINGS, MONITORED))
        assert patched == inject_pod(pod, SETTINGS)
        assert patched["spec"]["volumes"][-1] == PROJECTED


def test_a_pod_with_a_volume_of_that_name_is_refused():
    pod = curl_pod()
    pod["spec"]["volumes"] = [{"name": "egress-mesh-token", "emptyDir": {}}]
    with pytest.raises(InjectionError, match="already has a volume named 'egress-mesh-token'"):
        inject_pod(pod, SETTINGS)


@pytest.mark.parametrize("version", ["1.35.0", "1.36.0", "1.37.0"])
def test_injected_objects_with_the_token_are_valid_kubernetes(version):
    pod = curl_pod()
    pod["spec"]["volumes"] = [{"name": "data", "emptyDir": {}}]
    for obj in (inject_pod(pod, SETTINGS), inject_workload(CURL_DEPLOYMENT, SETTINGS)):
        assert obj["spec"].get("volumes") or obj["spec"]["template"]["spec"]["volumes"]
        kubernetes_validate.validate(obj, version, strict=True)
