"""The Docker engine as the backend uses it: containers started from specs, exec, logs, waits, cleanup.

Every container and network of one harness run carries ``egress-mesh.io/harness=<run id>``, so
``remove_run`` (``down()``, ``python -m scenarios.clusters.docker clean``) finds them all.
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

from scenarios.clusters.base import BackendUnavailable, join
from scenarios.clusters.docker.naming import CONTAINER_LABEL, HARNESS_LABEL, POD_LABEL, ROLE_LABEL

POLL = 0.1
#: seconds one Docker API call may take (a long `docker exec` included)
DOCKER_TIMEOUT = 600


class PodStartError(RuntimeError):
    """A pod's container could not start; the message says which and why."""


@dataclass
class ContainerSpec:
    """One ``docker run``, kept as data so it can be shown as the CLI line."""

    name: str
    image: str
    command: list[str] | None = None  # Docker CMD (Kubernetes args)
    entrypoint: list[str] | None = None  # Docker ENTRYPOINT (Kubernetes command)
    env: list[str] = field(default_factory=list)
    user: str | None = None
    network: str | None = None  # a network name, or "container:<id>"
    aliases: list[str] = field(default_factory=list)
    cap_add: list[str] = field(default_factory=list)
    binds: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    hostname: str | None = None
    workdir: str | None = None

    def cli(self) -> str:
        argv = ["docker", "run", "-d", "--name", self.name]
        if self.network:
            argv += ["--network", self.network]
        for alias in self.aliases:
            argv += ["--network-alias", alias]
        if self.hostname:
            argv += ["--hostname", self.hostname]
        if self.user:
            argv += ["--user", self.user]
        for cap in self.cap_add:
            argv += ["--cap-add", cap]
        for bind in self.binds:
            argv += ["-v", bind]
        for env in self.env:
            argv += ["-e", env]
        if self.workdir:
            argv += ["-w", self.workdir]
        if self.entrypoint:
            argv += ["--entrypoint", self.entrypoint[0]]
        argv.append(self.image)
        argv += (self.entrypoint or [])[1:] + (self.command or [])
        return join(argv)


def wait_until(
    check: Callable[[], bool], timeout: float, what: str, why: Callable[[], str] | None = None
) -> None:
    """Poll ``check`` until true; TimeoutError saying ``what`` (and ``why()``) after ``timeout`` s."""
    retrying = Retrying(
        stop=stop_after_delay(timeout), wait=wait_fixed(POLL), retry=retry_if_result(lambda ok: not ok)
    )
    try:
        retrying(check)
    except RetryError:
        detail = why() if why else ""
        raise TimeoutError(
            f"timed out after {timeout:.0f}s waiting for {what}" + (f": {detail}" if detail else "")
        ) from None


def connect():
    """A Docker client that answered a ping, or BackendUnavailable saying why not."""
    try:
        import docker

        client = docker.from_env(timeout=DOCKER_TIMEOUT)
        client.ping()
    except Exception as exc:  # the SDK raises many unrelated types when no engine answers
        raise BackendUnavailable(f"no Docker engine answers ({exc}); start dockerd first") from None
    return client


class Engine:
    """One harness run's containers: started from ``ContainerSpec``s, labelled with the run id."""

    def __init__(self, client, run_id: str) -> None:
        self.client = client
        self.run_id = run_id

    def labels(self, role: str, pod: str | None = None, container: str | None = None) -> dict[str, str]:
        labels = {HARNESS_LABEL: self.run_id, ROLE_LABEL: role}
        if pod:
            labels[POD_LABEL] = pod
        if container:
            labels[CONTAINER_LABEL] = container
        return labels

    def create_networks(self, *names: str) -> None:
        import docker

        try:
            for network in names:
                self.client.networks.create(
                    network, driver="bridge", labels=self.labels(role="network"), check_duplicate=True
                )
        except docker.errors.APIError as exc:
            remove_run(self.client, self.run_id)
            raise BackendUnavailable(
                f"docker cannot create the harness networks ({exc.explanation or exc}); if it has no free "
                "address pool left, remove what old runs left (python -m scenarios.clusters.docker clean) "
                "or unused networks (docker network prune)"
            ) from None

    def _create_and_start(self, spec: ContainerSpec):
        api = self.client.api
        networking = None
        if spec.network and not spec.network.startswith("container:"):
            networking = api.create_networking_config(
                {spec.network: api.create_endpoint_config(aliases=spec.aliases or None)}
            )
        host_config = api.create_host_config(
            network_mode=spec.network, cap_add=spec.cap_add or None, binds=spec.binds or None, init=False
        )
        created = api.create_container(
            spec.image,
            command=spec.command,
            entrypoint=spec.entrypoint,
            environment=spec.env or None,
            user=spec.user or "",
            name=spec.name,
            hostname=spec.hostname,
            labels=spec.labels,
            working_dir=spec.workdir,
            host_config=host_config,
            networking_config=networking,
        )
        api.start(created["Id"])
        return self.client.containers.get(created["Id"])

    def start(self, spec: ContainerSpec):
        """Create and start the container; PodStartError saying why it could not."""
        import docker

        try:
            return self._create_and_start(spec)
        except docker.errors.ImageNotFound:
            raise PodStartError(
                f"image {spec.image} is not available locally; the docker backend never pulls "
                "(use an egress-mesh/* image or `docker pull` it first)"
            ) from None
        except docker.errors.APIError as exc:
            raise PodStartError(f"docker could not start {spec.name}: {exc.explanation or exc}") from None

    def networks(self, container: str) -> dict:
        return self.client.api.inspect_container(container)["NetworkSettings"]["Networks"]

    def ip(self, container: str, network: str) -> str:
        return (self.networks(container).get(network) or {}).get("IPAddress", "")

    def connect(self, container: str, network: str, aliases: Sequence[str] | None = None) -> str:
        """Attach ``container`` to ``network``; returns the equivalent CLI line."""
        self.client.api.connect_container_to_network(container, network, aliases=list(aliases or ()) or None)
        return join(
            ["docker", "network", "connect", *[f"--alias={a}" for a in aliases or ()], network, container]
        )

    def disconnect(self, container: str, network: str) -> None:
        self.client.api.disconnect_container_from_network(container, network)

    def state(self, container: str) -> dict:
        return self.client.api.inspect_container(container)["State"]

    def exec(self, container: str, argv: list[str]) -> tuple[int, str, str]:
        api = self.client.api
        exec_id = api.exec_create(container, argv, stdout=True, stderr=True)["Id"]
        out, err = api.exec_start(exec_id, demux=True)
        code = api.exec_inspect(exec_id).get("ExitCode")
        return (
            code if code is not None else 1,
            (out or b"").decode(errors="replace"),
            (err or b"").decode(errors="replace"),
        )

    def probe(self, container: str, argv: list[str]) -> bool:
        import docker

        try:
            return self.exec(container, argv)[0] == 0
        except docker.errors.APIError:
            return False

    def logs(self, container: str) -> tuple[str, str]:
        api = self.client.api
        out = api.logs(container, stdout=True, stderr=False)
        err = api.logs(container, stdout=False, stderr=True)
        return out.decode(errors="replace"), err.decode(errors="replace")

    def remove(self, names: Sequence[str]) -> None:
        import docker

        def remove(name: str) -> None:
            try:
                self.client.api.remove_container(name, force=True, v=True)
            except docker.errors.NotFound:
                pass

        if names:
            with ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(remove, names))


def remove_run(client, run_id: str | None = None) -> list[str]:
    """Remove every container and network of one harness run (all runs when ``run_id`` is None)."""
    label = HARNESS_LABEL if run_id is None else f"{HARNESS_LABEL}={run_id}"
    containers = client.containers.list(all=True, filters={"label": label})

    def remove(container) -> None:
        try:
            container.remove(force=True, v=True)
        except Exception:  # already gone
            pass

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(remove, containers))
    networks = client.networks.list(filters={"label": label})
    for network in networks:
        try:
            network.remove()
        except Exception:  # still in use by a container of another run
            pass
    from scenarios.clusters.docker.hooks import cleanups

    extra = [name for cleanup in cleanups() for name in cleanup(run_id)]
    pattern = f"egress-mesh-{run_id or '*'}-manifests-*"
    folders = glob.glob(os.path.join(tempfile.gettempdir(), pattern))
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
    return [c.name for c in containers] + [n.name for n in networks] + folders + extra
