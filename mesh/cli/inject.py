"""meshctl inject: add the init container and the sidecar to workload manifests offline."""

from __future__ import annotations

import argparse
import sys

from mesh.api.load import dump_all, load_paths
from mesh.api.validation import describe

from .common import ApiFactory, CliError


def cmd_inject(args: argparse.Namespace, connect: ApiFactory) -> int:
    try:
        from mesh.controller import injector
    except ImportError as exc:
        raise CliError(f"sidecar injection is not available in this installation ({exc})") from None
    from mesh.api.proxyconfig import Exclusions

    proxy_image = args.proxy_image or injector.InjectionSettings().proxy_image
    settings = injector.InjectionSettings(
        proxy_image=proxy_image,
        init_image=args.init_image or proxy_image,
        controller_url=args.controller_url or injector.default_controller_url(args.osm_namespace),
        mesh_name=args.mesh_name,
        mesh_namespace=args.osm_namespace,
        exclusions=Exclusions(ip_ranges=tuple(args.exclude_ip_ranges), ports=tuple(args.exclude_ports)),
        image_pull_policy=args.image_pull_policy,
    )
    out = []
    for doc in load_paths(args.filename):
        try:
            out.append(injector.inject_workload(doc.obj, settings))
        except injector.InjectionError as exc:
            raise CliError(f"{doc.source}: {describe(doc.obj)}: {exc}") from None
    sys.stdout.write(dump_all(out))
    return 0
