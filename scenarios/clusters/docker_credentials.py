"""Sidecar credentials on the Docker backend: what the kubelet and the API server do on Kubernetes.

The injector gives the sidecar a projected ServiceAccount token volume (audience
``credentials.AUDIENCE``, ``expirationSeconds``); here the backend mints that token itself
(``mesh.api.credentials.mint``, Ed25519, a key made for the run), writes it into a directory of its
own per pod and volume, and bind-mounts the directory read-only at the container's ``mountPath``,
so the sidecar reads it at the same path as on Kubernetes. The controller gets the public key
(``--auth-public-key``) and checks the tokens with the same code as any other credential.

Tokens are minted again at 80 % of their lifetime, as the kubelet does, and replaced atomically
(write + rename inside the mounted directory, so the container sees the new file).
Only volumes for the controller's audience are translated; other volumes are not mounted.

``scenarios.clusters.docker.credentials.CredentialsHook`` wires this into the Docker backend.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mesh.api import credentials
from mesh.api.proxyconfig import Identity

CONTROLLER_KEY_DIR = "/var/run/secrets/egress-mesh-controller"
PUBLIC_KEY_FILE = "public.pem"


class DockerCredentials:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.key = credentials.generate_signing_key()
        self._lock = threading.Lock()
        #: token file -> (identity, pod name, lifetime)
        self._tokens: dict[Path, tuple[Identity, str, int]] = {}
        self._stop = threading.Event()
        self._rotation: threading.Thread | None = None
        public = directory / "controller"
        public.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
        os.chmod(public, 0o755)
        _write(public / PUBLIC_KEY_FILE, credentials.public_key_pem(self.key).decode())

    # the controller ----------------------------------------------------------------------------------
    def controller_args(self) -> list[str]:
        return ["--auth-public-key", f"{CONTROLLER_KEY_DIR}/{PUBLIC_KEY_FILE}"]

    def controller_binds(self) -> list[str]:
        return [f"{self.directory / 'controller'}:{CONTROLLER_KEY_DIR}:ro"]

    # pods --------------------------------------------------------------------------------------------
    def pod_binds(
        self, namespace: str, pod_name: str, pod_spec: Mapping[str, Any], container: Mapping[str, Any]
    ) -> list[str]:
        """Binds for the container's mounts of projected ServiceAccount token volumes (tokens minted now)."""
        identity = Identity(namespace, str(pod_spec.get("serviceAccountName") or "default"))
        volumes = {v.get("name"): v for v in pod_spec.get("volumes") or () if isinstance(v, Mapping)}
        binds = []
        for mount in container.get("volumeMounts") or ():
            sources = token_sources(volumes.get(mount.get("name")) or {})
            if not sources:
                continue
            folder = self.directory / "pods" / namespace / pod_name / str(mount["name"])
            folder.mkdir(parents=True, exist_ok=True)
            os.chmod(folder, 0o755)
            for source in sources:
                lifetime = int(source.get("expirationSeconds") or credentials.TOKEN_LIFETIME)
                token_file = folder / str(source.get("path") or "token")
                with self._lock:
                    self._tokens[token_file] = (identity, pod_name, lifetime)
                self._mint(token_file)
            binds.append(f"{folder}:{mount['mountPath']}:ro")
        if binds:
            self._start_rotation()
        return binds

    def pods(self) -> set[tuple[str, str]]:
        """(namespace, name) of every pod with tokens being minted."""
        with self._lock:
            return {(identity.namespace, pod_name) for identity, pod_name, _ in self._tokens.values()}

    def forget_pod(self, namespace: str, pod_name: str) -> None:
        folder = self.directory / "pods" / namespace / pod_name
        with self._lock:
            for token_file in [t for t in self._tokens if folder in t.parents]:
                del self._tokens[token_file]
        shutil.rmtree(folder, ignore_errors=True)

    def rotate(self) -> None:
        """Mint every token again (what the kubelet does before a projected token expires)."""
        with self._lock:
            files = list(self._tokens)
        for token_file in files:
            self._mint(token_file)

    def close(self) -> None:
        self._stop.set()
        shutil.rmtree(self.directory, ignore_errors=True)

    def _mint(self, token_file: Path) -> None:
        with self._lock:
            entry = self._tokens.get(token_file)
        if entry is None or not token_file.parent.is_dir():
            return
        identity, pod_name, lifetime = entry
        _write(token_file, credentials.mint(self.key, identity, pod=pod_name, lifetime=lifetime))

    def _start_rotation(self) -> None:
        with self._lock:
            if self._rotation is not None:
                return
            lifetimes = [lifetime for _, _, lifetime in self._tokens.values()]
            interval = 0.8 * min(lifetimes)
            self._rotation = threading.Thread(target=self._rotate_every, args=(interval,), daemon=True)
        self._rotation.start()

    def _rotate_every(self, interval: float) -> None:
        while not self._stop.wait(interval) and self.directory.is_dir():  # gone: the run was cleaned up
            self.rotate()


def token_sources(volume: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The ``serviceAccountToken`` sources of a projected volume meant for the controller."""
    sources = ((volume.get("projected") or {}).get("sources")) or ()
    tokens = [s.get("serviceAccountToken") for s in sources if isinstance(s, Mapping)]
    return [t for t in tokens if isinstance(t, Mapping) and t.get("audience") == credentials.AUDIENCE]


def _write(path: Path, text: str) -> None:
    """Replace ``path`` atomically, readable by the sidecar's UID (0644 in a 0755 directory)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
