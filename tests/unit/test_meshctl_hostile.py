"""``meshctl validate`` on hostile files (issue 10, section 2): exit 1 within seconds with one line
naming the file, never a traceback, a RecursionError or a MemoryError. The real command line."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests import hostile
from tests.unit.test_meshctl import meshctl

MESSAGES = {
    "deep.yaml": "line 4, column 199: refused: nested more than 100 levels deep",
    "deep-flow.yaml": "line 3, column ",
    "bomb.yaml": "line 10, column 16: refused: more than 2000000 values once aliases are expanded",
    "recursive.yaml": "refused: alias *m refers to a collection that contains it",
    "huge-integer.yaml": "document 1 (line 1): cannot read a value: Exceeds the limit (4300 digits)",
    "bad-timestamp.yaml": "document 1 (line 1): cannot read a value: month must be in 1..12",
    "huge.yaml": "17000009 bytes, more than the limit of 16777216 bytes per file",
}


def write(directory: Path, name: str) -> Path:
    path = directory / name
    if name == "huge.yaml":
        path.write_text("data: " + "x" * 17_000_000 + "\n\n\n")
    else:
        path.write_text(hostile.ALL[name])
    return path


@pytest.mark.parametrize("name", MESSAGES)
def test_a_hostile_file_is_one_clear_error_naming_it(tmp_path: Path, name: str) -> None:
    path = write(tmp_path, name)
    started = time.monotonic()
    done = meshctl("validate", "-f", str(path))
    took = time.monotonic() - started
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith(f"error: {path}: "), done.stderr
    assert MESSAGES[name] in done.stderr
    assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr
    assert took < 10, f"{took:.1f} s"


def test_a_hostile_file_in_a_directory_is_named(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: curl}\n")
    path = write(tmp_path, "bomb.yaml")
    done = meshctl("validate", "-f", str(tmp_path))
    assert done.returncode == 1
    assert done.stderr.startswith(f"error: {path}: ") and "Traceback" not in done.stderr
