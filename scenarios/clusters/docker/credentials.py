"""Sidecar credentials on the Docker backend (``docker_credentials.py``): the controller checks
tokens with the run's public key, each sidecar gets its pod's token. The key and the tokens live in
``$TMPDIR/egress-mesh-<run>-credentials-*``, removed with the run."""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from scenarios.clusters.docker.engine import ContainerSpec
from scenarios.clusters.docker.hooks import DockerHook
from scenarios.clusters.docker.pods import Pod
from scenarios.clusters.docker_credentials import DockerCredentials


class CredentialsHook(DockerHook):
    what = "sidecar credentials"

    def __init__(self, cluster) -> None:
        super().__init__(cluster)
        self._credentials: DockerCredentials | None = None

    @property
    def credentials(self) -> DockerCredentials:
        if self._credentials is None or not self._credentials.directory.is_dir():
            prefix = f"egress-mesh-{self.cluster.run_id}-credentials-"
            self._credentials = DockerCredentials(Path(tempfile.mkdtemp(prefix=prefix)))
        return self._credentials

    def controller_spec(self, spec: ContainerSpec) -> None:
        spec.command = [*(spec.command or []), *self.credentials.controller_args()]
        spec.binds = [*spec.binds, *self.credentials.controller_binds()]

    def container_spec(self, pod: Pod, container: Mapping[str, Any], spec: ContainerSpec) -> None:
        if not container.get("volumeMounts"):
            return
        spec.binds = [*spec.binds, *self.credentials.pod_binds(pod.namespace, pod.name, pod.spec, container)]

    def objects_changed(self) -> list[str]:
        """Tokens of pods that are gone are no longer minted, and their files are removed (the
        kubelet's projected volume goes with its pod)."""
        if self._credentials is None:
            return []
        alive = set(self.cluster.runtime.pods)
        for namespace, pod_name in self._credentials.pods() - alive:
            self._credentials.forget_pod(namespace, pod_name)
        return []

    @staticmethod
    def cleanup(run_id: str | None) -> list[str]:
        folders = glob.glob(os.path.join(tempfile.gettempdir(), f"egress-mesh-{run_id or '*'}-credentials-*"))
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
        return folders
