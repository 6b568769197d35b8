"""``python -m scenarios demo [NAME|FILE ...] [--backend docker] [--auto | --pause] [--lang en|zh]``.

Exit codes: 0 every step passed and every result matches the article, 1 a step failed or a
result differs, 2 usage or scenario-file error, 3 the backend is unavailable or could not be
set up, 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime

from scenarios import options
from scenarios.clusters import UnknownBackend, create
from scenarios.clusters.base import BackendUnavailable, Cluster
from scenarios.demo import matrix, report
from scenarios.demo.model import DemoRun
from scenarios.demo.observer import DemoObserver, StopDemo
from scenarios.demo.render import LiveRenderer, make_console
from scenarios.demo.text import t
from scenarios.exitcodes import EXIT_BACKEND, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE
from scenarios.format import Scenario, ScenarioError, load_all
from scenarios.pipeline import Progress, SetupFailed, prepare


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scenarios demo",
        description="The live walkthrough of the osm-edge egress article on a backend.",
    )
    parser.add_argument(
        "scenarios",
        nargs="*",
        metavar="NAME|FILE",
        help="scenarios to replay (default: the article's catalog)",
    )
    options.add_backend_options(parser.add_argument)
    pace = parser.add_mutually_exclusive_group()
    pace.add_argument("--auto", action="store_true", help="run straight through (default without a TTY)")
    pace.add_argument("--pause", action="store_true", help="wait for Enter before each step")
    parser.add_argument("--lang", choices=["en", "zh"], default="en", help="narration language")
    parser.add_argument("--report", metavar="FILE.md", help="also write the run as a Markdown report")
    parser.add_argument(
        "--stop-on-failure", action="store_true", help="stop cleanly after the first failed step"
    )
    return parser


def pause_wanted(args: argparse.Namespace, stdin=None) -> bool:
    if args.pause or args.auto:
        return bool(args.pause)
    stdin = stdin if stdin is not None else sys.stdin
    return bool(stdin is not None and hasattr(stdin, "isatty") and stdin.isatty())


def _setup(cluster: Cluster, args: argparse.Namespace, renderer: LiveRenderer, run: DemoRun) -> None:
    """The one pipeline (scenarios.pipeline), each phase a visible wait."""
    lang = run.lang
    titles = {
        "starting": f"{t('starting_cluster', lang)} ({cluster.name})",
        "building": t("building_images", lang),
        "loading": t("loading_images", lang),
        "installing": t("installing_mesh", lang),
    }

    def phases(name: str) -> AbstractContextManager[Progress]:
        return renderer.waiting(titles[name])

    try:
        done = prepare(cluster, base_image=args.base_image, phases=phases)
    except SetupFailed as failed:
        run.preparation = failed.ops
        renderer.setup_op_failed(failed.ops[-1])
        raise
    run.preparation = done.ops
    for op in done.ops:
        renderer.ran(op.command)


def execute(args: argparse.Namespace, renderer: LiveRenderer, run: DemoRun, scenarios: list[Scenario]) -> int:
    from scenarios.runner import Runner

    cluster = create(args.backend, options.backend_options(vars(args).get))
    interrupted = False
    try:
        try:
            _setup(cluster, args, renderer, run)
        except (BackendUnavailable, KeyboardInterrupt):
            raise
        except Exception as exc:
            renderer.setup_failed(str(exc), args.backend)
            return EXIT_BACKEND
        observer = DemoObserver(renderer, run, cluster, stop_on_failure=args.stop_on_failure)
        try:
            Runner(cluster, [observer]).run(scenarios)
        except StopDemo as stop:
            renderer.line(f"{t('stopping', run.lang)} ({stop})", style="bold red")
    except KeyboardInterrupt:
        renderer.stop_status()
        interrupted = True
    finally:
        with renderer.waiting(t("tearing_down", run.lang)):
            try:
                cluster.down(keep=args.keep)
            except Exception as exc:
                renderer.line(f"warning: removing the {args.backend} backend failed: {exc}", style="yellow")
        if args.keep:
            renderer.line(t("kept", run.lang), style="dim")
    if interrupted:
        renderer.line("interrupted", style="bold red")
        return EXIT_INTERRUPTED
    return 0 if matrix.verdict(run)[0] else EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    console = make_console()
    renderer = LiveRenderer(console, lang=args.lang, pause=pause_wanted(args))
    run = DemoRun(args.backend, lang=args.lang, started=datetime.now(UTC))
    try:
        scenarios = load_all(args.scenarios)
    except ScenarioError as exc:
        renderer.error(str(exc))
        return EXIT_USAGE
    renderer.banner(run)
    try:
        code = execute(args, renderer, run, scenarios)
    except UnknownBackend as exc:
        renderer.error(str(exc))
        return EXIT_USAGE
    except BackendUnavailable as exc:
        renderer.error(f"backend unavailable: {exc}")
        return EXIT_BACKEND
    if code in (0, EXIT_FAILED) or run.scenarios:
        renderer.summary(run)
    if args.report:
        try:
            path = report.write(run, args.report)
        except OSError as exc:
            renderer.error(f"cannot write the report {args.report}: {exc.strerror or exc}")
            return code or EXIT_USAGE
        renderer.line(t("report_written", run.lang, path=path), style="dim")
    return code
