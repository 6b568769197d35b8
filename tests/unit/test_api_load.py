"""Reading manifests: documents with their positions, clear errors for broken files."""

from __future__ import annotations

from pathlib import Path

import pytest

from mesh.api.load import LoadError, dump_all, load_file, load_paths, load_text, merge_patch

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
