"""Reading Kubernetes manifests: multi-document YAML (or JSON) into objects that remember where
they came from, so every message can say ``egress.yaml: document 2 (line 14)``.

Also ``merge_patch`` (RFC 7386, what ``kubectl patch --type=merge`` does) for callers that keep
objects outside a cluster.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


class LoadError(ValueError):
    """A file that cannot be read or parsed; the message names the file and the position."""


@dataclass(frozen=True)
class Document:
    obj: Any
    file: str
    index: int  # 1-based position of the document in its file
    line: int  # 1-based line where the document starts

    @property
    def source(self) -> str:
        return f"{self.file}: document {self.index} (line {self.line})"


def load_text(text: str, file: str = "<stdin>") -> list[Document]:
    """Every non-empty document of ``text``; ``kind: List`` objects are expanded into their items.

    Raises LoadError for YAML syntax errors and documents that are not mappings.
    """
    documents: list[Document] = []
    loader = yaml.SafeLoader(text)
    index = 0
    try:
        while loader.check_node():
            node = loader.get_node()
            index += 1
            first = node.value[0][0] if isinstance(node, yaml.MappingNode) and node.value else node
            line = first.start_mark.line + 1
            data = loader.construct_document(node)
            if data is None:
                continue
            if not isinstance(data, dict):
                raise LoadError(
                    f"{file}: document {index} (line {line}): expected a Kubernetes object (a mapping), "
                    f"got {type(data).__name__}"
                )
            if data.get("kind") == "List" and isinstance(data.get("items"), list):
                documents.extend(Document(item, file, index, line) for item in data["items"])
            else:
                documents.append(Document(data, file, index, line))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else f"document {index + 1}"
        raise LoadError(f"{file}: {where}: invalid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise LoadError(f"{file}: invalid YAML: {exc}") from None
    finally:
        loader.dispose()
    return documents


def load_file(path: str | Path) -> list[Document]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LoadError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LoadError(f"{path}: cannot read: {exc}") from None
    return load_text(text, str(path))


def manifest_files(directory: str | Path) -> list[Path]:
    """The manifest files of a directory (not recursive), sorted by name."""
    return sorted(p for p in Path(directory).iterdir() if p.is_file() and p.suffix in MANIFEST_SUFFIXES)


def load_paths(paths: Iterable[str | Path]) -> list[Document]:
    """Documents of files, directories (their manifest files) and ``-`` (standard input), in order."""
    documents: list[Document] = []
    for path in paths:
        if str(path) == "-":
            documents.extend(load_text(sys.stdin.read(), "<stdin>"))
        elif Path(path).is_dir():
            for file in manifest_files(path):
                documents.extend(load_file(file))
        else:
            documents.extend(load_file(path))
    return documents


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: the result of ``kubectl patch --type=merge -p PATCH`` on ``target``."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = merge_patch(result.get(name), value)
    return result


def dump_all(objects: Iterable[Any]) -> str:
    """Multi-document YAML, keys in their given order (what ``--dry-run`` prints)."""
    return yaml.safe_dump_all(list(objects), sort_keys=False, default_flow_style=False, explicit_start=True)
