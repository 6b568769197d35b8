"""``mesh-proxy init``: install the outbound interception rules (run by the ``osm-init`` container).

``mesh/proxy/__main__.py`` registers the subcommand with ``add_arguments`` and calls ``run``.
"""

from __future__ import annotations

import argparse
import sys

from mesh.proxy import iptables


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--proxy-uid", type=int, default=1500, help="UID of the sidecar, never redirected")
    parser.add_argument("--proxy-port", type=int, default=15001, help="the sidecar's outbound listener port")
    parser.add_argument(
        "--exclude-ip-ranges", default="", metavar="CIDR,...", help="destinations never redirected"
    )
    parser.add_argument("--exclude-ports", default="", metavar="P,...", help="ports never redirected")
    parser.add_argument(
        "--include-ip-ranges",
        default="",
        metavar="CIDR,...",
        help="redirect only these destinations (default: everything not excluded)",
    )
    parser.add_argument("--ipv6", action="store_true", help="also install the rules with ip6tables")
    parser.add_argument("--dry-run", action="store_true", help="print the rules, change nothing")


def interception_from_args(args: argparse.Namespace) -> iptables.Interception:
    return iptables.Interception(
        proxy_uid=args.proxy_uid,
        proxy_port=args.proxy_port,
        exclude_ip_ranges=iptables.parse_cidrs(args.exclude_ip_ranges, "--exclude-ip-ranges"),
        exclude_ports=iptables.parse_ports(args.exclude_ports, "--exclude-ports"),
        include_ip_ranges=iptables.parse_cidrs(args.include_ip_ranges, "--include-ip-ranges"),
    )


def run(args: argparse.Namespace) -> int:
    try:
        opts = interception_from_args(args)
    except iptables.InvalidOption as exc:
        print(f"mesh-proxy init: error: {exc}", file=sys.stderr)
        return 2
    families = [iptables.IPV4, iptables.IPV6] if getattr(args, "ipv6", False) else [iptables.IPV4]
    if args.dry_run:
        for family in families:
            print(f"# {family.restore} --noflush <<EOF")
            print(iptables.render(opts, family), end="")
            print("# EOF")
        return 0
    try:
        for family in families:
            iptables.apply(opts, family)
            print(
                f"mesh-proxy init: IPv{family.version} outbound TCP redirected to port {opts.proxy_port} "
                f"(UID {opts.proxy_uid} excluded)",
                flush=True,
            )
    except iptables.InitError as exc:
        print(f"mesh-proxy init: error: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Standalone entry (``python -m mesh.proxy.init``), same options as ``mesh-proxy init``."""
    parser = argparse.ArgumentParser(prog="mesh-proxy init", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
