"""The whole scenario format as JSON Schema (``SCHEMA``), generated from the typed steps, for
editors (``# yaml-language-server: $schema=scenario.schema.json``) and other tools."""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from scenarios.format.common import TextObject
from scenarios.format.loading import STEP_TYPES, STEPS

FORMAT_VERSION = 1


def _build() -> dict[str, Any]:
    _, generated = models_json_schema(
        [(cls, "validation") for cls in (*STEP_TYPES, TextObject)], ref_template="#/$defs/{model}"
    )
    defs: dict[str, Any] = generated["$defs"]
    text = {"oneOf": [{"type": "string", "minLength": 1}, {"$ref": "#/$defs/TextObject"}]}
    argv = {"type": "array", "items": {"type": "string"}, "minItems": 1}
    kinds: dict[str, Any] = {kind: {"$ref": f"#/$defs/{cls.__name__}"} for kind, cls in STEPS.items()}
    kinds["run"] = {"oneOf": [argv, kinds["run"]]}  # run: [argv...] or {argv, exit_code}
    kinds["set"] = defs["SetStep"]["properties"]["values"]  # set: {name: source, ...}
    steps = [
        {
            "properties": {"narration": text, "title": text, kind: {"$ref": f"#/$defs/{kind}"}},
            "required": ["narration", kind],
            "additionalProperties": False,
        }
        for kind in STEPS
    ]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"egress-mesh.io/scenario/v{FORMAT_VERSION}",
        "title": "egress-mesh scenario",
        "type": "object",
        "properties": {
            "name": {"type": "string", "pattern": "^[a-z0-9]+(-[a-z0-9]+)*$"},
            "title": text,
            "description": {"type": "string"},
            "requires": {"type": "array", "items": {"type": "string", "minLength": 1}},
            "mode": {"enum": ["disabled", "passthrough", "gateway"]},
            "policy": {"enum": ["permissive", "policy"]},
            "steps": {"type": "array", "minItems": 1, "items": {"type": "object", "oneOf": steps}},
        },
        "required": ["name", "title", "steps"],
        "additionalProperties": False,
        "$defs": {**defs, **kinds},
    }


SCHEMA: dict[str, Any] = _build()
