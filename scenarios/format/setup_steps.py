"""Steps that change the cluster or the scenario's state: apply, delete, patch, run, wait, set,
background and stop. A failing apply, delete, patch, run, wait, set or background stops the
scenario."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Discriminator, Field, Tag, model_validator

from scenarios.format.common import (
    DEFAULT_STOP_TIMEOUT,
    DEFAULT_WAIT_TIMEOUT,
    Argv,
    Model,
    Name,
    PodRef,
    PodStep,
    Regex,
    Scalar,
    Selector,
    Step,
    Timeout,
    VariableName,
)
from scenarios.format.errors import tag
from scenarios.format.output import OutputExpectation


class ApplyStep(Step):
    kind: ClassVar[str] = "apply"
    setup: ClassVar[bool] = True
    manifest: Annotated[str, Field(min_length=1)] | None = None
    #: the file as written in the scenario (for display); the loader reads it into ``manifest``
    file: Name | None = None
    namespace: Name | None = None

    @model_validator(mode="after")
    def _one_source(self) -> ApplyStep:
        if (self.manifest is None) == (self.file is None):
            raise ValueError("apply needs exactly one of manifest and file")
        return self


class DeleteStep(Step):
    kind: ClassVar[str] = "delete"
    setup: ClassVar[bool] = True
    object_kind: Name = Field(alias="kind")
    name: Name
    namespace: Name | None = None


class PatchStep(Step):
    kind: ClassVar[str] = "patch"
    setup: ClassVar[bool] = True
    object_kind: Name = Field(alias="kind")
    name: Name
    namespace: Name | None = None
    patch: dict[str, Any]
    patch_type: Literal["merge"] = Field(default="merge", alias="type")


class RunStep(Step):
    """``run: [kubectl, create, namespace, curl]`` or ``run: {argv: [...], exit_code: N}``."""

    kind: ClassVar[str] = "run"
    setup: ClassVar[bool] = True
    argv: Argv
    exit_code: int = 0

    @model_validator(mode="before")
    @classmethod
    def _argv_list(cls, data: Any) -> Any:
        return {"argv": data} if isinstance(data, list) else data

    def expected(self) -> Any:
        return {"exit_code": self.exit_code}


class WaitStep(Step):
    kind: ClassVar[str] = "wait"
    setup: ClassVar[bool] = True
    namespace: Name
    selector: Selector
    timeout: Timeout = DEFAULT_WAIT_TIMEOUT

    def expected(self) -> Any:
        return {"ready": True}


# set: values carried to later steps ------------------------------------------------------------------
class ExecCapture(Model):
    namespace: Name
    selector: Selector
    container: Name
    command: Argv
    #: the first group of this regex in stdout (the whole match without a group); default: stdout, stripped
    match: Regex | None = None


class ResolveRef(Model):
    """What ``name`` resolves to inside the pod (``getent hosts NAME``, the first address)."""

    name: Name
    namespace: Name
    selector: Selector
    container: Name


class FromPodIP(Model):
    pod_ip: PodRef


class FromExec(Model):
    exec: ExecCapture


class FromResolve(Model):
    resolve: ResolveRef


def _source_tag(value: Any) -> str:
    if isinstance(value, dict):
        return tag(next((key for key in ("pod_ip", "exec", "resolve") if key in value), "pod_ip"))
    return tag("value")


ValueSource = Annotated[
    Annotated[Scalar, Tag(tag("value"))]
    | Annotated[FromPodIP, Tag(tag("pod_ip"))]
    | Annotated[FromExec, Tag(tag("exec"))]
    | Annotated[FromResolve, Tag(tag("resolve"))],
    Discriminator(_source_tag),
]


class SetStep(Step):
    """``set: {client_ip: {pod_ip: ...}, httpbin_ip: {resolve: ...}, label: text}``; later steps use
    ``{{client_ip}}`` in any string."""

    kind: ClassVar[str] = "set"
    setup: ClassVar[bool] = True
    wrapper: ClassVar[str | None] = "values"
    values: Annotated[dict[VariableName, ValueSource], Field(min_length=1)]

    @model_validator(mode="before")
    @classmethod
    def _mapping(cls, data: Any) -> Any:
        return {"values": data}

    def expected(self) -> Any:
        return {"set": sorted(self.values)}


# background processes ---------------------------------------------------------------------------------
class BackgroundStep(PodStep):
    """Starts ``command`` in the pod and goes on while it runs (a connection kept open across
    steps); ``stop`` ends it and checks what it did. The container needs ``/bin/sh``."""

    kind: ClassVar[str] = "background"
    setup: ClassVar[bool] = True
    name: Annotated[str, Field(pattern=r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")]
    command: Argv

    def expected(self) -> Any:
        return {"running": True}


class StopStep(Step, OutputExpectation):
    """Ends the background process ``name`` (when it still runs) and checks it."""

    kind: ClassVar[str] = "stop"
    name: Name
    #: whether it was still running when this step came (e.g. the connection survived a policy change)
    running: bool | None = None
    #: its exit code (after being stopped, when it was still running)
    exit_code: int | None = None
    timeout: Timeout = DEFAULT_STOP_TIMEOUT

    def expected(self) -> Any:
        out: dict[str, Any] = {}
        if self.running is not None:
            out["running"] = self.running
        if self.exit_code is not None:
            out["exit_code"] = self.exit_code
        return out | self.output_expected()


__all__ = [
    "ApplyStep",
    "BackgroundStep",
    "DeleteStep",
    "ExecCapture",
    "FromExec",
    "FromPodIP",
    "FromResolve",
    "PatchStep",
    "ResolveRef",
    "RunStep",
    "SetStep",
    "StopStep",
    "ValueSource",
    "WaitStep",
]
