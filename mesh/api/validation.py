"""Validation of mesh objects: the CRD schema first, then the rules a schema cannot express.

The schema is the CRD's own ``openAPIV3Schema`` (``mesh.api.crds``), translated to JSON Schema
the way the API server applies it (unknown fields are errors, as with ``kubectl``'s default
strict field validation, except below ``x-kubernetes-preserve-unknown-fields``).

Semantic rules: host syntax (``*.domain`` wildcards, no URLs, no ports, no IP literals), CIDRs
that parse, object names Kubernetes accepts, HTTPRouteGroup regexes that compile and methods that
are HTTP methods or ``*``; across a set of objects: no object twice, at most
one global EgressGateway (the oldest wins: ``creationTimestamp``, then input order), gateway
Services that exist (when the caller knows the Services).

Every problem names the object (``Egress curl/httpbin-80``), the field (``spec.ports[0].number``)
and the rule broken. ``validate_objects`` returns the valid objects (Egress hosts normalised in
a copy: lower case, no trailing dot, IDNA; other objects as given) together with the problems,
so callers keep running on what is good.

The rules of one object beyond the schema are ``mesh.api.semantic_rules``; ``Problem`` and how
messages name objects and fields are ``mesh.api.problems``.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterable
from typing import Any

import jsonschema

from mesh.api import crds
from mesh.api.hosts import normalise_host as normalize_host  # the one definition; this name for callers
from mesh.api.load import Document
from mesh.api.problems import InvalidObject, Problem, ValidationResult, describe, field_path, key
from mesh.api.semantic_rules import gateway_backends, metadata_problems, semantic_problems

CIDR_PATTERN = r"^((\d{1,3}\.){3}\d{1,3}/\d{1,2}|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*/\d{1,3})$"
_PATTERN_NAMES = {CIDR_PATTERN: "a CIDR such as 10.0.0.0/8 or 2001:db8::/32"}


def is_mesh_kind(obj: dict[str, Any]) -> bool:
    api_version = str(obj.get("apiVersion", ""))
    return any(
        kind == obj.get("kind")
        and ("openservicemesh.io/" in api_version or api_version.startswith(api.rpartition("/")[0] + "/"))
        for api, kind in crds.KINDS
    )


# --- the CRD schema as JSON Schema ------------------------------------------------------------


def to_jsonschema(node: dict[str, Any]) -> dict[str, Any]:
    """Translate an OpenAPI v3 structural schema (with Kubernetes extensions) to JSON Schema draft 4."""
    out: dict[str, Any] = {}
    for name, value in node.items():
        if name == "properties":
            out[name] = {prop: to_jsonschema(sub) for prop, sub in value.items()}
        elif name in ("items", "not") or (name == "additionalProperties" and isinstance(value, dict)):
            out[name] = to_jsonschema(value)
        elif name in ("allOf", "anyOf", "oneOf"):
            out[name] = [to_jsonschema(sub) for sub in value]
        elif name.startswith("x-kubernetes-") or name in ("description", "default", "example", "format"):
            continue
        elif name == "nullable":
            continue
        else:
            out[name] = value
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    preserve = node.get("x-kubernetes-preserve-unknown-fields")
    if (
        out.get("type") == "object"
        and "properties" in node
        and "additionalProperties" not in node
        and not preserve
    ):
        out["additionalProperties"] = False
    return out


@functools.cache
def _validator(api_version: str, kind: str) -> jsonschema.Draft4Validator | None:
    schema = crds.schema_for(api_version, kind)
    return jsonschema.Draft4Validator(to_jsonschema(schema)) if schema is not None else None


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if value is None:
        return "null"
    return {str: "string", list: "array", dict: "object"}.get(type(value), type(value).__name__)


_A = {"integer": "an integer", "array": "a list", "object": "a mapping", "boolean": "true or false"}


def _schema_problem(obj: dict[str, Any], err: jsonschema.ValidationError) -> list[Problem]:
    path = list(err.absolute_path)
    name = describe(obj)
    got = err.instance
    kw = err.validator
    if kw == "required":
        missing = [p for p in err.validator_value if isinstance(got, dict) and p not in got]
        return [Problem(name, field_path([*path, p]), "is required") for p in missing]
    if kw == "additionalProperties":
        known = sorted((err.schema.get("properties") or {}).keys())
        extra = [p for p in got if p not in known] if isinstance(got, dict) else []
        hint = f" (known fields: {', '.join(known)})" if known else ""
        return [Problem(name, field_path([*path, p]), f"is not a known field{hint}") for p in extra]
    if kw == "enum":
        choices = ", ".join(str(v) for v in err.validator_value)
        return [Problem(name, field_path(path), f"must be one of {choices} (got {got!r})")]
    if kw in ("minimum", "maximum"):
        low, high = err.schema.get("minimum"), err.schema.get("maximum")
        if low is not None and high is not None:
            rule = f"must be between {low} and {high}"
        else:
            rule = f"must be at least {low}" if low is not None else f"must be at most {high}"
        return [Problem(name, field_path(path), f"{rule} (got {got!r})")]
    if kw == "type":
        want = err.validator_value if isinstance(err.validator_value, str) else err.validator_value[0]
        return [
            Problem(
                name, field_path(path), f"must be {_A.get(want, 'a ' + want)} (got {_json_type(got)} {got!r})"
            )
        ]
    if kw == "pattern":
        what = _PATTERN_NAMES.get(err.validator_value, f"match the pattern {err.validator_value}")
        return [Problem(name, field_path(path), f"must be {what} (got {got!r})")]
    if kw == "minItems" and obj.get("kind") == "Egress" and path == ["spec", "hosts"]:
        why = "must list at least one host: an empty list allows no host at all (leave it out for tcp ports)"
        return [Problem(name, "spec.hosts", why)]
    if kw == "minItems":
        return [Problem(name, field_path(path), f"must list at least {err.validator_value} item(s)")]
    if kw == "minLength" and err.validator_value == 1:
        return [Problem(name, field_path(path), "must not be empty")]
    return [Problem(name, field_path(path), err.message)]


def normalized(obj: dict[str, Any]) -> dict[str, Any]:
    """A valid object in canonical form: Egress hosts normalised (in a copy); other objects as given."""
    if obj.get("kind") != "Egress" or not isinstance(obj.get("spec"), dict) or not obj["spec"].get("hosts"):
        return obj
    out = copy.deepcopy(obj)
    out["spec"]["hosts"] = [normalize_host(h) for h in out["spec"]["hosts"]]
    return out


# --- one object -------------------------------------------------------------------------------------


def validate_object(obj: Any, source: str = "") -> list[Problem]:
    """Problems of one object on its own (schema and semantic rules). Non-mesh kinds get only basic checks."""
    name = describe(obj)
    if not isinstance(obj, dict):
        return [Problem(name, "", f"must be a mapping (got {_json_type(obj)})", source)]
    if not obj.get("apiVersion") or not obj.get("kind"):
        missing = [f for f in ("apiVersion", "kind") if not obj.get(f)]
        return [Problem(name, f, "is required: this is not a Kubernetes object", source) for f in missing]
    not_text = [f for f in ("apiVersion", "kind") if not isinstance(obj[f], str)]
    if not_text:
        return [Problem(name, f, f"must be a string (got {_json_type(obj[f])})", source) for f in not_text]
    problems = metadata_problems(obj, name)
    if is_mesh_kind(obj):
        validator = _validator(obj["apiVersion"], obj["kind"])
        if validator is None:
            served = ", ".join(crds.served_versions(obj["kind"]))
            problems.append(Problem(name, "apiVersion", f"{obj['apiVersion']} is not served; use {served}"))
        else:
            errors = sorted(validator.iter_errors(obj), key=lambda e: [str(p) for p in e.absolute_path])
            for err in errors:
                problems.extend(_schema_problem(obj, err))
            reported = {p.field for p in problems}
            problems.extend(p for p in semantic_problems(obj, name) if p.field not in reported)
    return [Problem(p.object, p.field, p.message, source) for p in problems]


def _checked(obj: Any, source: str) -> tuple[list[Problem], Any]:
    """(problems, normalised object) of one object; never raises, whatever the object holds."""
    try:
        problems = validate_object(obj, source)
        return problems, (None if problems else normalized(obj))
    except Exception as exc:  # noqa: BLE001 - one odd object must not stop the others
        message = f"cannot be validated ({type(exc).__name__}: {exc})"
        return [Problem(describe(obj), "", message, source)], None


class CheckMemo:
    """Results of ``validate_object`` remembered from one ``validate_objects`` call to the next.

    Keyed by object identity (the memo holds a reference, so an id is never reused while it is
    remembered): sources hand over the same dicts for unchanged resources, so after a change
    only the changed objects go through the schema again (about a millisecond each).
    """

    def __init__(self) -> None:
        self._last: dict[tuple[int, str], tuple[Any, list[Problem], Any]] = {}
        self._next: dict[tuple[int, str], tuple[Any, list[Problem], Any]] = {}

    def check(self, obj: Any, source: str) -> tuple[list[Problem], Any]:
        found = self._last.get((id(obj), source))
        if found is None or found[0] is not obj:
            found = (obj, *_checked(obj, source))
        self._next[(id(obj), source)] = found
        return found[1], found[2]

    def forget_unused(self) -> None:
        """Drop what the last call did not ask for."""
        self._last, self._next = self._next, {}


def check(obj: dict[str, Any], source: str = "") -> dict[str, Any]:
    """Return the normalised object, or raise InvalidObject listing every problem."""
    problems = validate_object(obj, source)
    if problems:
        raise InvalidObject(problems)
    return normalized(obj)


# --- a set of objects ---------------------------------------------------------------------------


def _service_keys(services: Iterable[Any]) -> set[tuple[str, str]]:
    keys = set()
    for svc in services:
        if isinstance(svc, str):
            namespace, _, name = svc.partition("/")
            keys.add((namespace, name))
        elif isinstance(svc, tuple):
            keys.add((svc[0], svc[1]))
        elif isinstance(svc, dict):
            meta = svc.get("metadata") or {}
            keys.add((meta.get("namespace") or "default", meta.get("name") or ""))
        else:  # mesh.api.resources.Service
            keys.add((svc.namespace, svc.name))
    return keys


def validate_objects(
    objects: Iterable[dict[str, Any] | Document],
    services: Iterable[Any] | None = None,
    previous: Iterable[dict[str, Any]] | None = None,
    memo: CheckMemo | None = None,
) -> ValidationResult:
    """Validate a whole set: every object on its own, then the rules across objects.

    ``services``: the Services that exist (dicts, ``resources.Service``, ``(namespace, name)`` or
    ``"namespace/name"``); Services inside ``objects`` count too. When None and ``objects`` holds
    no Service, gateway Services are not checked.
    ``previous``: the last valid set; an object that is now invalid on its own is replaced by its
    previous valid version (same kind, namespace and name), so a bad edit changes nothing.
    Non-mesh objects (Services, Deployments...) pass through after basic checks.
    ``memo``: results of earlier calls to reuse for objects seen again (see ``CheckMemo``).
    Never raises for what the objects hold: an object that breaks the checker itself is a problem.
    """
    result = ValidationResult()
    last_good = {key(o): o for o in previous or ()}
    candidates: list[tuple[dict[str, Any], str]] = []
    for item in objects:
        obj, source = (item.obj, item.source) if isinstance(item, Document) else (item, "")
        problems, normal = memo.check(obj, source) if memo else _checked(obj, source)
        if problems:
            result.problems.extend(problems)
            if isinstance(obj, dict) and key(obj) in last_good:
                candidates.append((last_good[key(obj)], source))
            continue
        candidates.append((normal, source))
    if memo:
        memo.forget_unused()

    seen: dict[tuple[str, str, str], str] = {}
    unique: list[tuple[dict[str, Any], str]] = []
    for obj, source in candidates:
        k = key(obj)
        if k in seen:
            first = f" (first in {seen[k]})" if seen[k] else ""
            result.problems.append(
                Problem(describe(obj), "metadata.name", f"is defined twice{first}", source)
            )
            continue
        seen[k] = source
        unique.append((obj, source))

    known_services = None
    in_set = [o for o, _ in unique if o.get("kind") == "Service" and o.get("apiVersion") == "v1"]
    if services is not None or in_set:
        known_services = _service_keys(services or ()) | _service_keys(in_set)

    kept: list[tuple[dict[str, Any], str]] = []
    for obj, source in unique:
        problems = (
            _gateway_service_problems(obj, known_services) if obj.get("kind") == "EgressGateway" else []
        )
        for p in problems:
            result.problems.append(Problem(p.object, p.field, p.message, source))
        if not problems:
            kept.append((obj, source))

    problems, rejected = _extra_global_gateways(kept)
    result.problems.extend(problems)
    result.valid = [obj for index, (obj, _) in enumerate(kept) if index not in rejected]
    return result


def _gateway_service_problems(obj: dict[str, Any], services: set[tuple[str, str]] | None) -> list[Problem]:
    if services is None or not is_mesh_kind(obj):
        return []
    problems = []
    for where, backend in gateway_backends(obj.get("spec") or {}):
        if (backend["namespace"], backend["service"]) not in services:
            problems.append(
                Problem(
                    describe(obj),
                    where,
                    f"gateway Service {backend['namespace']}/{backend['service']} does not exist",
                )
            )
    return problems


def _extra_global_gateways(objects: list[tuple[dict[str, Any], str]]) -> tuple[list[Problem], set[int]]:
    """Problems for every global EgressGateway but the oldest, and their indexes in ``objects``."""
    globals_ = [
        (index, obj, source)
        for index, (obj, source) in enumerate(objects)
        if obj.get("kind") == "EgressGateway" and is_mesh_kind(obj) and (obj.get("spec") or {}).get("global")
    ]

    def age(entry: tuple[int, dict[str, Any], str]) -> tuple[bool, str, int]:
        stamp = (entry[1].get("metadata") or {}).get("creationTimestamp")
        return (stamp is None, str(stamp or ""), entry[0])

    globals_.sort(key=age)
    if len(globals_) < 2:
        return [], set()
    winner = describe(globals_[0][1])
    problems = [
        Problem(
            describe(obj),
            "spec.global",
            f"only one global egress gateway is allowed in the cluster; {winner} already defines it",
            source,
        )
        for _, obj, source in globals_[1:]
    ]
    return problems, {index for index, _, _ in globals_[1:]}
