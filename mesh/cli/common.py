"""What every meshctl command shares: the user-facing error, output and the version."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from importlib import metadata

from mesh.manifests.kube import KubeApi

ApiFactory = Callable[[argparse.Namespace], KubeApi]


class CliError(RuntimeError):
    """A user-facing failure: printed as ``error: ...`` with exit code 1."""


def say(text: str = "") -> None:
    print(text, flush=True)


def version() -> str:
    try:
        return metadata.version("egress-mesh")
    except metadata.PackageNotFoundError:
        return "0.0.0+unknown"
