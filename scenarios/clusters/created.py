"""Clusters the harness creates itself (kind, k3d, k3s-container): who owns what.

- No cluster of that name: the harness creates it (recording it first, see ``records``), and
  deletes it at the end unless ``--keep``.
- A cluster of that name the harness recorded (kept by an earlier ``--keep`` run, or left by a
  crash): reused, and deleted at the end unless ``--keep``.
- A cluster of that name the harness did not create: refused, unless ``--reuse``; then it is
  used as the user's cluster (what the harness added is removed at the end, the cluster never).

Subclasses run their tool with argument lists (never a shell string) and say how to find,
create, attach to and delete a cluster.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from scenarios.clusters import records
from scenarios.clusters.base import BackendOptions, BackendUnavailable, OpResult, join
from scenarios.clusters.kubernetes import KubernetesCluster

CREATE_TIMEOUT = 600.0


class CreatedCluster(KubernetesCluster):
    #: the program that manages these clusters (kind, k3d, docker)
    binary = ""
    #: how to remove a cluster by hand, for messages (``{name}`` is the cluster name)
    delete_hint = ""

    def __init__(self, options: BackendOptions | None = None) -> None:
        super().__init__(options)
        self.cluster_name = self.options.cluster_name
        self.kubeconfig = str(records.state_dir() / f"{self.name}-{self.cluster_name}.kubeconfig")
        #: set by up(): True when the harness created this cluster (now or in a kept run)
        self.harness_owned = False

    # what subclasses provide ---------------------------------------------------------------------------
    def exists(self) -> bool:
        raise NotImplementedError

    def _start(self) -> None:
        """Create the cluster and write ``self.kubeconfig``."""
        raise NotImplementedError

    def _attach(self) -> None:
        """Write ``self.kubeconfig`` for a cluster that already runs."""
        raise NotImplementedError

    def _remove(self) -> None:
        """Delete the cluster."""
        raise NotImplementedError

    # running the tool ----------------------------------------------------------------------------------
    def tool(self, argv: Sequence[str], timeout: float = 120.0) -> OpResult:
        """Run the backend's program (argument list, no shell); a missing program is BackendUnavailable."""
        try:
            proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
        except FileNotFoundError:
            raise BackendUnavailable(
                f"{self.name}: {argv[0]} is not installed (on PATH); `python -m scenarios doctor "
                f"--backend {self.name}` says how to install it"
            ) from None
        except subprocess.TimeoutExpired:
            return OpResult(join(argv), 124, "", f"timed out after {timeout:.0f}s")
        return OpResult(join(argv), proc.returncode, proc.stdout, proc.stderr)

    def tool_ok(self, argv: Sequence[str], what: str, timeout: float = 120.0) -> OpResult:
        result = self.tool(argv, timeout)
        if not result.ok:
            raise BackendUnavailable(
                f"{self.name}: {what} failed: {result.command} exited {result.exit_code}: "
                f"{(result.stderr or result.stdout).strip()[-2000:]}"
            )
        return result

    # ownership -----------------------------------------------------------------------------------------
    def _create(self) -> None:
        recorded = records.find(self.name, self.cluster_name)
        if self.exists():
            if recorded is None and not self.options.reuse:
                raise BackendUnavailable(
                    f"{self.name}: a cluster named {self.cluster_name!r} exists and was not created by "
                    f"egress-mesh, so it is neither used nor deleted. Pass --reuse to run in it (it is "
                    f"left in place), --cluster-name to create another one, or delete it yourself: "
                    f"{self.delete_hint.format(name=self.cluster_name)}"
                )
            self._attach()
            self.harness_owned = recorded is not None
            return
        if recorded is not None:
            records.forget(self.name, self.cluster_name)  # deleted behind our back
        records.remember(self.name, self.cluster_name, self.kubeconfig)
        try:
            self._start()
        except BaseException:
            try:
                self.remove_created()
            except Exception:  # the record stays, so `python -m scenarios clean` retries
                pass
            raise
        self.harness_owned = True

    def _destroy(self) -> None:
        if self.harness_owned:
            self.remove_created()

    def remove_created(self) -> bool:
        """Delete this cluster if the harness recorded it; returns whether one was deleted."""
        if records.find(self.name, self.cluster_name) is None:
            return False
        existed = self.exists()
        if existed:
            self._remove()
        records.forget(self.name, self.cluster_name)
        Path(self.kubeconfig).unlink(missing_ok=True)
        return existed
