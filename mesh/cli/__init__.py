"""meshctl (also installed as ``osm``): install the mesh, add namespaces, inject, validate, status.

The article's commands work with either name, e.g.::

    osm install --mesh-name osm --osm-namespace osm-system \\
        --set=osm.enableEgress=false --set=osm.image.pullPolicy=Always
    osm namespace add curl
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from mesh.api.load import LoadError
from mesh.manifests.install import OptionError
from mesh.manifests.kube import KubeApi, KubeError, Kubernetes

from .common import ApiFactory, CliError
from .common import say as say
from .common import version as version
from .install import _rollout_pending as _rollout_pending
from .install import wait_for as wait_for
from .parser import build_parser


def connect(args: argparse.Namespace) -> KubeApi:
    return Kubernetes(kubeconfig=getattr(args, "kubeconfig", None), context=getattr(args, "context", None))


def main(argv: Sequence[str] | None = None, api_factory: ApiFactory | None = None) -> int:
    prog = os.path.basename(sys.argv[0]) if argv is None and sys.argv and sys.argv[0] else "meshctl"
    parser = build_parser(prog if prog in ("osm", "meshctl") else "meshctl")
    args = parser.parse_args(argv)
    try:
        return args.func(args, api_factory or connect)
    except (CliError, OptionError, LoadError, KubeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
