"""Sidecar injection: the pod a user gets back."""

from __future__ import annotations

import base64
import copy
import json
from dataclasses import replace

import jsonpatch
import pytest
import yaml

from mesh.api.proxyconfig import Exclusions
from mesh.api.resources import Namespace
from mesh.controller.injector import (
    InjectionError,
    InjectionSettings,
    admission_review,
    inject_pod,
    inject_workload,
)

SETTINGS = InjectionSettings(
    proxy_image="egress-mesh/proxy:abc",
    init_image="egress-mesh/proxy:abc",
    controller_url="http://osm-controller.osm-system.svc.cluster.local:15128",
    mesh_name="osm",
    exclusions=Exclusions(ip_ranges=("10.96.0.0/12",), ports=(6379,)),
)
MONITORED = Namespace("curl", labels={"openservicemesh.io/monitored-by": "osm"})

CURL_DEPLOYMENT = yaml.safe_load("""
apiVersion: apps/v1
kind: Deployment
metadata:
  name: curl
  namespace: curl
spec:
  replicas: 1
  selector:
    matchLabels:
      app: curl
  template:
    metadata:
      labels:
        app: curl
    spec:
      serviceAccountName: curl
      containers:
      - image: egress-mesh/curl
        imagePullPolicy: IfNotPresent
        name: curl
        command: ["/bin/sleep", "infinity"]
""")


def curl_pod(**annotations) -> dict:
    template = copy.deepcopy(CURL_DEPLOYMENT["spec"]["template"])
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": template["metadata"], "spec": template["spec"]}
    pod["metadata"].update(name="curl-7d9f", namespace="curl")
    if annotations:
        pod["metadata"]["annotations"] = annotations
    return pod


def containers(pod: dict, kind: str = "containers") -> dict[str, dict]:
    return {c["name"]: c for c in pod["spec"].get(kind, [])}


def test_injected_pod_has_init_sidecar_and_annotation():
    pod = inject_pod(curl_pod(), SETTINGS)
    init = containers(pod, "initContainers")["osm-init"]
    assert init["image"] == "egress-mesh/proxy:abc"
    assert init["securityContext"]["capabilities"]["add"] == ["NET_ADMIN"]
    assert init["securityContext"]["runAsUser"] == 0
    assert init["command"] == [
        "mesh-proxy",
        "init",
        "--proxy-uid",
        "1500",
        "--proxy-port",
        "15001",
        "--exclude-ip-ranges",
        "10.96.0.0/12",
        "--exclude-ports",
        "6379",
    ]
    sidecar = containers(pod, "initContainers")["sidecar"]
    assert sidecar["command"][:4] == ["mesh-proxy", "run", "--controller", SETTINGS.controller_url]
    assert sidecar["securityContext"]["runAsUser"] == 1500
    assert sidecar["securityContext"]["runAsGroup"] == 1500
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in sidecar["env"]}
    assert env == {
        "POD_NAMESPACE": "metadata.namespace",
        "POD_NAME": "metadata.name",
        "POD_IP": "status.podIP",
        "POD_SERVICE_ACCOUNT": "spec.serviceAccountName",
    }
    assert list(containers(pod)) == ["curl"]
    assert list(containers(pod, "initContainers")) == ["osm-init", "sidecar"]
    assert pod["metadata"]["annotations"]["openservicemesh.io/sidecar-injected"] == "true"


def test_sidecar_is_a_native_sidecar_the_apps_wait_for():
    """Kubernetes starts the containers after a restartPolicy Always init container only once its
    startup probe passed: the probe must ask the sidecar's readiness endpoint, on the port given
    to mesh-proxy run."""
    sidecar = containers(inject_pod(curl_pod(), SETTINGS), "initContainers")["sidecar"]
    assert sidecar["restartPolicy"] == "Always"
    command = sidecar["command"]
    port = int(command[command.index("--readiness-port") + 1])
    assert port == 15021
    for probe in ("startupProbe", "readinessProbe"):
        assert sidecar[probe]["httpGet"] == {"path": "/healthz/ready", "port": port}
    assert sidecar["startupProbe"]["periodSeconds"] == 1
    assert sidecar["startupProbe"]["failureThreshold"] * sidecar["startupProbe"]["periodSeconds"] >= 300


def test_pull_policy_reaches_the_init_container_and_the_sidecar():
    settings = replace(SETTINGS, image_pull_policy="Never")
    injected = containers(inject_pod(curl_pod(), settings), "initContainers")
    assert {name: c["imagePullPolicy"] for name, c in injected.items()} == {
        "osm-init": "Never",
        "sidecar": "Never",
    }


def test_injection_is_idempotent_and_does_not_touch_the_input():
    original = curl_pod()
    pristine = copy.deepcopy(original)
    once = inject_pod(original, SETTINGS)
    assert original == pristine
    assert inject_pod(once, SETTINGS) == once


@pytest.mark.parametrize("value", ["disabled", "false"])
def test_opted_out_pod_is_unchanged(value):
    pod = curl_pod(**{"openservicemesh.io/sidecar-injection": value})
    assert inject_pod(pod, SETTINGS) == pod


def test_host_network_pod_is_unchanged():
    pod = curl_pod()
    pod["spec"]["hostNetwork"] = True
    assert inject_pod(pod, SETTINGS) == pod


def test_pod_in_opted_out_namespace_is_unchanged():
    ns = Namespace("egress-gateway", annotations={"openservicemesh.io/sidecar-injection": "disabled"})
    assert inject_pod(curl_pod(), SETTINGS, ns) == curl_pod()


def test_pod_annotations_add_exclusions():
    pod = curl_pod(
        **{
            "openservicemesh.io/outbound-ip-range-exclusion-list": "192.168.0.0/16, 10.96.0.0/12",
            "openservicemesh.io/outbound-port-exclusion-list": "5432,6379",
            "openservicemesh.io/outbound-ip-range-inclusion-list": "10.0.0.0/8",
        }
    )
    command = containers(inject_pod(pod, SETTINGS), "initContainers")["osm-init"]["command"]
    flags = dict(zip(command[2::2], command[3::2], strict=True))
    assert flags["--exclude-ip-ranges"] == "10.96.0.0/12,192.168.0.0/16"
    assert flags["--exclude-ports"] == "6379,5432"
    assert flags["--include-ip-ranges"] == "10.0.0.0/8"


@pytest.mark.parametrize(
    "annotation, value",
    [
        ("openservicemesh.io/outbound-ip-range-exclusion-list", "10.0.0.300/8"),
        ("openservicemesh.io/outbound-port-exclusion-list", "http"),
        ("openservicemesh.io/outbound-port-exclusion-list", "70000"),
    ],
)
def test_bad_exclusion_annotation_is_a_clear_error(annotation, value):
    with pytest.raises(InjectionError, match=annotation):
        inject_pod(curl_pod(**{annotation: value}), SETTINGS)


@pytest.mark.parametrize("kind", ["Deployment", "StatefulSet", "DaemonSet", "Job"])
def test_workloads_get_their_pod_template_injected(kind):
    obj = copy.deepcopy(CURL_DEPLOYMENT)
    obj["kind"] = kind
    injected = inject_workload(obj, SETTINGS)
    template = injected["spec"]["template"]
    assert set(containers(template)) == {"curl"}
    assert set(containers(template, "initContainers")) == {"osm-init", "sidecar"}
    assert template["metadata"]["annotations"]["openservicemesh.io/sidecar-injected"] == "true"
    assert injected["spec"]["replicas"] == 1


def test_other_kinds_are_unchanged():
    sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "curl", "namespace": "curl"}}
    assert inject_workload(sa, SETTINGS) == sa


def review(pod: dict, uid: str = "705ab4f5-6393-11e8-b7cc-42010a800002") -> dict:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "curl",
            "operation": "CREATE",
            "object": pod,
        },
    }


def apply_response(pod: dict, answer: dict) -> dict:
    response = answer["response"]
    if "patch" not in response:
        return pod
    assert response["patchType"] == "JSONPatch"
    return jsonpatch.apply_patch(pod, json.loads(base64.b64decode(response["patch"])))


def test_admission_patch_applied_gives_the_injected_pod():
    pod = curl_pod()
    answer = admission_review(review(pod), SETTINGS, MONITORED)
    assert answer["apiVersion"] == "admission.k8s.io/v1" and answer["kind"] == "AdmissionReview"
    assert answer["response"]["uid"] == "705ab4f5-6393-11e8-b7cc-42010a800002"
    assert answer["response"]["allowed"] is True
    assert apply_response(pod, answer) == inject_pod(pod, SETTINGS)


def test_admission_patch_puts_the_mesh_ahead_of_existing_init_containers_and_keeps_annotations():
    """The pod's own init containers run intercepted, after the sidecar is ready: no egress before it."""
    pod = curl_pod(team="a")
    pod["spec"]["initContainers"] = [{"name": "setup", "image": "busybox"}, {"name": "migrate", "image": "m"}]
    patched = apply_response(pod, admission_review(review(pod), SETTINGS, MONITORED))
    assert [c["name"] for c in patched["spec"]["initContainers"]] == [
        "osm-init",
        "sidecar",
        "setup",
        "migrate",
    ]
    assert patched == inject_pod(pod, SETTINGS)
    assert patched["metadata"]["annotations"] == {"team": "a", "openservicemesh.io/sidecar-injected": "true"}


def test_admission_never_injects_the_control_plane_namespace():
    """Even labelled monitored, the mesh's own namespace is left alone: its controller pods would
    otherwise wait for the webhook they serve."""
    mesh_ns = Namespace("osm-system", labels={"openservicemesh.io/monitored-by": "osm"})
    request = review(curl_pod())
    request["request"]["namespace"] = "osm-system"
    request["request"]["object"]["metadata"]["namespace"] = "osm-system"
    answer = admission_review(request, SETTINGS, mesh_ns)
    assert answer["response"]["allowed"] is True and "patch" not in answer["response"]
    other_mesh_ns = replace(SETTINGS, mesh_namespace="other-system")
    assert "patch" in admission_review(request, other_mesh_ns, mesh_ns)["response"]


def test_admission_leaves_unmonitored_and_opted_out_pods_alone():
    other = Namespace("curl", labels={"openservicemesh.io/monitored-by": "another-mesh"})
    for ns in (None, Namespace("curl"), other):
        answer = admission_review(review(curl_pod()), SETTINGS, ns)
        assert answer["response"]["allowed"] is True and "patch" not in answer["response"]
    opted_out = curl_pod(**{"openservicemesh.io/sidecar-injection": "disabled"})
    assert "patch" not in admission_review(review(opted_out), SETTINGS, MONITORED)["response"]


def test_admission_refuses_pod_with_bad_annotation_naming_it():
    pod = curl_pod(**{"openservicemesh.io/outbound-port-exclusion-list": "x"})
    response = admission_review(review(pod), SETTINGS, MONITORED)["response"]
    assert response["allowed"] is False
    assert "outbound-port-exclusion-list" in response["status"]["message"]


@pytest.mark.parametrize(
    "where, context",
    [("pod", {"runAsUser": 1500}), ("container", {"runAsUser": 1500, "runAsNonRoot": True})],
)
def test_admission_refuses_an_app_running_as_the_sidecar_uid(where, context):
    pod = curl_pod()
    target = pod["spec"] if where == "pod" else pod["spec"]["containers"][0]
    target["securityContext"] = context
    response = admission_review(review(pod), SETTINGS, MONITORED)["response"]
    assert response["allowed"] is False
    assert "'curl' runs as UID 1500" in response["status"]["message"]


def test_admission_refuses_an_init_container_running_as_the_sidecar_uid():
    pod = curl_pod()
    pod["spec"]["initContainers"] = [
        {"name": "setup", "image": "busybox", "securityContext": {"runAsUser": 1500}}
    ]
    response = admission_review(review(pod), SETTINGS, MONITORED)["response"]
    assert response["allowed"] is False
    assert "'setup' runs as UID 1500" in response["status"]["message"]


def test_container_uid_overrides_a_pod_uid_of_1500():
    pod = curl_pod()
    pod["spec"]["securityContext"] = {"runAsUser": 1500}
    pod["spec"]["containers"][0]["securityContext"] = {"runAsUser": 1000}
    assert "sidecar" in containers(inject_pod(pod, SETTINGS), "initContainers")


@pytest.mark.parametrize("version", ["1.35.0", "1.36.0", "1.37.0"])
def test_injected_objects_are_valid_kubernetes(version):
    import kubernetes_validate

    pod = curl_pod(**{"openservicemesh.io/outbound-port-exclusion-list": "5432"})
    pod["spec"]["initContainers"] = [{"name": "setup", "image": "busybox"}]
    for obj in (inject_pod(pod, SETTINGS), inject_workload(CURL_DEPLOYMENT, SETTINGS)):
        kubernetes_validate.validate(obj, version, strict=True)


DROP = "openservicemesh.io/drop-setuid-capabilities"


def capabilities(pod: dict, kind: str, name: str) -> dict:
    return containers(pod, kind)[name]["securityContext"]["capabilities"]


def test_drop_setuid_annotation_patches_every_app_container_but_not_the_mesh_ones():
    """Without CAP_SETUID/CAP_SETGID the app cannot become UID 1500, whose traffic the sidecar lets by."""
    pod = curl_pod(**{DROP: "true"})
    pod["spec"]["initContainers"] = [{"name": "setup", "image": "busybox"}]
    pod["spec"]["containers"][0]["securityContext"] = {
        "capabilities": {"drop": ["NET_RAW"], "add": ["CHOWN"]}
    }
    patched = apply_response(pod, admission_review(review(pod), SETTINGS, MONITORED))
    assert capabilities(patched, "containers", "curl") == {
        "drop": ["NET_RAW", "SETUID", "SETGID"],
        "add": ["CHOWN"],
    }
    assert capabilities(patched, "initContainers", "setup") == {"drop": ["SETUID", "SETGID"]}
    assert capabilities(patched, "initContainers", "osm-init") == {"add": ["NET_ADMIN"]}
    assert "capabilities" not in containers(patched, "initContainers")["sidecar"]["securityContext"]
    assert patched == inject_pod(pod, SETTINGS, MONITORED)


def test_drop_setuid_from_the_namespace_and_the_pod_annotation_wins():
    namespace = Namespace("curl", MONITORED.labels, annotations={DROP: "true"})
    pod = curl_pod()
    patched = apply_response(pod, admission_review(review(pod), SETTINGS, namespace))
    assert capabilities(patched, "containers", "curl") == {"drop": ["SETUID", "SETGID"]}
    opted_out = curl_pod(**{DROP: "false"})
    patched = apply_response(opted_out, admission_review(review(opted_out), SETTINGS, namespace))
    assert "securityContext" not in containers(patched)["curl"]


def test_without_the_request_capabilities_are_left_as_they_are():
    patched = apply_response(curl_pod(), admission_review(review(curl_pod()), SETTINGS, MONITORED))
    assert "securityContext" not in containers(patched)["curl"]


def test_drop_setuid_keeps_an_existing_drop_all_and_cap_prefixed_names():
    pod = curl_pod(**{DROP: "TRUE"})
    pod["spec"]["containers"][0]["securityContext"] = {"capabilities": {"drop": ["ALL"]}}
    assert capabilities(inject_pod(pod, SETTINGS), "containers", "curl") == {"drop": ["ALL"]}
    pod["spec"]["containers"][0]["securityContext"] = {"capabilities": {"drop": ["CAP_SETUID"]}}
    assert capabilities(inject_pod(pod, SETTINGS), "containers", "curl") == {"drop": ["CAP_SETUID", "SETGID"]}


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"privileged": True}, "container 'curl' is privileged, so it keeps CAP_SETUID/CAP_SETGID"),
        ({"capabilities": {"add": ["CAP_SETGID"]}}, "container 'curl' adds SETGID, but"),
    ],
)
def test_drop_setuid_refuses_a_container_that_asks_for_them(context, message):
    pod = curl_pod(**{DROP: "true"})
    pod["spec"]["containers"][0]["securityContext"] = context
    response = admission_review(review(pod), SETTINGS, MONITORED)["response"]
    assert response["allowed"] is False and response["status"]["code"] == 400
    assert message in response["status"]["message"]


def test_drop_setuid_annotation_must_be_true_or_false():
    response = admission_review(review(curl_pod(**{DROP: "yes please"})), SETTINGS, MONITORED)["response"]
    assert response["allowed"] is False
    assert response["status"]["message"] == (
        f"pod annotation {DROP}: must be true or false (got 'yes please')"
    )


@pytest.mark.parametrize("version", ["1.35.0", "1.37.0"])
def test_pods_with_setuid_dropped_are_valid_kubernetes(version):
    import kubernetes_validate

    pod = curl_pod(**{DROP: "true"})
    pod["spec"]["initContainers"] = [{"name": "setup", "image": "busybox"}]
    kubernetes_validate.validate(inject_pod(pod, SETTINGS), version, strict=True)
