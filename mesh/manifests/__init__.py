"""Install manifests for egress-mesh (rendered by ``mesh.manifests.install``, applied by meshctl)."""

from __future__ import annotations

#: Kubernetes versions every rendered manifest is validated against (kubernetes-validate schemas);
#: CI's cluster matrix uses the same minor versions.
K8S_VERSIONS: tuple[str, ...] = ("1.35.0", "1.36.0", "1.37.0")
