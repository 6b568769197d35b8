"""``python -m scenarios.clusters.docker clean [RUN_ID]``: remove what harness runs left behind
(every run's containers, networks, manifest folders and firewall chains, or one run's)."""

from __future__ import annotations

import argparse
import sys

from scenarios.clusters.base import BackendUnavailable
from scenarios.clusters.docker.engine import connect, remove_run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scenarios.clusters.docker", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    clean = commands.add_parser("clean", help="remove what harness runs left behind")
    clean.add_argument("run_id", nargs="?", help="only this run (default: every run)")
    args = parser.parse_args(argv)
    try:
        client = connect()
    except BackendUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for name in remove_run(client, args.run_id):
        print(f"removed {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
