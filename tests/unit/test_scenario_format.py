"""The scenario file format: what loads, and the errors users see (file and step named)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import jsonschema
import pytest
import yaml

from scenarios.format import (
    SCHEMA,
    ApplyStep,
    GatewayLogStep,
    PodIP,
    RequestStep,
    ScenarioError,
    load,
    load_file,
    parse,
)

GOOD = """\
name: my-check
title: {en: My check, zh: 我的检查}
description: Users write their own scenarios.
steps:
  - narration: Deploy the app.
    apply: {file: app.yaml, namespace: curl}
  - narration: {en: Send a request, zh: 发送请求}
    title: Request
    request:
      namespace: curl
      selector: app=curl
      container: curl
      urls: [http://httpbin.org/get]
      expect:
        - status: 200
          headers: {Content-Length: 13}
  - narration: Check the gateway.
    gateway_log:
      present:
        - {host: httpbin.org, source_address: {pod_ip: {namespace: curl, selector: app=curl}}, count: 1}
      absent:
        - {host: httpstat.us}
"""
APP = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: curl\n"


def write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    (tmp_path / "app.yaml").write_text(APP, encoding="utf-8")
    return path


def error_of(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ScenarioError) as info:
        load_file(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    return message


def test_a_user_scenario_loads_with_files_relative_to_it(tmp_path):
    scenario = load(write(tmp_path, GOOD))
    assert scenario.name == "my-check" and scenario.title.get("zh") == "我的检查"
    apply, request, log = scenario.steps
    assert isinstance(apply, ApplyStep) and apply.manifest == APP and apply.namespace == "curl"
    assert isinstance(request, RequestStep)
    assert request.argv == ["curl", "-sI", "http://httpbin.org/get"]
    assert request.responses[0].headers == {"content-length": "13"}
    assert request.expected_exit_code == 0 and request.timeout == 15
    assert request.narration.get("zh") == "发送请求" and request.narration.get("en") == "Send a request"
    assert isinstance(log, GatewayLogStep)
    assert log.present[0].fields["source_address"] == PodIP("curl", "app=curl")
    assert log.present[0].count == 1 and "count" not in log.present[0].fields
    assert (log.namespace, log.selector) == ("egress-gateway", "app=global-egress-gateway")


def test_the_published_schema_accepts_what_the_loader_accepts(tmp_path):
    data = yaml.safe_load(GOOD)
    jsonschema.Draft202012Validator(SCHEMA).validate(data)
    data["steps"][0]["run"] = ["kubectl", "get", "pods"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(SCHEMA).validate(data)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "name: x\ntitle: t\nsteps:\n  - narration: n\n    run: [a]\n  - narration: n\n",
            "step 2: a step has exactly one of apply, delete, patch, run, wait, request, exec, gateway_log, "
            "log, set, background, stop (found none)",
        ),
        (
            "name: x\ntitle: t\nsteps:\n  - narration: n\n    run: [a]\n"
            "    wait: {namespace: a, selector: b}\n",
            "step 1: a step has exactly one of apply, delete, patch, run, wait, request, exec, gateway_log, "
            "log, set, background, stop (found run, wait)",
        ),
        ("name: x\ntitle: t\nsteps:\n  - run: [a]\n", "step 1 (run): narration is required"),
        (
            "name: x\ntitle: t\nsteps:\n  - narration: n\n    run: [a]\n    foo: 1\n",
            "step 1 (run): unknown key(s) foo",
        ),
        (
            "name: x\ntitle: t\nsteps:\n  - narration: n\n    wait: {namespace: curl}\n",
            "step 1 (wait): wait: 'selector' is a required property",
        ),
        (
            "name: x\ntitle: t\nsteps:\n  - narration: n\n    request: {namespace: curl, selector: app=curl, "
            "container: curl, urls: [http://a/], expect: [{status: 99}]}\n",
            "step 1 (request): request/expect/0/status: 99 is less than the minimum of 100",
        ),
        (
            "name: x\ntitle: t\nsteps:\n  - narration: n\n    request: {namespace: curl, selector: app=curl, "
            "container: curl, urls: [httpbin.org], expect: {exit_code: 7}}\n",
            "step 1 (request): request/urls/0: 'httpbin.org' does not match '^https?://'",
        ),
        (
            "name: x\ntitle: t\nsteps:\n  - narration: n\n    apply: {file: missing.yaml}\n",
            "step 1 (apply): apply: cannot read file 'missing.yaml'",
        ),
        (
            "name: x\ntitle: t\nsteps:\n  - narration: n\n    apply: {manifest: 'kind: Egress'}\n",
            "step 1 (apply): apply: every manifest document needs apiVersion and kind",
        ),
        (
            "name: x\ntitle: t\nsteps:\n  - narration: n\n    patch: {kind: meshconfig, name: m, patch: {}, "
            "type: json}\n",
            "step 1 (patch): patch/type: 'json' is not one of ['merge']",
        ),
        (
            "name: x\ntitle: t\nsteps:\n  - narration: n\n    gateway_log: {}\n",
            "step 1 (gateway_log): gateway_log needs at least one of present and absent",
        ),
        (
            "name: x\ntitle: t\nsteps:\n  - narration: n\n    apply: {file: app.yaml, manifest: 'a: b'}\n",
            "step 1 (apply): apply needs exactly one of manifest and file",
        ),
        ("name: Bad Name\ntitle: t\nsteps: [{narration: n, run: [a]}]\n", "name: 'Bad Name' does not match"),
        ("title: t\nsteps: []\n", "'name' is a required property"),
        ("name: x\ntitle: t\nsteps: [\n", "line 4, column 1: invalid YAML"),
    ],
)
def test_errors_name_the_file_and_the_step(tmp_path, text, expected):
    assert expected in error_of(tmp_path, text)


def test_unknown_catalog_name_lists_the_catalog():
    with pytest.raises(ScenarioError) as info:
        load("passthrough-polcy")
    assert "no scenario named 'passthrough-polcy'" in str(info.value)
    assert "passthrough-policy" in str(info.value)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ScenarioError, match="cannot read scenario file"):
        load(str(tmp_path / "nope.yaml"))


DOCS = Path(__file__).resolve().parents[2] / "docs"


def yaml_blocks(markdown: str) -> list[str]:
    return [block.split("\n", 1)[1] for block in markdown.split("```")[1::2] if block.startswith("yaml\n")]


def test_every_yaml_example_in_the_scenario_docs_loads_and_fits_the_schema(tmp_path):
    """The examples an author copies from docs/scenarios.md are valid (steps get a scenario around them)."""
    blocks = yaml_blocks((DOCS / "scenarios.md").read_text(encoding="utf-8"))
    assert len(blocks) >= 6
    for block in blocks:
        data = yaml.safe_load(block)
        if isinstance(data, list):  # a snippet of steps, after values an earlier snippet set
            earlier = {"client_ip": "10.0.0.1", "httpbin_ip": "10.0.0.2"}
            data = {"name": "snippet", "title": "t", "steps": [{"narration": "n", "set": earlier}, *data]}
        (tmp_path / "scenarios/manifests").mkdir(parents=True, exist_ok=True)
        (tmp_path / "scenarios/manifests/curl.yaml").write_text(APP)
        jsonschema.Draft202012Validator(SCHEMA).validate(data)
        parse(data, "docs/scenarios.md", tmp_path)


def test_the_published_schema_accepts_every_kind():
    data = yaml.safe_load((DOCS / "examples" / "format-features.yaml").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(SCHEMA).validate(data)
    kinds = {next(k for k in step if k not in ("narration", "title")) for step in data["steps"]}
    assert {"set", "exec", "log", "background", "stop", "request", "patch", "apply"} <= kinds
    data["steps"][4]["set"]["client_ip"] = {"pod_ip": {"namespace": "curl"}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(SCHEMA).validate(data)


def test_scenario_files_are_read_with_the_manifest_bounds(tmp_path):
    """One multi-document reader (mesh.api.load.load_documents): a scenario file nested deeper than
    any real one is refused with the position, as a manifest is."""
    nested = "[" * 150 + "]" * 150
    message = error_of(tmp_path, f"name: x\ntitle: t\nsteps: [{{narration: n, run: {nested}}}]\n")
    assert "refused" in message and "line 3" in message
