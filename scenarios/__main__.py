"""``python -m scenarios``: list and run scenarios, build images, and the live demo.

    python -m scenarios list
    python -m scenarios run [NAME|FILE ...] [--backend docker] [--report FILE.json] [--keep]
    python -m scenarios images [--base-image IMG]
    python -m scenarios doctor [--backend B]    what the backend needs and what is missing here
    python -m scenarios clean [--list]          kept clusters (--keep): list them, remove them
    python -m scenarios demo ...        the live walkthrough (scenarios.demo)

Exit codes: 0 all expectations held, 1 an expectation failed, 2 a usage or scenario-file error,
3 the backend is unavailable or could not be set up (doctor: something required is missing;
clean: a cluster could not be removed), 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from rich.console import Console
from rich.markup import escape

from scenarios import options
from scenarios.clusters import CREATING_BACKENDS, UnknownBackend, create
from scenarios.clusters.base import BackendOptions, BackendUnavailable
from scenarios.exitcodes import EXIT_BACKEND, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE
from scenarios.format import ScenarioError, catalog_files, load_all, load_file


def backend_options(args: argparse.Namespace) -> BackendOptions:
    return options.backend_options(vars(args).get)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scenarios", description="Run the osm-edge egress article's scenarios on a backend."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    listing = commands.add_parser("list", help="list the catalog's scenarios")
    listing.add_argument("--lang", choices=["en", "zh"], default="en")

    run = commands.add_parser("run", help="run scenarios (default: the whole catalog) on a backend")
    run.add_argument("scenarios", nargs="*", metavar="NAME|FILE", help="catalog name or scenario file")
    options.add_run_options(run.add_argument)
    run.add_argument("--lang", choices=["en", "zh"], default="en", help="narration language")
    run.add_argument("-v", "--verbose", action="store_true", help="show retries and backend commands")

    images = commands.add_parser("images", help="build every image (the base image too, when missing)")
    images.add_argument(
        "--base-image", help="base image (default: a Debian base built from the host's mirror)"
    )

    doctor = commands.add_parser("doctor", help="what a backend needs, what is missing here, how to fix it")
    options.add_backend_options(doctor.add_argument)

    clean = commands.add_parser("clean", help="list and remove the clusters kept with --keep")
    clean.add_argument("--list", action="store_true", help="only list them")
    clean.add_argument("--backend", choices=list(CREATING_BACKENDS), help="only this backend's")
    clean.add_argument("--cluster-name", help="only the cluster of this name")

    commands.add_parser("demo", help="the live walkthrough of the article", add_help=False)
    return parser


def cmd_list(args: argparse.Namespace, console: Console) -> int:
    scenarios = [load_file(path) for path in catalog_files()]
    width = max(len(s.name) for s in scenarios)
    for scenario in scenarios:
        title = escape(scenario.title.get(args.lang))
        console.print(f"{escape(scenario.name):{width}}  {len(scenario.steps):2} steps  {title}")
    return 0


def progress_printer(console: Console, verbose: bool) -> Callable[[str], None]:
    """Progress lines; indented detail (e.g. each image build step) only when ``verbose``."""

    def say(line: str) -> None:
        if verbose or not line[:1].isspace():
            console.print(f"[dim]{escape(line)}[/]")

    return say


def cmd_run(args: argparse.Namespace, console: Console) -> int:
    from scenarios import report
    from scenarios.pipeline import prepare
    from scenarios.runner import ConsoleObserver, Runner

    scenarios = load_all(args.scenarios)
    cluster = create(args.backend, backend_options(args))
    try:
        try:
            prepare(cluster, base_image=args.base_image, progress=progress_printer(console, args.verbose))
        except BackendUnavailable:
            raise
        except Exception as exc:
            console.print(
                f"[bold red]error:[/] setting up the {args.backend} backend failed: {escape(str(exc))}"
            )
            return EXIT_BACKEND
        observer = ConsoleObserver(console, lang=args.lang, verbose=args.verbose)
        result = Runner(cluster, [observer]).run(scenarios)
    finally:
        try:
            cluster.down(keep=args.keep)
        except Exception as exc:
            console.print(
                f"[yellow]warning:[/] removing the {args.backend} backend failed: {escape(str(exc))}"
            )
    if args.report:
        console.print(f"report: {report.write(result, args.report)}")
    return 0 if result.passed else EXIT_FAILED


def cmd_images(args: argparse.Namespace, console: Console) -> int:
    from scenarios import images

    try:
        refs = images.build_all(
            base_image=args.base_image, progress=lambda line: console.print(f"[dim]{escape(line)}[/]")
        )
    except BackendUnavailable:
        raise
    except Exception as exc:
        console.print(f"[bold red]error:[/] building the images failed: {escape(str(exc))}")
        return EXIT_BACKEND
    for short, ref in refs.items():
        console.print(f"{short:10} {ref}")
    return 0


def cmd_doctor(args: argparse.Namespace, console: Console) -> int:
    from scenarios.clusters import doctor

    found = doctor.checks(args.backend, backend_options(args))
    style = {"ok": "green", "MISSING": "bold red", "warning": "yellow"}
    width = max(len(check.what) for check in found)
    for status, what, seen, fix in doctor.lines(found):
        console.print(f"[{style[status]}]{status:8}[/] {escape(what):{width}}  {escape(seen)}")
        if fix:
            console.print(f"{'':8} {'':{width}}  fix: [cyan]{escape(fix)}[/]")
    console.print(escape(doctor.summary(args.backend, found)))
    return 0 if doctor.ready(found) else EXIT_BACKEND


def cmd_clean(args: argparse.Namespace, console: Console) -> int:
    from scenarios.clusters import records

    kept = [
        r
        for r in records.all_records()
        if (args.backend in (None, r.backend)) and (args.cluster_name in (None, r.name))
    ]
    if not kept:
        console.print("no kept clusters (egress-mesh deletes the clusters it creates unless --keep)")
        return 0
    failed = 0
    for record in kept:
        line = (
            f"{record.backend:14} {record.name:20} created {record.created}  kubeconfig {record.kubeconfig}"
        )
        if args.list:
            console.print(escape(line))
            continue
        cluster = create(record.backend, BackendOptions(cluster_name=record.name))
        try:
            gone = cluster.remove_created()  # type: ignore[attr-defined]
        except BackendUnavailable as exc:
            failed += 1
            console.print(f"[bold red]not removed:[/] {escape(line)}: {escape(str(exc))}")
            continue
        state = "removed" if gone else "already gone, record dropped"
        console.print(f"{state}: {escape(line)}")
    return EXIT_BACKEND if failed else 0


def cmd_demo(argv: Sequence[str], console: Console) -> int:
    """Hands over to ``scenarios.demo.cli.main(argv) -> int`` (the demo owns its options)."""
    from scenarios.demo import cli as demo

    return int(demo.main(list(argv)) or 0)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    console = Console(highlight=False, soft_wrap=True)
    errors = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        if argv[:1] == ["demo"]:
            return cmd_demo(argv[1:], console)
        args = build_parser().parse_args(argv)
        handler = {
            "list": cmd_list,
            "run": cmd_run,
            "images": cmd_images,
            "doctor": cmd_doctor,
            "clean": cmd_clean,
        }[args.command]
        return handler(args, console)
    except (ScenarioError, UnknownBackend) as exc:
        errors.print(f"[bold red]error:[/] {escape(str(exc))}")
        return EXIT_USAGE
    except BackendUnavailable as exc:
        errors.print(f"[bold red]error:[/] backend unavailable: {escape(str(exc))}")
        return EXIT_BACKEND
    except KeyboardInterrupt:
        errors.print("interrupted")
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
