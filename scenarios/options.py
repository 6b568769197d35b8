"""The harness's options, declared once: ``python -m scenarios run`` (argparse) and the pytest plugin
(``pytest --backend kind --report r.json``) both add them from here.

The backend part (``--backend``, ``--k8s-version``, ``--keep``, ``--external``, ...) is the table in
``scenarios.clusters.options``; this module adds what a run of scenarios takes on top of it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from scenarios.clusters.options import DEFAULT_BACKEND, add_to_parser, backend_name, backend_options

__all__ = [
    "DEFAULT_BACKEND",
    "REQUIRE_ALL_ENV",
    "add_run_options",
    "add_backend_options",
    "backend_name",
    "backend_options",
    "require_all_default",
]

#: CI sets it to 1: a test whose environment (root, Docker, a backend) is missing fails, never skips
REQUIRE_ALL_ENV = "EGRESS_MESH_REQUIRE_ALL"

REPORT: tuple[str, dict[str, Any]] = (
    "--report",
    {"metavar": "FILE.json", "default": None, "help": "write the JSON report of every step"},
)


def add_backend_options(add: Callable[..., Any], backend_default: str | None = DEFAULT_BACKEND) -> None:
    """The backend options only (``doctor``, the demo)."""
    add_to_parser(add, backend_default=backend_default)


def add_run_options(add: Callable[..., Any], backend_default: str | None = DEFAULT_BACKEND) -> None:
    """What running scenarios takes: the backend options and ``--report``. ``add`` is
    ``parser.add_argument`` or a pytest group's ``addoption``; pytest passes ``backend_default=None``
    so it can tell a ``--backend`` the user asked for (it must come up) from the default."""
    add_to_parser(add, backend_default=backend_default)
    flag, kwargs = REPORT
    add(flag, dest="report", **kwargs)


def require_all_default() -> bool:
    return os.environ.get(REQUIRE_ALL_ENV) == "1"
