"""The sidecar's cheap ProxyConfig check (``_conforms``) decides every document as jsonschema does
with SCHEMA (the contract); jsonschema is loaded only to word a refusal."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import jsonschema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mesh.api import proxyconfig
from mesh.api.proxyconfig import SCHEMA, Endpoint, Identity, Mode, Protocol, ProxyConfig, RequestMatch, Rule


def _documents() -> list[dict]:
    rules = (
        Rule(Protocol.HTTP, 80, hosts=("httpbin.org", "*.example.com"), egress="curl/httpbin-80"),
        Rule(Protocol.TCP, 5432, cidrs=("10.0.0.0/8",), gateway=Endpoint("gw", 1080)),
        Rule(
            Protocol.HTTP, 8080, hosts=("a.test",), matches=(RequestMatch("/get", ("GET",), (("x", "y"),)),)
        ),
    )
    config = ProxyConfig(Identity("curl", "curl"), Mode.POLICY, rules=rules, gateway=Endpoint("g", 1))
    return [config.with_version().to_dict(), ProxyConfig(Identity("a", "b"), Mode.DISABLED).to_dict()]


_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 70000),
    st.sampled_from([1.0, 1.5, 80.0, 0.0, 65536.0]),
    st.sampled_from(
        ["", "http", "tcp", "policy", "open", "HTTPBIN.org", "a.b", "*.a", "x", "GET", "[", "10.0.0.0/8"]
    ),
    st.sampled_from(
        [[], ["a"], [1], [None], {}, {"host": "h", "port": 1}, {"host": "", "port": 0}, {"x": 1}]
    ),
)


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, sub in value.items():
            yield from _paths(sub, (*prefix, key))
    elif isinstance(value, list):
        for index, sub in enumerate(value):
            yield from _paths(sub, (*prefix, index))


@st.composite
def mutated_documents(draw) -> dict:
    """A valid document with a few places replaced, removed or added to."""
    document = copy.deepcopy(draw(st.sampled_from(_documents())))
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.sampled_from(list(_paths(document))[1:]))
        parent = document
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "remove", "add"]))
        if action == "replace":
            parent[path[-1]] = copy.deepcopy(draw(_VALUES))
        elif action == "remove":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.sampled_from(["extra", "hosts", "cidrs", "gateway", "pathRegex"]))] = (
                copy.deepcopy(draw(_VALUES))
            )
        else:
            parent.append(copy.deepcopy(draw(_VALUES)))
    return document


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_documents())
def test_the_cheap_check_decides_as_jsonschema(document):
    valid = not list(jsonschema.Draft202012Validator(SCHEMA).iter_errors(document))
    assert proxyconfig._conforms(document, SCHEMA) == valid


def test_the_cheap_check_knows_every_keyword_of_the_schema():
    for document in _documents():
        assert proxyconfig._conforms(document, SCHEMA)  # raises _Unknown on a keyword it does not know


def test_a_sidecar_applying_a_valid_config_does_not_load_jsonschema():
    document = json.dumps(_documents()[0])
    script = (
        "import sys\nfrom mesh.api.proxyconfig import ProxyConfig\n"
        f"ProxyConfig.from_json({document!r})\nprint('jsonschema' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
