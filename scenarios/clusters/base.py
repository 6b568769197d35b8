"""The one interface every backend implements (docker, k3s, kind, k3d, k3s-container, external).

Scenarios, the runner and the demo talk only to ``Cluster``. Every operation returns an
``OpResult`` whose ``command`` is the concrete command the backend ran (or its exact
equivalent), for display in the demo and in reports.
"""

from __future__ import annotations

import shlex
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class OpResult:
    command: str
    exit_code: int = 0
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


@dataclass
class MeshOptions:
    """What ``meshctl install`` is given (the article's options and defaults)."""

    mesh_name: str = "osm"
    mesh_namespace: str = "osm-system"
    enable_egress: bool = False
    extra_set: dict[str, str] = field(default_factory=dict)


@dataclass
class BackendOptions:
    """Everything a backend constructor takes: ``SomeCluster(options)``."""

    keep: bool = False
    #: use an existing cluster of that name the harness did not create (it is never deleted)
    reuse: bool = False
    #: Kubernetes version for backends that create clusters (kind, k3d, k3s-container)
    k8s_version: str | None = None
    cluster_name: str = "egress-mesh"
    kubeconfig: str | None = None
    #: registry to push images to (external backend)
    registry: str | None = None
    #: "standins" (local stand-ins answer as httpbin.org / httpstat.us) or "internet" (the real ones)
    external: str = "standins"
    #: base image for image builds (None: the locally built Debian base)
    base_image: str | None = None


@dataclass
class PodInfo:
    """One pod as ``kubectl get pod`` lists it."""

    namespace: str
    name: str
    ip: str
    status: str  # Running, Error, Pending
    containers: int


class BackendUnavailable(RuntimeError):
    """The backend cannot run here (binary missing, no Docker, no cluster); the message says why."""


class Unsupported(RuntimeError):
    """This backend cannot do the operation; scenarios report the step as skipped with the reason."""


def join(argv: Sequence[str]) -> str:
    return shlex.join(argv)


class Cluster(ABC):
    #: short backend name: docker, k3s, kind, k3d, k3s-container, external
    name: str = ""
    #: things a scenario may require (e.g. "gateway-log", "coredns"); see scenarios docs
    capabilities: frozenset[str] = frozenset()

    # lifecycle -------------------------------------------------------------------------------
    @abstractmethod
    def up(self) -> None:
        """Create or connect to the cluster. Idempotent."""

    @abstractmethod
    def down(self, keep: bool = False) -> None:
        """Remove everything this harness created (unless ``keep``)."""

    @abstractmethod
    def load_images(self, images: Sequence[str]) -> list[OpResult]:
        """Make locally built images (``name:tag``) available to the cluster."""

    @abstractmethod
    def install_mesh(self, options: MeshOptions) -> list[OpResult]:
        """Install the control plane, CRDs and MeshConfig; wait until ready."""

    @abstractmethod
    def reset(self) -> None:
        """Bring the cluster back to the state right after install_mesh (sample apps removed,
        MeshConfig defaults restored, Egress/EgressGateway objects deleted)."""

    # resources ----------------------------------------------------------------------------------
    @abstractmethod
    def apply(self, manifest: str, namespace: str | None = None) -> OpResult:
        """``kubectl apply [-n NS] -f -`` with a (multi-document) YAML string."""

    @abstractmethod
    def delete(self, kind: str, name: str, namespace: str | None = None) -> OpResult:
        """``kubectl delete KIND NAME [-n NS]``."""

    @abstractmethod
    def patch(
        self, kind: str, name: str, namespace: str | None, patch: dict, patch_type: str = "merge"
    ) -> OpResult:
        """``kubectl patch KIND NAME -n NS -p JSON --type=merge``."""

    @abstractmethod
    def run(self, argv: Sequence[str]) -> OpResult:
        """Run a ``kubectl``/``meshctl`` style command line against the cluster (the catalog's
        free-form steps, e.g. ``kubectl create namespace curl`` or ``osm namespace add curl``)."""

    # pods -------------------------------------------------------------------------------------------
    @abstractmethod
    def exec(self, namespace: str, selector: str, container: str, argv: Sequence[str]) -> OpResult:
        """Run ``argv`` in ``container`` of the first pod matching label ``selector`` (``app=curl``)."""

    @abstractmethod
    def logs(self, namespace: str, selector: str, container: str | None = None) -> OpResult:
        """Logs of the first pod matching ``selector``."""

    @abstractmethod
    def pod_ip(self, namespace: str, selector: str) -> str:
        """IP address of the first pod matching ``selector`` (what the gateway logs as source_address)."""

    @abstractmethod
    def wait_ready(self, namespace: str, selector: str, timeout: float = 120.0) -> OpResult:
        """Wait until pods matching ``selector`` are ready; on timeout raise TimeoutError whose message
        says what is not ready and why."""

    # reading pods and objects by name: optional, for backends that answer kubectl themselves ------------
    # (the Docker backend's kubectl emulator, scenarios/clusters/kubectl.py, is built on these)
    def get_object(self, kind: str, name: str, namespace: str | None = None) -> dict | None:
        """The stored object ``kubectl get KIND NAME -n NS -o json`` shows, or None."""
        raise Unsupported(f"the {self.name} backend does not read objects itself")

    def list_pods(self, namespace: str, selector: str = "") -> list[PodInfo]:
        """The pods of ``namespace`` matching label ``selector``, by name."""
        raise Unsupported(f"the {self.name} backend does not list pods itself")

    def exec_pod(self, namespace: str, pod: str, container: str | None, argv: Sequence[str]) -> OpResult:
        """``exec`` in the pod called ``pod`` (its first container when ``container`` is None)."""
        raise Unsupported(f"the {self.name} backend does not exec by pod name itself")

    def pod_logs(self, namespace: str, pod: str, container: str | None = None) -> OpResult:
        """``logs`` of the pod called ``pod``."""
        raise Unsupported(f"the {self.name} backend does not read logs by pod name itself")
