"""The scenario file format (users -> harness), version 1.

A scenario is a YAML file::

    name: passthrough-policy            # lower-case words joined by "-"
    title: {en: "...", zh: "..."}       # or a plain string
    description: "..."
    requires: [gateway-log]             # optional backend capabilities
    steps:
      - narration: {en: "...", zh: "..."}
        title: "..."                    # optional
        <kind>: <parameters>            # exactly one of the kinds below

Kinds: ``apply``, ``delete``, ``patch``, ``run``, ``wait``, ``request``, ``exec``, ``gateway_log``.
``SCHEMA`` is the whole format as JSON Schema; ``load`` validates a file against it and turns it
into the dataclasses below. Every error names the file and the step (1-based). The full user
documentation is ``docs/scenarios.md``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import jsonschema
import yaml

from scenarios.names import GATEWAY_NAMESPACE, GATEWAY_SELECTOR, SCENARIO_FILE_PATTERN

FORMAT_VERSION = 1
CATALOG_DIR = Path(__file__).parent / "catalog"

DEFAULT_REQUEST_TIMEOUT = 15.0
DEFAULT_WAIT_TIMEOUT = 120.0
DEFAULT_GATEWAY_LOG_TIMEOUT = 10.0
DEFAULT_CURL_ARGS = ("-sI",)

_TEXT = {
    "oneOf": [
        {"type": "string", "minLength": 1},
        {
            "type": "object",
            "properties": {"en": {"type": "string", "minLength": 1}, "zh": {"type": "string"}},
            "required": ["en"],
            "additionalProperties": False,
        },
    ]
}
_NAME = {"type": "string", "minLength": 1}
_ARGV = {"type": "array", "items": {"type": "string"}, "minItems": 1}
_TIMEOUT = {"type": "number", "exclusiveMinimum": 0}
_POD = {
    "namespace": _NAME,
    "selector": {"type": "string", "pattern": r"^\S+$"},
    "container": _NAME,
}
_SCALAR = {"type": ["string", "integer", "number", "boolean", "null"]}
_POD_IP = {
    "type": "object",
    "properties": {
        "pod_ip": {
            "type": "object",
            "properties": {"namespace": _NAME, "selector": _POD["selector"]},
            "required": ["namespace", "selector"],
            "additionalProperties": False,
        }
    },
    "required": ["pod_ip"],
    "additionalProperties": False,
}
_RESPONSE = {
    "type": "object",
    "properties": {
        "status": {"type": "integer", "minimum": 100, "maximum": 599},
        "reason": {"type": "string"},
        "headers": {"type": "object", "additionalProperties": {"type": ["string", "integer"]}},
        "body": {"type": "string"},
        "body_contains": {"type": "string"},
    },
    "required": ["status"],
    "additionalProperties": False,
}

STEP_SCHEMAS: dict[str, dict[str, Any]] = {
    "apply": {
        "type": "object",
        "properties": {"manifest": {"type": "string", "minLength": 1}, "file": _NAME, "namespace": _NAME},
        "oneOf": [{"required": ["manifest"]}, {"required": ["file"]}],
        "additionalProperties": False,
    },
    "delete": {
        "type": "object",
        "properties": {"kind": _NAME, "name": _NAME, "namespace": _NAME},
        "required": ["kind", "name"],
        "additionalProperties": False,
    },
    "patch": {
        "type": "object",
        "properties": {
            "kind": _NAME,
            "name": _NAME,
            "namespace": _NAME,
            "patch": {"type": "object"},
            "type": {"enum": ["merge"]},
        },
        "required": ["kind", "name", "patch"],
        "additionalProperties": False,
    },
    "run": {
        "oneOf": [
            _ARGV,
            {
                "type": "object",
                "properties": {"argv": _ARGV, "exit_code": {"type": "integer"}},
                "required": ["argv"],
                "additionalProperties": False,
            },
        ]
    },
    "wait": {
        "type": "object",
        "properties": {"namespace": _NAME, "selector": _POD["selector"], "timeout": _TIMEOUT},
        "required": ["namespace", "selector"],
        "additionalProperties": False,
    },
    "request": {
        "type": "object",
        "properties": {
            **_POD,
            "urls": {"type": "array", "items": {"type": "string", "pattern": "^https?://"}, "minItems": 1},
            "curl_args": {"type": "array", "items": {"type": "string"}},
            "timeout": _TIMEOUT,
            "expect": {
                "oneOf": [
                    {"type": "array", "items": _RESPONSE, "minItems": 1},
                    {
                        "type": "object",
                        "properties": {
                            "exit_code": {"type": "integer", "minimum": 0},
                            "responses": {"type": "array", "items": _RESPONSE},
                        },
                        "minProperties": 1,
                        "additionalProperties": False,
                    },
                ]
            },
        },
        "required": ["namespace", "selector", "container", "urls", "expect"],
        "additionalProperties": False,
    },
    "exec": {
        "type": "object",
        "properties": {
            **_POD,
            "command": _ARGV,
            "exit_code": {"type": "integer", "minimum": 0},
            "stdout_contains": {
                "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]
            },
            "stdout_matches": {"type": "string", "format": "regex"},
            "timeout": _TIMEOUT,
        },
        "required": ["namespace", "selector", "container", "command"],
        "additionalProperties": False,
    },
    "gateway_log": {
        "type": "object",
        "properties": {
            "namespace": _NAME,
            "selector": _POD["selector"],
            "container": _NAME,
            "present": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"count": {"type": "integer", "minimum": 0}},
                    "additionalProperties": {"oneOf": [_SCALAR, _POD_IP]},
                    "minProperties": 1,
                },
            },
            "absent": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": {"oneOf": [_SCALAR, _POD_IP]},
                    "minProperties": 1,
                },
            },
            "timeout": _TIMEOUT,
        },
        "anyOf": [{"required": ["present"]}, {"required": ["absent"]}],
        "additionalProperties": False,
    },
}
STEP_KINDS = tuple(STEP_SCHEMAS)
_STEP_COMMON = {"narration": _TEXT, "title": _TEXT}

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "egress-mesh.io/scenario/v1",
    "title": "egress-mesh scenario",
    "type": "object",
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z0-9]+(-[a-z0-9]+)*$"},
        "title": _TEXT,
        "description": {"type": "string"},
        "requires": {"type": "array", "items": _NAME},
        "steps": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "oneOf": [
                    {
                        "properties": {**_STEP_COMMON, kind: {"$ref": f"#/$defs/{kind}"}},
                        "required": ["narration", kind],
                        "additionalProperties": False,
                    }
                    for kind in STEP_KINDS
                ],
            },
        },
    },
    "required": ["name", "title", "steps"],
    "additionalProperties": False,
    "$defs": STEP_SCHEMAS,
}
_TOP_SCHEMA = {**SCHEMA, "properties": {**SCHEMA["properties"], "steps": {"type": "array", "minItems": 1}}}


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message names the file and the step."""


@dataclass(frozen=True)
class Text:
    en: str
    zh: str | None = None

    def get(self, lang: str = "en") -> str:
        return self.zh if lang == "zh" and self.zh else self.en

    @classmethod
    def parse(cls, value: str | Mapping[str, str]) -> Text:
        if isinstance(value, str):
            return cls(value.strip())
        return cls(value["en"].strip(), (value.get("zh") or "").strip() or None)

    def to_dict(self) -> dict[str, str]:
        return {"en": self.en, "zh": self.zh} if self.zh else {"en": self.en}


@dataclass(frozen=True)
class PodIP:
    """Placeholder for the IP of the first pod matching ``selector`` (resolved when checked)."""

    namespace: str
    selector: str

    def __str__(self) -> str:
        return f"<ip of pod {self.selector} in {self.namespace}>"


@dataclass
class Step:
    kind: ClassVar[str] = ""
    index: int
    narration: Text
    title: Text | None

    @property
    def label(self) -> str:
        return (self.title or self.narration).en

    def expected(self) -> Any:
        """What the step expects, as JSON data (for reports)."""
        return {"exit_code": 0}


@dataclass
class ApplyStep(Step):
    kind: ClassVar[str] = "apply"
    manifest: str
    namespace: str | None = None
    #: the file as written in the scenario (for display), when the manifest came from a file
    file: str | None = None


@dataclass
class DeleteStep(Step):
    kind: ClassVar[str] = "delete"
    object_kind: str
    name: str
    namespace: str | None = None


@dataclass
class PatchStep(Step):
    kind: ClassVar[str] = "patch"
    object_kind: str
    name: str
    namespace: str | None
    patch: dict[str, Any]
    patch_type: str = "merge"


@dataclass
class RunStep(Step):
    kind: ClassVar[str] = "run"
    argv: list[str]
    exit_code: int = 0

    def expected(self) -> Any:
        return {"exit_code": self.exit_code}


@dataclass
class WaitStep(Step):
    kind: ClassVar[str] = "wait"
    namespace: str
    selector: str
    timeout: float = DEFAULT_WAIT_TIMEOUT

    def expected(self) -> Any:
        return {"ready": True}


@dataclass
class ResponseExpectation:
    status: int
    reason: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    body_contains: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status}
        for key in ("reason", "body", "body_contains"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.headers:
            out["headers"] = dict(self.headers)
        return out


@dataclass
class RequestStep(Step):
    kind: ClassVar[str] = "request"
    namespace: str
    selector: str
    container: str
    urls: list[str]
    curl_args: list[str] = field(default_factory=lambda: list(DEFAULT_CURL_ARGS))
    #: expected curl exit code; None means 0 when responses are expected
    exit_code: int | None = None
    #: expected responses in order; None means "not checked"
    responses: list[ResponseExpectation] | None = None
    timeout: float = DEFAULT_REQUEST_TIMEOUT

    @property
    def argv(self) -> list[str]:
        return ["curl", *self.curl_args, *self.urls]

    @property
    def expected_exit_code(self) -> int:
        return self.exit_code if self.exit_code is not None else 0

    def expected(self) -> Any:
        out: dict[str, Any] = {"exit_code": self.expected_exit_code}
        if self.responses is not None:
            out["responses"] = [r.to_dict() for r in self.responses]
        return out


@dataclass
class ExecStep(Step):
    kind: ClassVar[str] = "exec"
    namespace: str
    selector: str
    container: str
    command: list[str]
    exit_code: int = 0
    stdout_contains: list[str] = field(default_factory=list)
    stdout_matches: str | None = None
    #: retry until the expectation holds or this many seconds pass (0: one attempt)
    timeout: float = 0.0

    def expected(self) -> Any:
        out: dict[str, Any] = {"exit_code": self.exit_code}
        if self.stdout_contains:
            out["stdout_contains"] = list(self.stdout_contains)
        if self.stdout_matches:
            out["stdout_matches"] = self.stdout_matches
        return out


@dataclass
class RecordExpectation:
    fields: dict[str, Any]
    #: exact number of matching records; None means "at least one"
    count: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {k: str(v) if isinstance(v, PodIP) else v for k, v in self.fields.items()}
        if self.count is not None:
            out["count"] = self.count
        return out


@dataclass
class GatewayLogStep(Step):
    kind: ClassVar[str] = "gateway_log"
    present: list[RecordExpectation] = field(default_factory=list)
    absent: list[RecordExpectation] = field(default_factory=list)
    namespace: str = GATEWAY_NAMESPACE
    selector: str = GATEWAY_SELECTOR
    container: str | None = None
    timeout: float = DEFAULT_GATEWAY_LOG_TIMEOUT

    def expected(self) -> Any:
        return {
            "present": [r.to_dict() for r in self.present],
            "absent": [r.to_dict() for r in self.absent],
        }


@dataclass
class Scenario:
    name: str
    title: Text
    description: str
    steps: list[Step]
    requires: list[str] = field(default_factory=list)
    path: Path | None = None


# loading ----------------------------------------------------------------------------------------------


def _validate(
    instance: Any, schema: dict[str, Any], path: Path | str, where: str = "", at: tuple[str, ...] = ()
) -> None:
    """Raise ScenarioError "FILE: WHERE LOCATION: MESSAGE" for the most relevant schema error."""
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    error = jsonschema.exceptions.best_match(validator.iter_errors(instance))
    if error is not None:
        location = "/".join([*at, *(str(p) for p in error.absolute_path)])
        raise ScenarioError(f"{path}: {where}{location + ': ' if location else ''}{error.message}")


_ONE_OF = {
    "apply": (("manifest", "file"), "exactly one"),
    "gateway_log": (("present", "absent"), "at least one"),
}


def _field_value(value: Any) -> Any:
    if isinstance(value, Mapping) and "pod_ip" in value:
        return PodIP(value["pod_ip"]["namespace"], value["pod_ip"]["selector"])
    return value


def _records(items: list[dict[str, Any]], *, counted: bool) -> list[RecordExpectation]:
    out = []
    for item in items:
        item = dict(item)
        count = item.pop("count", None) if counted else None
        out.append(RecordExpectation({k: _field_value(v) for k, v in item.items()}, count))
    return out


def _responses(items: list[dict[str, Any]]) -> list[ResponseExpectation]:
    return [
        ResponseExpectation(
            status=item["status"],
            reason=item.get("reason"),
            headers={k.lower(): str(v) for k, v in (item.get("headers") or {}).items()},
            body=item.get("body"),
            body_contains=item.get("body_contains"),
        )
        for item in items
    ]


def _manifest_from_file(base: Path, name: str, where: str) -> str:
    file = (base / name).resolve()
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"{where}: apply: cannot read file {name!r} ({file}): {exc.strerror}") from None
    return text


def _check_yaml(manifest: str, where: str) -> None:
    try:
        docs = [d for d in yaml.safe_load_all(manifest) if d is not None]
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{where}: apply: manifest is not valid YAML: {exc}") from None
    for doc in docs:
        if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
            raise ScenarioError(f"{where}: apply: every manifest document needs apiVersion and kind")


def _step(raw: Mapping[str, Any], index: int, path: Path | str, base: Path) -> Step:
    where = f"{path}: step {index}"
    if not isinstance(raw, Mapping):
        raise ScenarioError(f"{where}: a step is a mapping with a narration and one kind, got {raw!r}")
    kinds = [k for k in STEP_KINDS if k in raw]
    if len(kinds) != 1:
        found = f"found {', '.join(kinds)}" if kinds else "found none"
        raise ScenarioError(f"{where}: a step has exactly one of {', '.join(STEP_KINDS)} ({found})")
    kind = kinds[0]
    unknown = sorted(set(raw) - {kind, "narration", "title"})
    if unknown:
        raise ScenarioError(f"{where} ({kind}): unknown key(s) {', '.join(unknown)}")
    if "narration" not in raw:
        raise ScenarioError(f"{where} ({kind}): narration is required (a string or {{en: ..., zh: ...}})")
    _validate(raw["narration"], _TEXT, path, f"step {index} ({kind}): ", ("narration",))
    if "title" in raw:
        _validate(raw["title"], _TEXT, path, f"step {index} ({kind}): ", ("title",))
    params = raw[kind]
    if kind in _ONE_OF and isinstance(params, Mapping):
        keys, rule = _ONE_OF[kind]
        if not (
            sum(k in params for k in keys) == 1 if rule == "exactly one" else any(k in params for k in keys)
        ):
            raise ScenarioError(f"{where} ({kind}): {kind} needs {rule} of {' and '.join(keys)}")
    _validate(params, STEP_SCHEMAS[kind], path, f"step {index} ({kind}): ", (kind,))
    common = dict(
        index=index,
        narration=Text.parse(raw["narration"]),
        title=Text.parse(raw["title"]) if "title" in raw else None,
    )
    where = f"{where} ({kind})"
    match kind:
        case "apply":
            if "file" in params:
                manifest = _manifest_from_file(base, params["file"], where)
            else:
                manifest = params["manifest"]
            _check_yaml(manifest, where)
            return ApplyStep(
                **common, manifest=manifest, namespace=params.get("namespace"), file=params.get("file")
            )
        case "delete":
            return DeleteStep(
                **common, object_kind=params["kind"], name=params["name"], namespace=params.get("namespace")
            )
        case "patch":
            return PatchStep(
                **common,
                object_kind=params["kind"],
                name=params["name"],
                namespace=params.get("namespace"),
                patch=copy.deepcopy(params["patch"]),
                patch_type=params.get("type", "merge"),
            )
        case "run":
            if isinstance(params, list):
                return RunStep(**common, argv=list(params))
            return RunStep(**common, argv=list(params["argv"]), exit_code=params.get("exit_code", 0))
        case "wait":
            return WaitStep(
                **common,
                namespace=params["namespace"],
                selector=params["selector"],
                timeout=float(params.get("timeout", DEFAULT_WAIT_TIMEOUT)),
            )
        case "request":
            expect = params["expect"]
            if isinstance(expect, list):
                expect = {"responses": expect}
            return RequestStep(
                **common,
                namespace=params["namespace"],
                selector=params["selector"],
                container=params["container"],
                urls=list(params["urls"]),
                curl_args=list(params.get("curl_args", DEFAULT_CURL_ARGS)),
                exit_code=expect.get("exit_code"),
                responses=_responses(expect["responses"]) if "responses" in expect else None,
                timeout=float(params.get("timeout", DEFAULT_REQUEST_TIMEOUT)),
            )
        case "exec":
            contains = params.get("stdout_contains", [])
            return ExecStep(
                **common,
                namespace=params["namespace"],
                selector=params["selector"],
                container=params["container"],
                command=list(params["command"]),
                exit_code=params.get("exit_code", 0),
                stdout_contains=[contains] if isinstance(contains, str) else list(contains),
                stdout_matches=params.get("stdout_matches"),
                timeout=float(params.get("timeout", 0.0)),
            )
        case _:
            return GatewayLogStep(
                **common,
                present=_records(params.get("present", []), counted=True),
                absent=_records(params.get("absent", []), counted=False),
                namespace=params.get("namespace", GATEWAY_NAMESPACE),
                selector=params.get("selector", GATEWAY_SELECTOR),
                container=params.get("container"),
                timeout=float(params.get("timeout", DEFAULT_GATEWAY_LOG_TIMEOUT)),
            )


def parse(
    data: Any, path: Path | str = "<scenario>", base: Path | None = None, file: Path | None = None
) -> Scenario:
    """Validate already-loaded YAML data; ``base`` is the folder ``apply: {file: ...}`` is relative to;
    ``path`` is how messages name the scenario, ``file`` the file it came from (default ``path``)."""
    base = base or Path.cwd()
    if not isinstance(data, Mapping):
        raise ScenarioError(f"{path}: a scenario is a mapping with name, title and steps")
    _validate(data, _TOP_SCHEMA, path)
    steps = [_step(raw, i, path, base) for i, raw in enumerate(data["steps"], start=1)]
    return Scenario(
        name=data["name"],
        title=Text.parse(data["title"]),
        description=data.get("description", "").strip(),
        steps=steps,
        requires=list(data.get("requires", [])),
        path=file or Path(path),
    )


def load_scenarios(path: Path | str) -> list[Scenario]:
    """Every scenario of a file: one per YAML document (``---`` separates them)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read scenario file: {exc.strerror}") from None
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path}: not valid YAML: {exc}") from None
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
        isinstance(ref, Path) or Path(text).suffix in (".yaml", ".yml") or Path(text).exists() or "/" in text
    )


def load(ref: str | Path) -> Scenario:
    """A catalog scenario by name (``passthrough-policy``) or a scenario file by path."""
    if is_path(ref):
        return load_file(ref)
    text = str(ref)
    for scenario in catalog():
        if scenario.name == text:
            return scenario
    raise ScenarioError(
        f"no scenario named {text!r} in the catalog (known: {', '.join(catalog_names())}); "
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
