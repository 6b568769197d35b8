"""Steps that observe and check: request (the article's curl), exec, gateway_log and log. They are
retried until their expectation holds or their timeout runs out; a failure does not stop the
scenario."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import Discriminator, Field, Tag, WithJsonSchema, field_validator, model_validator

from scenarios.format.common import (
    DEFAULT_CURL_ARGS,
    DEFAULT_LOG_TIMEOUT,
    DEFAULT_REQUEST_TIMEOUT,
    ExitCode,
    FieldValue,
    Model,
    Name,
    PodIP,
    PodStep,
    Regex,
    Selector,
    Step,
    Timeout,
    placeholders,
)
from scenarios.format.errors import tag
from scenarios.format.output import OutputExpectation
from scenarios.names import GATEWAY_NAMESPACE, GATEWAY_SELECTOR

Url = Annotated[str, Field(pattern=r"^https?://")]


class ResponseExpectation(Model):
    status: Annotated[int, Field(ge=100, le=599)]
    reason: str | None = None
    #: name (any case) -> exact value; names are kept lower-case
    headers: dict[str, str | int] = {}
    body: str | None = None
    body_contains: str | None = None

    @field_validator("headers")
    @classmethod
    def _lower(cls, headers: dict[str, str | int]) -> dict[str, str]:
        return {name.lower(): str(value) for name, value in headers.items()}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status}
        for key in ("reason", "body", "body_contains"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.headers:
            out["headers"] = dict(self.headers)
        return out


class RequestExpectation(Model):
    exit_code: ExitCode | None = None
    responses: list[ResponseExpectation] | None = None

    @model_validator(mode="after")
    def _something(self) -> RequestExpectation:
        if self.exit_code is None and self.responses is None:
            raise ValueError("expect needs exit_code or responses")
        return self


Expect = Annotated[
    Annotated[Annotated[list[ResponseExpectation], Field(min_length=1)], Tag(tag("responses"))]
    | Annotated[RequestExpectation, Tag(tag("object"))],
    Discriminator(lambda value: tag("responses" if isinstance(value, list) else "object")),
]


class RequestStep(PodStep):
    """``curl CURL_ARGS URL...`` in the pod (the article's ``curl -sI``), responses parsed."""

    kind: ClassVar[str] = "request"
    urls: Annotated[list[Url], Field(min_length=1)]
    curl_args: list[str] = list(DEFAULT_CURL_ARGS)
    timeout: Timeout = DEFAULT_REQUEST_TIMEOUT
    expect: Expect

    @property
    def exit_code(self) -> int | None:
        """Expected curl exit code; None means 0 when responses are expected."""
        return None if isinstance(self.expect, list) else self.expect.exit_code

    @property
    def responses(self) -> list[ResponseExpectation] | None:
        """Expected responses in order; None means "not checked"."""
        return self.expect if isinstance(self.expect, list) else self.expect.responses

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


class ExecStep(PodStep, OutputExpectation):
    kind: ClassVar[str] = "exec"
    command: Annotated[list[str], Field(min_length=1)]
    exit_code: ExitCode = 0
    #: retry until the expectation holds or this many seconds pass (default: one attempt)
    timeout: Timeout = 0.0

    def expected(self) -> Any:
        return {"exit_code": self.exit_code} | self.output_expected()


# log records -------------------------------------------------------------------------------------------
_SCALAR_SCHEMA = {"type": ["string", "integer", "number", "boolean", "null"]}
_POD_IP_SCHEMA = {
    "type": "object",
    "properties": {
        "pod_ip": {
            "type": "object",
            "properties": {"namespace": {"type": "string", "minLength": 1}, "selector": {"type": "string"}},
            "required": ["namespace", "selector"],
            "additionalProperties": False,
        }
    },
    "required": ["pod_ip"],
    "additionalProperties": False,
}
_FIELDS_SCHEMA = {"oneOf": [_SCALAR_SCHEMA, _POD_IP_SCHEMA]}


class RecordExpectation(Model):
    """Field values some record must have (``present``) or no record may have (``absent``); a
    ``{pod_ip: {namespace, selector}}`` value stands for that pod's IP."""

    fields: Annotated[dict[str, FieldValue], Field(min_length=1)]
    #: exact number of matching records; None means "at least one"
    count: Annotated[int, Field(ge=0)] | None = None

    @field_validator("fields")
    @classmethod
    def _placeholders(cls, fields: dict[str, Any]) -> dict[str, Any]:
        return placeholders(fields)

    def to_dict(self) -> dict[str, Any]:
        out = {k: str(v) if isinstance(v, PodIP) else v for k, v in self.fields.items()}
        if self.count is not None:
            out["count"] = self.count
        return out


def _counted(data: Any) -> Any:
    if isinstance(data, dict):
        fields = {k: v for k, v in data.items() if k != "count"}
        return {"fields": fields, **({"count": data["count"]} if "count" in data else {})}
    return data


PresentRecord = Annotated[
    RecordExpectation,
    WithJsonSchema(
        {
            "type": "object",
            "properties": {"count": {"type": "integer", "minimum": 0}},
            "additionalProperties": _FIELDS_SCHEMA,
            "minProperties": 1,
        }
    ),
]
AbsentRecord = Annotated[
    RecordExpectation,
    WithJsonSchema({"type": "object", "additionalProperties": _FIELDS_SCHEMA, "minProperties": 1}),
]


class GatewayLogStep(Step):
    """The egress gateway's request records (the access-log contract) since the scenario started,
    or since the last attempt of the previous request step."""

    kind: ClassVar[str] = "gateway_log"
    present: list[PresentRecord] = []
    absent: list[AbsentRecord] = []
    namespace: Name = GATEWAY_NAMESPACE
    selector: Selector = GATEWAY_SELECTOR
    container: Name | None = None
    timeout: Timeout = DEFAULT_LOG_TIMEOUT

    @field_validator("present", mode="before")
    @classmethod
    def _present(cls, items: Any) -> Any:
        return [_counted(item) for item in items] if isinstance(items, list) else items

    @field_validator("absent", mode="before")
    @classmethod
    def _absent(cls, items: Any) -> Any:
        return (
            [{"fields": item} if isinstance(item, dict) else item for item in items]
            if isinstance(items, list)
            else items
        )

    @model_validator(mode="after")
    def _something(self) -> GatewayLogStep:
        if not {"present", "absent"} & self.model_fields_set:
            raise ValueError("gateway_log needs at least one of present and absent")
        return self

    def expected(self) -> Any:
        return {"present": [r.to_dict() for r in self.present], "absent": [r.to_dict() for r in self.absent]}


class LineExpectation(Model):
    """One of: ``text`` (a line contains it), ``matches`` (a Python regex matching a line) or
    ``record`` (a JSON-object line with these field values); ``count`` (present only) is the exact
    number of such lines."""

    text: Annotated[str, Field(min_length=1)] | None = None
    matches: Regex | None = None
    record: Annotated[dict[str, FieldValue], Field(min_length=1)] | None = None
    count: Annotated[int, Field(ge=0)] | None = None

    @field_validator("record")
    @classmethod
    def _placeholders(cls, record: dict[str, Any] | None) -> dict[str, Any] | None:
        return placeholders(record) if record is not None else None

    @model_validator(mode="after")
    def _one(self) -> LineExpectation:
        if sum(v is not None for v in (self.text, self.matches, self.record)) != 1:
            raise ValueError("a log line expectation has exactly one of text, matches and record")
        return self

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.record is not None:
            out["record"] = {k: str(v) if isinstance(v, PodIP) else v for k, v in self.record.items()}
        else:
            out["text" if self.text is not None else "matches"] = self.text or self.matches
        if self.count is not None:
            out["count"] = self.count
        return out


class LogStep(Step):
    """Lines of any pod's (or one container's) log written since the scenario started: text lines
    or JSON records present or absent."""

    kind: ClassVar[str] = "log"
    namespace: Name
    selector: Selector
    container: Name | None = None
    present: list[LineExpectation] = []
    absent: list[LineExpectation] = []
    timeout: Timeout = DEFAULT_LOG_TIMEOUT

    @model_validator(mode="after")
    def _something(self) -> LogStep:
        if not {"present", "absent"} & self.model_fields_set:
            raise ValueError("log needs at least one of present and absent")
        if any(item.count is not None for item in self.absent):
            raise ValueError("log: absent lines take no count")
        return self

    def expected(self) -> Any:
        return {"present": [r.to_dict() for r in self.present], "absent": [r.to_dict() for r in self.absent]}
