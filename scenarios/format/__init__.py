"""The scenario file format (users -> harness), version 1: a typed model (pydantic) of every step.

A scenario is a YAML file (several, separated by ``---``, in one file are fine)::

    name: passthrough-policy            # lower-case words joined by "-"
    title: {en: "...", zh: "..."}       # or a plain string
    description: "..."
    requires: [gateway-log]             # optional backend capabilities
    steps:
      - narration: {en: "...", zh: "..."}
        title: "..."                    # optional
        <kind>: <parameters>            # exactly one of the kinds below

Kinds: ``apply``, ``delete``, ``patch``, ``run``, ``wait``, ``set``, ``background`` (setup: a
failure stops the scenario), ``request``, ``exec``, ``gateway_log``, ``log``, ``stop`` (checks,
retried until their timeout). ``SCHEMA`` is the format as JSON Schema, generated from the models.
Every error names the file, the step (1-based) and the key. User documentation:
``docs/scenarios.md``.
"""

from scenarios.format.check_steps import (
    ExecStep,
    GatewayLogStep,
    LineExpectation,
    LogStep,
    RecordExpectation,
    RequestStep,
    ResponseExpectation,
)
from scenarios.format.common import (
    DEFAULT_CURL_ARGS,
    DEFAULT_LOG_TIMEOUT,
    DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_WAIT_TIMEOUT,
    PodIP,
    PodStep,
    Step,
    Text,
)
from scenarios.format.errors import ScenarioError
from scenarios.format.loading import (
    CATALOG_DIR,
    STEP_KINDS,
    STEPS,
    Scenario,
    catalog,
    catalog_files,
    catalog_names,
    is_path,
    iter_steps,
    load,
    load_all,
    load_file,
    load_scenarios,
    parse,
)
from scenarios.format.output import OutputExpectation
from scenarios.format.schema import FORMAT_VERSION, SCHEMA
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
from scenarios.format.variables import resolved

__all__ = [
    "CATALOG_DIR",
    "DEFAULT_CURL_ARGS",
    "DEFAULT_LOG_TIMEOUT",
    "DEFAULT_REQUEST_TIMEOUT",
    "DEFAULT_WAIT_TIMEOUT",
    "FORMAT_VERSION",
    "SCHEMA",
    "STEPS",
    "STEP_KINDS",
    "ApplyStep",
    "BackgroundStep",
    "DeleteStep",
    "ExecStep",
    "GatewayLogStep",
    "LineExpectation",
    "LogStep",
    "OutputExpectation",
    "PatchStep",
    "PodIP",
    "PodStep",
    "RecordExpectation",
    "RequestStep",
    "ResponseExpectation",
    "RunStep",
    "Scenario",
    "ScenarioError",
    "SetStep",
    "Step",
    "StopStep",
    "Text",
    "WaitStep",
    "catalog",
    "catalog_files",
    "catalog_names",
    "is_path",
    "iter_steps",
    "load",
    "load_all",
    "load_file",
    "load_scenarios",
    "parse",
    "resolved",
]
