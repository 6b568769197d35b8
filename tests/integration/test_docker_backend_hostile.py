"""The Docker backend's ``kubectl apply -f FILE`` on hostile files (issue 10, section 2): exit 1
with one line naming the file, within seconds, never a traceback, RecursionError or MemoryError;
the backend keeps working afterwards. Needs a Docker engine (networks only, no images)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from scenarios.clusters.base import BackendOptions
from tests import hostile

pytestmark = pytest.mark.docker

MESSAGES = {
    "deep.yaml": "line 4, column 199: refused: nested more than 100 levels deep",
    "deep-flow.yaml": "line 3, column ",
    "bomb.yaml": "line 10, column 16: refused: more than 2000000 values once aliases are expanded",
    "recursive.yaml": "refused: alias *m refers to a collection that contains it",
    "huge-integer.yaml": "document 1 (line 1): cannot read a value: Exceeds the limit (4300 digits)",
    "huge.yaml": "bytes, more than the limit of 16777216 bytes per file",
}


@pytest.fixture(scope="module")
def backend():
    try:
        import docker

        docker.from_env().ping()
    except Exception as exc:  # no SDK, no socket, engine down: all mean "cannot test here"
        pytest.skip(f"no Docker engine answers: {exc}")
    from scenarios.clusters.docker import DockerCluster

    cluster = DockerCluster(BackendOptions())
    cluster.up()
    yield cluster
    cluster.down()


@pytest.mark.parametrize("name", MESSAGES)
def test_apply_of_a_hostile_file_is_one_clear_error_naming_it(backend, tmp_path: Path, name: str):
    path = tmp_path / name
    path.write_text("data: " + "x" * 17_000_000 if name == "huge.yaml" else hostile.ALL[name])
    started = time.monotonic()
    result = backend.run(["kubectl", "apply", "-f", str(path)])
    took = time.monotonic() - started
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and f"{path}: " in result.stderr, result.stderr
    assert MESSAGES[name] in result.stderr, result.stderr
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr
    assert took < 10, f"{took:.1f} s"
    namespace = tmp_path / "ns.yaml"
    namespace.write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: after-hostile}\n")
    assert backend.run(["kubectl", "apply", "-f", str(namespace)]).ok  # the backend still works
