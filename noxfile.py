"""Sessions: tests, e2e, lint, images, bench, demo, mutate. Extra arguments after `--` go to the tool."""

from __future__ import annotations

import runpy
from pathlib import Path

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True

#: the backend list of scenarios/clusters/registry.py (read without installing egress-mesh)
BACKENDS = list(runpy.run_path(str(Path(__file__).parent / "scenarios/clusters/registry.py"))["BACKENDS"])


def _install(session: nox.Session) -> None:
    session.install("-e", ".[test]")


@nox.session
def lint(session: nox.Session) -> None:
    """ruff, then the import layers of pyproject.toml's [tool.importlinter] (mesh never imports the
    harness; API at the bottom, the CLI and the harness on top)."""
    session.install("ruff", "import-linter")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("lint-imports")


@nox.session
def tests(session: nox.Session) -> None:
    """Unit and integration tests (integration ones need root and skip without it)."""
    _install(session)
    session.run("pytest", "-m", "not e2e", *session.posargs)


@nox.session
@nox.parametrize("backend", BACKENDS)
def e2e(session: nox.Session, backend: str) -> None:
    """The article's scenario matrix on a backend: `nox -s "e2e(backend='kind')" -- --k8s-version 1.31`."""
    _install(session)
    session.run("pytest", "tests/e2e", "scenarios/catalog", f"--backend={backend}", *session.posargs)


@nox.session
def images(session: nox.Session) -> None:
    """Build every image (base image included when it is missing)."""
    _install(session)
    session.run("python", "-m", "scenarios", "images", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Data-plane benchmark: sidecar and gateway against direct, squid and tinyproxy (docs/benchmark.md)."""
    _install(session)
    session.run("python", "-m", "benchmarks.dataplane", *session.posargs)


@nox.session
def mutate(session: nox.Session) -> None:
    """Mutation testing of the security-critical modules (docs/mutation.md): `nox -s mutate -- http1 --ci`."""
    _install(session)
    session.run("python", "tools/mutate.py", *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    """The live walkthrough: `nox -s demo -- --pause --lang zh`."""
    _install(session)
    session.run("python", "-m", "scenarios", "demo", *session.posargs)
