"""Bringing a backend up for scenarios, one pipeline for everyone (``python -m scenarios run``, the
demo, the pytest plugin): start the cluster (an unavailable backend fails fast), build the images
(content-tagged, unchanged ones are reused), load them, install the mesh with egress disabled.

Each phase is reported through ``phases(name)``, a context manager yielding a callback for finer
progress: the CLI prints lines, the demo shows a spinner per phase.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field

from scenarios.clusters.base import Cluster, MeshOptions, OpResult

Progress = Callable[[str], None]
Phases = Callable[[str], AbstractContextManager[Progress]]
#: the phases in their order
PHASES = ("starting", "building", "loading", "installing")


class SetupFailed(RuntimeError):
    """Loading the images or installing the mesh failed; ``ops`` are every operation so far (the
    failed one last), for display."""

    def __init__(self, what: str, ops: list[OpResult]) -> None:
        failed = ops[-1]
        output = "\n".join(part.rstrip() for part in (failed.stdout, failed.stderr) if part.strip())
        super().__init__(f"{what} failed: {failed.command} exited {failed.exit_code}: {output}")
        self.ops = ops


@dataclass
class Preparation:
    #: short name -> image ref (``egress-mesh/NAME:TAG``)
    refs: dict[str, str] = field(default_factory=dict)
    #: what loading the images and installing the mesh ran, in order
    ops: list[OpResult] = field(default_factory=list)


def printed_phases(say: Progress | None, backend: str) -> Phases:
    """Phases as progress lines (the CLI's and the plugin's)."""
    say = say or (lambda line: None)
    titles = {
        "starting": f"starting the {backend} backend",
        "building": "building images (unchanged images are reused)",
        "loading": "loading images",
        "installing": "installing the mesh",
    }

    @contextmanager
    def phase(name: str) -> Iterator[Progress]:
        say(titles[name])
        yield say

    return phase


def _checked(what: str, done: list[OpResult], ops: Iterable[OpResult] | None) -> None:
    for op in ops or ():
        done.append(op)
        if not op.ok:
            raise SetupFailed(what, done)


def prepare(
    cluster: Cluster,
    *,
    base_image: str | None = None,
    mesh: MeshOptions | None = None,
    progress: Progress | None = None,
    phases: Phases | None = None,
) -> Preparation:
    """Start, build, load, install; raises BackendUnavailable, ImageBuildError or SetupFailed."""
    from scenarios import images  # the Docker SDK is only needed once we really build

    phase = phases or printed_phases(progress, cluster.name)
    done = Preparation()
    with phase("starting"):
        cluster.up()
    with phase("building") as say:
        done.refs = images.build_all(base_image=base_image, progress=say)
    with phase("loading") as say:
        say(", ".join(done.refs.values()))
        _checked("loading images", done.ops, cluster.load_images(list(done.refs.values())))
    with phase("installing"):
        _checked("installing the mesh", done.ops, cluster.install_mesh(mesh or MeshOptions()))
    return done
