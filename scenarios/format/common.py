"""What every step kind shares: the pydantic base, field types, texts, pod references.

A step's parameters are the fields of its model (validated from what the user wrote under the
kind's key); its position, narration and title are attached by the loader and read through
``index``, ``narration`` and ``title``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    StringConstraints,
    Tag,
)

from scenarios.format.errors import tag

DEFAULT_REQUEST_TIMEOUT = 15.0
DEFAULT_WAIT_TIMEOUT = 120.0
DEFAULT_LOG_TIMEOUT = 10.0
DEFAULT_STOP_TIMEOUT = 30.0
DEFAULT_CURL_ARGS = ("-sI",)

#: a ``{{name}}`` reference to a value an earlier ``set`` step stored
VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
VARIABLE_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"{value!r} is not a valid regular expression: {exc}") from None
    return value


Name = Annotated[str, StringConstraints(min_length=1)]
Selector = Annotated[str, StringConstraints(pattern=r"^\S+$")]
Argv = Annotated[list[str], Field(min_length=1)]
Timeout = Annotated[float, Field(gt=0)]
ExitCode = Annotated[int, Field(ge=0)]
Regex = Annotated[str, AfterValidator(_regex)]
VariableName = Annotated[str, StringConstraints(pattern=VARIABLE_NAME)]
Scalar = str | int | float | bool | None


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


@dataclass(frozen=True)
class Text:
    """A narration or title: English, and optionally the article's Chinese."""

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


class TextObject(Model):
    en: Name
    zh: str | None = None


#: what a text field accepts: a string or ``{en: ..., zh: ...}``
TextInput = Annotated[str, StringConstraints(min_length=1)] | TextObject


@dataclass(frozen=True)
class PodIP:
    """Placeholder for the IP of the first pod matching ``selector`` (resolved when checked)."""

    namespace: str
    selector: str

    def __str__(self) -> str:
        return f"<ip of pod {self.selector} in {self.namespace}>"


class PodRef(Model):
    namespace: Name
    selector: Selector


class PodIPValue(Model):
    """``{pod_ip: {namespace: curl, selector: app=curl}}`` in a record expectation."""

    pod_ip: PodRef

    def placeholder(self) -> PodIP:
        return PodIP(self.pod_ip.namespace, self.pod_ip.selector)


FieldValue = Annotated[
    Annotated[Scalar, Tag(tag("value"))] | Annotated[PodIPValue, Tag(tag("pod_ip"))],
    Discriminator(lambda value: tag("pod_ip" if isinstance(value, dict) else "value")),
]


def placeholders(fields: dict[str, Any]) -> dict[str, Any]:
    """Record fields with each ``{pod_ip: ...}`` turned into the PodIP it stands for."""
    return {k: v.placeholder() if isinstance(v, PodIPValue) else v for k, v in fields.items()}


@dataclass(frozen=True)
class StepMeta:
    index: int
    narration: Text
    title: Text | None = None


class Step(Model):
    """The base of every kind; ``kind`` is the key a scenario file writes it under."""

    kind: ClassVar[str] = ""
    #: a failure of this kind stops the scenario (everything after would fail for the same reason)
    setup: ClassVar[bool] = False
    #: the field a kind's value is put into before validation (``set: {...}`` -> ``values``)
    wrapper: ClassVar[str | None] = None
    _meta: StepMeta = PrivateAttr(default=StepMeta(0, Text("")))

    @property
    def index(self) -> int:
        return self._meta.index

    @property
    def narration(self) -> Text:
        return self._meta.narration

    @property
    def title(self) -> Text | None:
        return self._meta.title

    @property
    def label(self) -> str:
        return (self.title or self.narration).en

    def with_meta(self, meta: StepMeta) -> Self:
        self._meta = meta
        return self

    def expected(self) -> Any:
        """What the step expects, as JSON data (for reports)."""
        return {"exit_code": 0}


class PodStep(Step):
    """A step that runs in one container of the first pod matching ``selector``."""

    namespace: Name
    selector: Selector
    container: Name
