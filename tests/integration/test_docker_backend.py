"""The Docker backend for real: images built, mesh installed, pods with init + sidecar.

Slow the first time (the Debian base is debootstrapped once, images are built once per content);
skipped when no Docker engine answers.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml
from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

from scenarios.clusters.base import BackendOptions, MeshOptions, Unsupported
from tests.article import EGRESS_GATEWAY, egress_text

pytestmark = pytest.mark.docker

CURL_YAML = str(Path(__file__).resolve().parents[2] / "scenarios/manifests/curl.yaml")
CURL = ["curl", "-sI", "http://httpbin.org:80/get", "http://httpstat.us/200"]
ARTICLE_CURL_URL = (
    "https://raw.githubusercontent.com/flomesh-io/osm-edge-docs/main/manifests/samples/curl/curl.yaml"
)
ARTICLE_GATEWAY_URL = (
    "https://raw.githubusercontent.com/flomesh-io/osm-edge-docs/main/manifests/egress/egress-gateway.yaml"
)
INJECTION = "openservicemesh.io/sidecar-injection"
PERMISSIVE = {"spec": {"traffic": {"enableEgress": True}}}


def docker_client():
    try:
        import docker

        client = docker.from_env()
        client.ping()
        return client
    except Exception as exc:  # no SDK, no socket, engine down: all mean "cannot test here"
        pytest.skip(f"no Docker engine answers: {exc}")


@pytest.fixture(scope="session")
def refs() -> dict[str, str]:
    docker_client()
    for module in ("mesh.proxy.__main__", "mesh.gateway.__main__", "mesh.controller.__main__"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"the mesh programs are not there yet ({module} missing)")
    from scenarios import images

    try:
        return images.build_all(progress=lambda line: None)
    except images.ImageBuildError as exc:
        if "debootstrap is not installed" in str(exc) or "needs root" in str(exc):
            pytest.skip(str(exc))
        raise


@pytest.fixture(scope="module")
def cluster(refs, request):
    from scenarios.clusters.docker import DockerCluster

    keep = bool(request.config.getoption("--keep", default=False))
    c = DockerCluster(BackendOptions(keep=keep))
    c.up()
    try:
        assert all(op.ok for op in c.load_images(list(refs.values())))
        ops = c.install_mesh(MeshOptions())
        assert all(op.ok for op in ops), [(op.command, op.stderr) for op in ops if not op.ok]
        yield c
    finally:
        c.down(keep=keep)


@pytest.fixture
def fresh(cluster):
    cluster.reset()
    return cluster


def until(check, timeout: float = 20.0):
    """Call ``check`` until it returns something truthy; return that (or the last falsy value)."""
    retrying = Retrying(
        stop=stop_after_delay(timeout),
        wait=wait_fixed(0.2),
        retry=retry_if_result(lambda value: not value),
        retry_error_callback=lambda state: state.outcome.result(),
    )
    return retrying(check)


def statuses(stdout: str) -> list[int]:
    return [int(line.split()[1]) for line in stdout.splitlines() if line.startswith("HTTP/")]


def deploy_curl(cluster, manifest: str = CURL_YAML) -> None:
    for argv in (
        ["kubectl", "create", "namespace", "curl"],
        ["osm", "namespace", "add", "curl"],
        ["kubectl", "apply", "-n", "curl", "-f", manifest],
    ):
        op = cluster.run(argv)
        assert op.ok, (argv, op.stderr)
    cluster.wait_ready("curl", "app=curl", timeout=60)


def test_state0_exit7_then_permissive_200(fresh):
    deploy_curl(fresh)
    op = fresh.exec("curl", "app=curl", "curl", ["curl", "-sI", "http://httpbin.org:80/get"])
    assert op.exit_code == 7, op
    assert op.command.startswith("docker exec ")

    article_patch = ["kubectl", "patch", "meshconfig", "osm-mesh-config", "-n", "osm-system"]
    article_patch += ["-p", json.dumps(PERMISSIVE), "--type=merge"]
    patched = fresh.run(article_patch)
    assert patched.ok and patched.stdout == "meshconfig/osm-mesh-config patched"
    op = until(lambda: (r := fresh.exec("curl", "app=curl", "curl", CURL)).ok and r)
    assert op and statuses(op.stdout) == [200, 200], op
    assert "Content-Length: 6" in op.stdout.split("HTTP/1.1 200 OK")[2]


def test_injected_pod_has_init_and_sidecar(fresh):
    deploy_curl(fresh)
    sidecar = fresh.logs("curl", "app=curl", "sidecar")
    events = [json.loads(line)["event"] for line in sidecar.stdout.splitlines() if line.startswith("{")]
    assert "config" in events
    rules = fresh.exec("curl", "app=curl", "sidecar", ["id", "-u"])
    assert rules.stdout.strip() == "1500"
    init = fresh.run(
        ["kubectl", "logs", fresh.run(_get_pod("curl")).stdout.strip(), "-n", "curl", "-c", "osm-init"]
    )
    assert init.ok, init


def _get_pod(namespace: str) -> list[str]:
    return [
        "kubectl",
        "get",
        "pod",
        "-n",
        namespace,
        "-l",
        "app=curl",
        "-o",
        "jsonpath={.items..metadata.name}",
    ]


def test_gateway_logs_the_pods_own_ip(fresh):
    deploy_curl(fresh, ARTICLE_CURL_URL)  # the article's URL is answered with the local copy
    for argv in (
        ["kubectl", "apply", "-n", "egress-gateway", "-f", ARTICLE_GATEWAY_URL],
        ["osm", "namespace", "add", "egress-gateway"],
        [
            "kubectl",
            "annotate",
            "namespace",
            "egress-gateway",
            "openservicemesh.io/sidecar-injection=disabled",
        ],
    ):
        op = fresh.run(argv)
        if "annotate" in argv:  # osm namespace add set it to enabled: kubectl wants --overwrite
            assert op.exit_code == 1 and "--overwrite" in op.stderr
            op = fresh.run([*argv, "--overwrite"])
        assert op.ok, (argv, op.stderr)
    fresh.wait_ready("egress-gateway", "app=global-egress-gateway", timeout=60)
    assert fresh.apply(EGRESS_GATEWAY).ok
    assert fresh.patch("meshconfig", "osm-mesh-config", "osm-system", PERMISSIVE).ok

    def via_gateway():
        op = fresh.exec("curl", "app=curl", "curl", CURL)
        logs = fresh.logs("egress-gateway", "app=global-egress-gateway").stdout
        records = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
        hits = [r for r in records if r.get("host") == "httpbin.org" and r.get("method") == "HEAD"]
        return op.ok and statuses(op.stdout) == [200, 200] and hits

    hits = until(via_gateway, 30)
    assert hits, fresh.logs("curl", "app=curl", "sidecar").stdout[-2000:]
    pod_ip = fresh.pod_ip("curl", "app=curl")
    assert hits[0]["source_address"] == pod_ip
    ip_by_run = fresh.run(
        ["kubectl", "get", "pod", "-n", "curl", "-l", "app=curl", "-o", "jsonpath={.items..status.podIP}"]
    )
    assert ip_by_run.stdout == pod_ip
    # the gateway pod itself was not injected (its namespace opted out)
    assert (
        "not valid" in fresh.exec("egress-gateway", "app=global-egress-gateway", "sidecar", ["true"]).stderr
    )


def test_invalid_egress_is_refused_with_the_field(fresh):
    fresh.run(["kubectl", "create", "namespace", "curl"])
    bad = yaml.safe_load(egress_text(name="bad"))
    bad["spec"]["ports"][0]["number"] = 0
    op = fresh.apply(yaml.safe_dump(bad))
    assert op.exit_code == 1
    assert "spec.ports[0].number" in op.stderr
    assert fresh.delete("egress", "bad", "curl").exit_code == 1  # nothing was stored


def test_namespace_must_exist(fresh):
    op = fresh.apply(Path(CURL_YAML).read_text(), "nowhere")
    assert op.exit_code == 1
    assert 'namespaces "nowhere" not found' in op.stderr


def test_pod_outside_the_mesh_goes_straight_out(fresh):
    assert fresh.run(["kubectl", "create", "namespace", "curl"]).ok
    assert fresh.run(["kubectl", "apply", "-n", "curl", "-f", CURL_YAML]).ok
    fresh.wait_ready("curl", "app=curl", timeout=30)
    op = fresh.exec("curl", "app=curl", "curl", CURL)
    assert statuses(op.stdout) == [200, 200]
    assert fresh.exec("curl", "app=curl", "sidecar", ["true"]).exit_code == 1


def test_missing_image_is_reported_by_wait_ready(fresh):
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "ghost", "labels": {"app": "ghost"}},
        "spec": {"containers": [{"name": "ghost", "image": "no-such-registry.invalid/ghost:1"}]},
    }
    assert fresh.apply(yaml.safe_dump(pod), "default").ok  # as in Kubernetes: the pod exists, it fails later
    with pytest.raises(TimeoutError, match="not available locally"):
        fresh.wait_ready("default", "app=ghost", timeout=10)
    assert fresh.delete("pod", "ghost", "default").ok


def test_reset_removes_pods_and_restores_meshconfig(fresh):
    deploy_curl(fresh)
    assert fresh.patch("meshconfig", "osm-mesh-config", "osm-system", PERMISSIVE).ok
    fresh.reset()
    assert "no pod" in fresh.exec("curl", "app=curl", "curl", ["true"]).stderr
    left = fresh.client.containers.list(
        all=True, filters={"label": [f"egress-mesh.io/harness={fresh.run_id}", "egress-mesh.io/role=sandbox"]}
    )
    assert left == []
    meshconfig = yaml.safe_load(
        (fresh.manifest_dir / "meshconfig.osm-system.osm-mesh-config.yaml").read_text()
    )
    assert meshconfig["spec"]["traffic"]["enableEgress"] is False


def test_unknown_commands_are_unsupported(fresh):
    with pytest.raises(Unsupported, match="rollout"):
        fresh.run(["kubectl", "rollout", "restart", "deployment/curl"])


def test_down_removes_everything_and_keep_leaves_it(refs):
    from scenarios.clusters.docker import HARNESS_LABEL, STANDINS, DockerCluster, remove_run

    client = docker_client()
    for keep in (False, True):
        c = DockerCluster(BackendOptions(keep=keep))
        c.up()
        assert all(op.ok for op in c.load_images([refs["curl"], refs["standin"]]))
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "plain", "labels": {"app": "plain"}},
            "spec": {
                "containers": [{"name": "c", "image": "egress-mesh/curl", "command": ["sleep", "infinity"]}]
            },
        }
        assert c.apply(yaml.safe_dump(pod)).ok
        c.wait_ready("default", "app=plain", timeout=20)
        label = {"label": f"{HARNESS_LABEL}={c.run_id}"}
        # a stand-in per external name, the sandbox, the app
        assert len(client.containers.list(all=True, filters=label)) == len(STANDINS) + 2
        c.down()
        containers = client.containers.list(all=True, filters=label)
        networks = client.networks.list(filters=label)
        if keep:
            assert len(containers) == len(STANDINS) + 2 and len(networks) == 2
            remove_run(client, c.run_id)
        else:
            assert containers == [] and networks == []


def test_images_run_their_programs(refs):
    client = docker_client()
    check = "mesh-proxy --help >/dev/null && id -u mesh-proxy"
    out = client.containers.run(refs["proxy"], ["sh", "-c", check], remove=True)
    assert out.decode().strip() == "1500"
    for name, program in (("gateway", "mesh-gateway"), ("controller", "mesh-controller")):
        assert client.containers.run(refs[name], [program, "--help"], remove=True)
    assert b"curl" in client.containers.run(refs["curl"], ["curl", "--version"], remove=True)


def test_unchanged_images_are_not_rebuilt_and_save_writes_archives(refs, tmp_path):
    import tarfile

    from scenarios import images

    said: list[str] = []
    assert images.build_all(progress=said.append) == refs
    assert not any(line.startswith("building") for line in said), said
    (archive,) = images.save({"curl": refs["curl"]}, tmp_path)
    with tarfile.open(archive) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
    assert manifest[0]["RepoTags"] == [refs["curl"]]


def test_another_base_image_gives_other_tags(refs):
    from scenarios import images

    # any local image with python3, iptables and curl will do as a base; the curl image has them
    other = images.build_all(base_image=refs["curl"], names=["curl"], progress=lambda line: None)
    assert other["curl"] != refs["curl"]
    client = docker_client()
    assert b"curl" in client.containers.run(other["curl"], ["curl", "--version"], remove=True)
    client.images.remove(other["curl"])


def test_service_added_after_its_pod_resolves_to_the_pod(fresh):
    assert fresh.run(["kubectl", "create", "namespace", "curl"]).ok
    assert fresh.run(["kubectl", "apply", "-n", "curl", "-f", CURL_YAML]).ok
    fresh.wait_ready("curl", "app=curl", timeout=30)
    late = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "late"},
        "spec": {"selector": {"app": "curl"}, "ports": [{"port": 80}]},
    }
    op = fresh.apply(yaml.safe_dump(late), "curl")
    assert op.ok and "docker network connect" in op.command
    answer = fresh.exec("curl", "app=curl", "curl", ["getent", "hosts", "late.curl.svc.cluster.local"])
    assert answer.stdout.split()[0] == fresh.pod_ip("curl", "app=curl")


def test_deployment_reapply_keeps_pod_and_template_change_replaces_it(fresh):
    assert fresh.run(["kubectl", "create", "namespace", "curl"]).ok
    manifest = Path(CURL_YAML).read_text()
    assert fresh.apply(manifest, "curl").ok
    fresh.wait_ready("curl", "app=curl", timeout=30)
    first = fresh.run(_get_pod("curl")).stdout
    again = fresh.apply(manifest, "curl")
    assert "deployment/curl unchanged" in again.stdout
    assert fresh.run(_get_pod("curl")).stdout == first
    labels = "        app: curl\n    spec:"
    changed = manifest.replace(labels, labels.replace("\n", "\n        version: v2\n", 1))
    assert changed != manifest
    assert "deployment/curl configured" in fresh.apply(changed, "curl").stdout
    fresh.wait_ready("curl", "app=curl", timeout=30)
    second = fresh.run(_get_pod("curl")).stdout
    assert second and second != first and " " not in second  # one pod, a new one


def test_permissive_https_and_tcp_reach_the_standins_through_the_sidecar(fresh):
    deploy_curl(fresh)
    assert fresh.patch("meshconfig", "osm-mesh-config", "osm-system", PERMISSIVE).ok
    https = ["curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", "https://httpbin.org/get"]
    assert until(lambda: fresh.exec("curl", "app=curl", "curl", https).stdout == "200"), "https"
    echo = ["bash", "-c", "exec 3<>/dev/tcp/httpbin.org/7; echo hello >&3; head -c 6 <&3"]
    assert fresh.exec("curl", "app=curl", "curl", echo).stdout == "hello\n"
    sidecar = fresh.logs("curl", "app=curl", "sidecar").stdout
    decisions = [json.loads(line) for line in sidecar.splitlines() if '"decision"' in line]
    assert {(d.get("protocol"), d.get("port")) for d in decisions} >= {("https", 443), ("tcp", 7)}
