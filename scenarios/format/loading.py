"""Reading scenario files: YAML into the typed steps, every error naming the file and the step."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, ValidationError

from mesh.api.load import MANIFEST_SUFFIXES, LoadError, load_documents, load_text
from scenarios.format.check_steps import ExecStep, GatewayLogStep, LogStep, RequestStep
from scenarios.format.common import Model, Name, Step, StepMeta, Text, TextInput, TextObject
from scenarios.format.errors import ScenarioError, describe
from scenarios.format.setup_steps import (
    ApplyStep,
    BackgroundStep,
    DeleteStep,
    PatchStep,
    RunStep,
    SetStep,
    StopStep,
    WaitStep,
)
from scenarios.format.variables import references
from scenarios.names import SCENARIO_FILE_PATTERN

CATALOG_DIR = Path(__file__).resolve().parent.parent / "catalog"
STEP_TYPES: tuple[type[Step], ...] = (
    ApplyStep,
    DeleteStep,
    PatchStep,
    RunStep,
    WaitStep,
    RequestStep,
    ExecStep,
    GatewayLogStep,
    LogStep,
    SetStep,
    BackgroundStep,
    StopStep,
)
STEPS: dict[str, type[Step]] = {cls.kind: cls for cls in STEP_TYPES}
STEP_KINDS = tuple(STEPS)
COMMON_KEYS = ("narration", "title")


class ScenarioHead(Model):
    """The scenario's own keys (its steps are validated one by one, so errors can name them)."""

    name: Annotated[str, StringConstraints(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")]
    title: TextInput
    description: str = ""
    requires: list[Name] = []
    #: where the scenario sits in the demo's summary matrix (the article's states)
    mode: Literal["disabled", "passthrough", "gateway"] | None = None
    policy: Literal["permissive", "policy"] | None = None
    steps: Annotated[list[Any], Field(min_length=1)]


@dataclass
class Scenario:
    name: str
    title: Text
    description: str
    steps: list[Step]
    requires: list[str] = field(default_factory=list)
    path: Path | None = None
    #: the article's state the scenario shows (the demo's matrix row): mode and policy
    mode: str | None = None
    policy: str | None = None


def _text(value: str | TextObject | Mapping[str, Any]) -> Text:
    if isinstance(value, TextObject):
        return Text.parse(value.model_dump(exclude_none=True))
    return Text.parse(value)


def _read_manifest(step: ApplyStep, base: Path, where: str) -> ApplyStep:
    manifest = step.manifest
    if step.file is not None:
        path = (base / step.file).resolve()
        try:
            manifest = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ScenarioError(
                f"{where}: apply: cannot read file {step.file!r} ({path}): {exc.strerror}"
            ) from None
    try:
        documents = load_text(manifest or "", step.file or "manifest")
    except LoadError as exc:
        raise ScenarioError(f"{where}: apply: {exc}") from None
    if any("kind" not in d.obj or "apiVersion" not in d.obj for d in documents):
        raise ScenarioError(f"{where}: apply: every manifest document needs apiVersion and kind")
    return step.model_copy(update={"manifest": manifest})


def _step(raw: Any, index: int, path: Path | str, base: Path) -> Step:
    where = f"{path}: step {index}"
    if not isinstance(raw, Mapping):
        raise ScenarioError(f"{where}: a step is a mapping with a narration and one kind, got {raw!r}")
    kinds = [k for k in STEP_KINDS if k in raw]
    if len(kinds) != 1:
        found = f"found {', '.join(kinds)}" if kinds else "found none"
        raise ScenarioError(f"{where}: a step has exactly one of {', '.join(STEP_KINDS)} ({found})")
    kind = kinds[0]
    where = f"{where} ({kind})"
    unknown = sorted(set(raw) - {kind, *COMMON_KEYS})
    if unknown:
        raise ScenarioError(f"{where}: unknown key(s) {', '.join(unknown)}")
    if "narration" not in raw:
        raise ScenarioError(f"{where}: narration is required (a string or {{en: ..., zh: ...}})")
    texts = {}
    for key in COMMON_KEYS:
        if key in raw:
            try:
                texts[key] = _text(_TextField.model_validate({"text": raw[key]}).text)
            except ValidationError as exc:
                raise ScenarioError(f"{where}: {describe(exc, (key,))}".replace(f"{key}/text", key)) from None
    cls = STEPS[kind]
    try:
        step = cls.model_validate(raw[kind])
    except ValidationError as exc:
        raise ScenarioError(f"{where}: {describe(exc, (kind,), cls.wrapper)}") from None
    if isinstance(step, ApplyStep):
        step = _read_manifest(step, base, where)
    return step.with_meta(StepMeta(index, texts["narration"], texts.get("title")))


class _TextField(Model):
    text: TextInput


def _check_names(steps: list[Step], path: Path | str) -> None:
    """``{{name}}`` only after a ``set`` of that name; ``stop`` only after its ``background``."""
    defined: set[str] = set()
    started: set[str] = set()
    for step in steps:
        where = f"{path}: step {step.index} ({step.kind})"
        for label, value in (("narration", step.narration), ("title", step.title), (step.kind, step)):
            for name, location in references(value):
                if name not in defined:
                    at = "/".join([label, *location]) if label == step.kind else label
                    known = ", ".join(sorted(defined)) or "none so far"
                    raise ScenarioError(
                        f"{where}: {at}: {{{{{name}}}}} is not set by an earlier set step (set: {known})"
                    )
        if isinstance(step, SetStep):
            defined |= set(step.values)
        if isinstance(step, BackgroundStep):
            if step.name in started:
                raise ScenarioError(
                    f"{where}: background: {step.name!r} is already started by an earlier step"
                )
            started.add(step.name)
        if isinstance(step, StopStep) and step.name not in started:
            known = ", ".join(sorted(started)) or "none"
            raise ScenarioError(f"{where}: stop: no earlier background step is named {step.name!r} ({known})")


def parse(
    data: Any, path: Path | str = "<scenario>", base: Path | None = None, file: Path | None = None
) -> Scenario:
    """Validate already-loaded YAML data; ``base`` is the folder ``apply: {file: ...}`` is relative to;
    ``path`` is how messages name the scenario, ``file`` the file it came from (default ``path``)."""
    base = base or Path.cwd()
    if not isinstance(data, Mapping):
        raise ScenarioError(f"{path}: a scenario is a mapping with name, title and steps")
    try:
        head = ScenarioHead.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(f"{path}: {describe(exc)}") from None
    steps = [_step(raw, i, path, base) for i, raw in enumerate(head.steps, start=1)]
    _check_names(steps, path)
    return Scenario(
        name=head.name,
        title=_text(head.title),
        description=head.description.strip(),
        steps=steps,
        requires=list(head.requires),
        path=file or Path(path),
        mode=head.mode,
        policy=head.policy,
    )


def load_scenarios(path: Path | str) -> list[Scenario]:
    """Every scenario of a file: one per YAML document (``---`` separates them)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read scenario file: {exc.strerror}") from None
    try:
        documents = [doc.obj for doc in load_documents(text, str(path))]
    except LoadError as exc:
        raise ScenarioError(str(exc)) from None
    if not documents:
        raise ScenarioError(f"{path}: no scenario in the file")
    if len(documents) == 1:
        return [parse(documents[0], path, path.parent)]
    return [
        parse(data, f"{path}: document {n}", path.parent, file=path) for n, data in enumerate(documents, 1)
    ]


def load_file(path: Path | str) -> Scenario:
    """The one scenario of a file (``load_scenarios`` for files holding several)."""
    scenarios = load_scenarios(path)
    if len(scenarios) > 1:
        raise ScenarioError(f"{path}: holds {len(scenarios)} scenarios, expected one")
    return scenarios[0]


def catalog_files() -> list[Path]:
    """The catalog in its order (the article's): files are named ``NN-name.scenario.yaml``."""
    return sorted(CATALOG_DIR.glob(SCENARIO_FILE_PATTERN))


def catalog() -> list[Scenario]:
    return [load_file(p) for p in catalog_files()]


def catalog_names() -> list[str]:
    return [s.name for s in catalog()]


def is_path(ref: str | Path) -> bool:
    """Whether ``ref`` names a file (rather than a catalog scenario)."""
    text = str(ref)
    return (
        isinstance(ref, Path) or Path(text).suffix in MANIFEST_SUFFIXES or Path(text).exists() or "/" in text
    )


def load(ref: str | Path) -> Scenario:
    """A catalog scenario by name (``passthrough-policy``) or a scenario file by path."""
    if is_path(ref):
        return load_file(ref)
    for scenario in catalog():
        if scenario.name == str(ref):
            return scenario
    raise ScenarioError(
        f"no scenario named {str(ref)!r} in the catalog (known: {', '.join(catalog_names())}); "
        "give a file path to load your own"
    )


def load_all(refs: list[str] | None) -> list[Scenario]:
    """``refs`` in order (every scenario of a file), or the whole catalog when empty."""
    if not refs:
        return catalog()
    return [s for ref in refs for s in (load_scenarios(ref) if is_path(ref) else [load(ref)])]


def iter_steps(scenarios: list[Scenario]) -> Iterator[tuple[Scenario, Step]]:
    for scenario in scenarios:
        for step in scenario.steps:
            yield scenario, step
