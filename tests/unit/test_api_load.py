"""Reading manifests: documents with their positions, clear errors for broken files."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from mesh.api import load
from mesh.api.load import LoadError, dump_all, load_file, load_paths, load_text, merge_patch
from tests import hostile

TWO = """\
# a comment
apiVersion: v1
kind: Namespace
metadata:
  name: curl
---
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: curl
  namespace: curl
"""


def test_documents_know_their_file_index_and_line() -> None:
    docs = load_text(TWO, "sample.yaml")
    assert [(d.obj["kind"], d.index, d.line) for d in docs] == [("Namespace", 1, 2), ("ServiceAccount", 3, 8)]
    assert docs[1].source == "sample.yaml: document 3 (line 8)"


def test_a_list_is_expanded_into_its_items() -> None:
    text = "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Namespace, metadata: {name: a}}\n"
    docs = load_text(text, "list.yaml")
    assert [d.obj["metadata"]["name"] for d in docs] == ["a"]


def test_a_yaml_syntax_error_names_file_line_and_column() -> None:
    with pytest.raises(LoadError) as err:
        load_text("apiVersion: v1\nkind: [Namespace\n", "broken.yaml")
    assert str(err.value).startswith("broken.yaml: line 3, column 1: invalid YAML")


def test_a_document_that_is_not_a_mapping_is_refused() -> None:
    with pytest.raises(LoadError, match=r"^x.yaml: document 2 \(line 3\): expected a Kubernetes object"):
        load_text("kind: A\n---\n- just\n- a list\n", "x.yaml")


def test_missing_file_and_directory_reading(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="nope.yaml: no such file"):
        load_file(tmp_path / "nope.yaml")
    (tmp_path / "b.yaml").write_text(TWO)
    (tmp_path / "a.json").write_text('{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "z"}}')
    (tmp_path / "notes.txt").write_text("not a manifest")
    docs = load_paths([tmp_path])
    assert [Path(d.file).name for d in docs] == ["a.json", "b.yaml", "b.yaml"]


def test_merge_patch_follows_rfc_7386() -> None:
    target = {"spec": {"traffic": {"enableEgress": False, "keep": [1]}, "drop": 1}}
    patch = {"spec": {"traffic": {"enableEgress": True}, "drop": None, "new": {"a": 1}}}
    assert merge_patch(target, patch) == {
        "spec": {"traffic": {"enableEgress": True, "keep": [1]}, "new": {"a": 1}}
    }
    assert target["spec"]["drop"] == 1  # the input is not modified


def test_dump_all_round_trips() -> None:
    objects = [d.obj for d in load_text(TWO)]
    assert [d.obj for d in load_text(dump_all(objects))] == objects


# --- bounded parsing (issue 10) ---------------------------------------------------------------


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("deep.yaml", hostile.DEEP_5000, "deep.yaml: line 4, column 199: refused: nested more than 100"),
        ("deep-flow.yaml", hostile.DEEP_FLOW, "deep-flow.yaml: line 3, column "),
        ("bomb.yaml", hostile.ALIAS_BOMB, "bomb.yaml: line 10, column 16: refused: more than 2000000 values"),
        ("recursive.yaml", hostile.RECURSIVE, "alias *m refers to a collection that contains it"),
        ("huge-integer.yaml", hostile.HUGE_INTEGER, "huge-integer.yaml: document 1 (line 1): cannot read"),
        ("bad-timestamp.yaml", hostile.BAD_TIMESTAMP, "cannot read a value: month must be in 1..12"),
    ],
    ids=["deep", "deep-flow", "alias-bomb", "recursive-alias", "huge-integer", "bad-timestamp"],
)
def test_hostile_text_is_refused_fast_with_the_file_named(name: str, text: str, message: str) -> None:
    started = time.monotonic()
    with pytest.raises(LoadError) as err:
        load_text(text, name)
    assert time.monotonic() - started < 1.0
    assert type(err.value) is LoadError and message in str(err.value)
    assert str(err.value).startswith(name + ": ")


def test_depth_limit_is_exact() -> None:
    def nested(levels: int) -> str:  # the top mapping is level 1
        return "kind: A\nx:\n" + "- " * (levels - 1) + "v\n"

    assert load_text(nested(100), "ok.yaml")[0].obj["kind"] == "A"
    with pytest.raises(LoadError, match="nested more than 100 levels deep"):
        load_text(nested(101), "deep.yaml")


def test_aliases_within_the_bound_are_fine() -> None:
    text = "kind: A\nbase: &b {x: 1, y: 2}\ncopies: [*b, *b, *b]\n"
    assert load_text(text, "a.yaml")[0].obj["copies"][2] == {"x": 1, "y": 2}


def test_size_document_and_node_bounds_are_configurable() -> None:
    two = "kind: A\n---\nkind: B\n"
    with pytest.raises(LoadError, match=r"^f.yaml: line 2, column 1: refused: more than 1 documents"):
        load_text(two, "f.yaml", load.Limits(max_documents=1))
    with pytest.raises(LoadError, match=r"^f.yaml: 20 bytes, more than the limit of 10 bytes per file"):
        load_text(two, "f.yaml", load.Limits(max_bytes=10))
    with pytest.raises(LoadError, match="more than 3 values once aliases are expanded"):
        load_text("kind: A\nx: [1, 2]\n", "f.yaml", load.Limits(max_nodes=3))


def test_files_that_are_not_regular_or_too_large_or_not_utf8(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    outcome: list[BaseException | None] = []

    def read_fifo() -> None:
        try:
            load_file(fifo)
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - inspected below
            outcome.append(exc)

    reader = threading.Thread(target=read_fifo, daemon=True)
    reader.start()
    reader.join(2)
    if reader.is_alive():  # blocked waiting for a writer: release it, then fail
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("reading a FIFO blocked")
    assert isinstance(outcome[0], LoadError) and "fifo.yaml: not a regular file" in str(outcome[0])
    (tmp_path / "big.yaml").write_text("kind: A\n" + "#" * 100 + "\n")
    with pytest.raises(LoadError, match="big.yaml: 109 bytes, more than the limit of 50 bytes per file"):
        load_file(tmp_path / "big.yaml", load.Limits(max_bytes=50))
    (tmp_path / "latin1.yaml").write_bytes(b"kind: Caf\xe9\n")
    with pytest.raises(LoadError, match=r"latin1.yaml: not UTF-8 text \(byte 9"):
        load_file(tmp_path / "latin1.yaml")
    with pytest.raises(LoadError, match="not UTF-8 text"):
        load_text("kind: A\udcff\n", "surrogate.yaml")  # what a non-UTF-8 stdin decodes to


def test_the_default_limits_accept_a_large_valid_manifest() -> None:
    text = hostile.large_manifest(2000)
    assert len(load_text(text, "large.yaml")) == 2000
