"""Reading Kubernetes manifests: multi-document YAML (or JSON) into objects that remember where
they came from, so every message can say ``egress.yaml: document 2 (line 14)``.

Parsing is bounded (``Limits``): file size, number of documents, nesting depth and the number of
nodes after alias expansion are checked on the parser's event stream before anything is built,
so a hostile file (5,000 levels deep, a "billion laughs" alias bomb, a recursive alias) is
refused in milliseconds with a LoadError naming the file, never a RecursionError or MemoryError.

Also ``merge_patch`` (RFC 7386, what ``kubectl patch --type=merge`` does) for callers that keep
objects outside a cluster.
"""

from __future__ import annotations

import copy
import os
import stat
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
#: libyaml's parser when PyYAML was built with it (ten times faster), else the pure Python one
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class LoadError(ValueError):
    """A file that cannot be read or parsed; the message names the file and the position."""


@dataclass(frozen=True)
class Limits:
    """Bounds on one manifest file (text or file)."""

    max_bytes: int = 16 * 1024 * 1024
    max_documents: int = 50_000
    max_depth: int = 100  # nested mappings/sequences; Kubernetes objects need about 15
    max_nodes: int = 2_000_000  # scalars and collections, an alias counting as what it repeats


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class Document:
    obj: Any
    file: str
    index: int  # 1-based position of the document in its file
    line: int  # 1-based line where the document starts

    @property
    def source(self) -> str:
        return f"{self.file}: document {self.index} (line {self.line})"


def check_limits(text: str, file: str = "<stdin>", limits: Limits = DEFAULT_LIMITS) -> None:
    """Raise LoadError if ``text`` breaks a bound; YAML syntax errors are left to the loader."""
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise LoadError(f"{file}: not UTF-8 text (character {exc.start}: {exc.reason})") from None
    if size > limits.max_bytes:
        raise _too_large(file, size, limits)
    documents = depth = nodes = 0
    open_collections: list[tuple[str | None, int]] = []  # anchor and node count at its start
    expanded: dict[str, int] = {}  # anchor -> nodes it stands for
    try:
        for event in yaml.parse(text, Loader=_LOADER):
            if isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                expanded.clear()  # anchors do not cross documents
                if documents > limits.max_documents:
                    raise _bound(file, event, f"more than {limits.max_documents} documents in one file")
            elif isinstance(event, yaml.AliasEvent):
                if any(anchor == event.anchor for anchor, _ in open_collections):
                    raise _bound(
                        file, event, f"alias *{event.anchor} refers to a collection that contains it"
                    )
                nodes += expanded.get(event.anchor, 1)
            elif isinstance(event, yaml.ScalarEvent):
                nodes += 1
                if event.anchor:
                    expanded[event.anchor] = 1
            elif isinstance(event, yaml.CollectionStartEvent):
                nodes += 1
                depth += 1
                if depth > limits.max_depth:
                    raise _bound(file, event, f"nested more than {limits.max_depth} levels deep")
                open_collections.append((event.anchor, nodes - 1))
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
                anchor, start = open_collections.pop()
                if anchor:
                    expanded[anchor] = nodes - start
            if nodes > limits.max_nodes:
                raise _bound(file, event, f"more than {limits.max_nodes} values once aliases are expanded")
    except yaml.YAMLError:
        return  # the loader reports it with its position


def _too_large(file: str, size: int, limits: Limits) -> LoadError:
    return LoadError(f"{file}: {size} bytes, more than the limit of {limits.max_bytes} bytes per file")


def _bound(file: str, event: yaml.Event, what: str) -> LoadError:
    mark = event.start_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    return LoadError(f"{file}: {where}refused: {what}")


def load_documents(text: str, file: str = "<stdin>", limits: Limits = DEFAULT_LIMITS) -> list[Document]:
    """Every non-empty YAML document of ``text``, whatever it holds (the one multi-document
    reader: manifests through ``load_text``, scenario files, ...).

    Raises LoadError for YAML syntax errors, values YAML cannot represent in Python (an integer
    of 5,000 digits, the 13th month) and broken ``limits``.
    """
    check_limits(text, file, limits)
    documents: list[Document] = []
    loader = _LOADER(text)
    index = 0
    try:
        while loader.check_node():
            node = loader.get_node()
            index += 1
            first = node.value[0][0] if isinstance(node, yaml.MappingNode) and node.value else node
            line = first.start_mark.line + 1
            try:
                data = loader.construct_document(node)
            except (ValueError, TypeError, OverflowError) as exc:
                reason = str(exc).split(";")[
                    0
                ]  # Python's advice (sys.set_int_max_str_digits) is not for users
                raise LoadError(
                    f"{file}: document {index} (line {line}): cannot read a value: {reason}"
                ) from None
            if data is not None:
                documents.append(Document(data, file, index, line))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else f"document {index + 1}"
        raise LoadError(f"{file}: {where}: invalid YAML: {exc.problem or exc.context}") from None
    except yaml.reader.ReaderError as exc:
        raise LoadError(f"{file}: character {exc.position}: invalid YAML: {exc.reason}") from None
    except yaml.YAMLError as exc:
        raise LoadError(f"{file}: invalid YAML: {' '.join(str(exc).split())}") from None
    finally:
        loader.dispose()
    return documents


def load_text(text: str, file: str = "<stdin>", limits: Limits = DEFAULT_LIMITS) -> list[Document]:
    """Every non-empty document of ``text``; ``kind: List`` objects are expanded into their items.

    Raises LoadError as ``load_documents`` does, and for documents that are not mappings.
    """
    documents: list[Document] = []
    for doc in load_documents(text, file, limits):
        data = doc.obj
        if not isinstance(data, dict):
            raise LoadError(
                f"{file}: document {doc.index} (line {doc.line}): expected a Kubernetes object (a mapping), "
                f"got {type(data).__name__}"
            )
        if data.get("kind") == "List" and isinstance(data.get("items"), list):
            documents.extend(Document(item, file, doc.index, doc.line) for item in data["items"])
        else:
            documents.append(doc)
    return documents


def read_text(path: str | Path, limits: Limits = DEFAULT_LIMITS) -> str:
    """A manifest file's text: a regular file of at most ``limits.max_bytes``, UTF-8."""
    path = Path(path)
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below anyway
        with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as stream:
            st = os.fstat(stream.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise LoadError(f"{path}: not a regular file")
            if st.st_size > limits.max_bytes:
                raise _too_large(str(path), st.st_size, limits)
            data = stream.read(limits.max_bytes + 1)  # it may have grown since
    except FileNotFoundError:
        raise LoadError(f"{path}: no such file") from None
    except OSError as exc:
        raise LoadError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(data) > limits.max_bytes:
        raise _too_large(str(path), len(data), limits)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LoadError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None


def load_file(path: str | Path, limits: Limits = DEFAULT_LIMITS) -> list[Document]:
    return load_text(read_text(path, limits), str(path), limits)


def manifest_files(directory: str | Path) -> list[Path]:
    """The manifest files of a directory (not recursive), sorted by name."""
    return sorted(p for p in Path(directory).iterdir() if p.is_file() and p.suffix in MANIFEST_SUFFIXES)


def load_paths(paths: Iterable[str | Path]) -> list[Document]:
    """Documents of files, directories (their manifest files) and ``-`` (standard input), in order."""
    documents: list[Document] = []
    for path in paths:
        if str(path) == "-":
            documents.extend(load_text(sys.stdin.read(DEFAULT_LIMITS.max_bytes + 1), "<stdin>"))
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
