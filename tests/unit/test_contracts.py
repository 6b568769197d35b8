import pytest

from mesh.api.proxyconfig import (
    Endpoint,
    Identity,
    InvalidProxyConfig,
    Mode,
    Protocol,
    ProxyConfig,
    RequestMatch,
    Rule,
    closed,
)
from mesh.api.tunnel import ConnectRequest, TunnelError


def _sample() -> ProxyConfig:
    return ProxyConfig(
        identity=Identity("curl", "curl"),
        mode=Mode.POLICY,
        rules=(Rule(Protocol.HTTP, 80, hosts=("httpbin.org",), egress="curl/httpbin-80"),),
        gateway=Endpoint("global-egress-gateway.egress-gateway.svc.cluster.local", 1080),
    ).with_version()


def test_proxyconfig_roundtrips_through_json_with_stable_version():
    cfg = _sample()
    again = ProxyConfig.from_json(cfg.to_json())
    assert again == cfg
    assert again.with_version().version == cfg.version
    assert len(cfg.version) == 16


def test_proxyconfig_version_follows_content():
    assert _sample().version != closed(Identity("curl", "curl")).version


def _restricted(*matches: RequestMatch) -> ProxyConfig:
    rule = Rule(
        Protocol.HTTP, 80, hosts=("httpbin.org",), egress="curl/httpbin-80", matches=matches, restricted=True
    )
    return ProxyConfig(identity=Identity("curl", "curl"), mode=Mode.POLICY, rules=(rule,)).with_version()


def test_rule_matches_roundtrip_and_change_the_version():
    get = RequestMatch("/get", ("GET",), (("user-agent", "curl/.*"),))
    cfg = _restricted(get, RequestMatch())
    data = cfg.to_dict()
    assert data["rules"][0]["matches"] == [
        {"pathRegex": "/get", "methods": ["GET"], "headers": {"user-agent": "curl/.*"}},
        {"pathRegex": None, "methods": [], "headers": {}},
    ]
    assert ProxyConfig.from_json(cfg.to_json()) == cfg
    assert len({cfg.version, _restricted(get).version, _restricted().version, _sample().version}) == 4


def test_restricted_rule_without_matches_roundtrips_as_allow_nothing():
    cfg = _restricted()
    assert cfg.to_dict()["rules"][0]["restricted"] is True
    assert ProxyConfig.from_json(cfg.to_json()).rules[0].restricted is True


def test_documents_without_matches_are_unchanged():
    rule = _sample().to_dict()["rules"][0]
    assert "matches" not in rule and "restricted" not in rule
    assert ProxyConfig.from_dict(_sample().to_dict()).rules[0] == Rule(
        Protocol.HTTP, 80, hosts=("httpbin.org",), egress="curl/httpbin-80"
    )


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["rules"][0].update(matches=[{"pathRegex": "/get("}]), "rules.0.matches.0.pathRegex"),
        (lambda d: d["rules"][0].update(matches=[{"methods": "GET"}]), "rules.0.matches.0.methods"),
        (lambda d: d["rules"][0].update(matches=[{"path": "/get"}]), "rules.0.matches.0"),
        (lambda d: d.update(mode="open"), "mode"),
        (lambda d: d["rules"][0].update(port=70000), "rules.0.port"),
        (lambda d: d["rules"][0].update(hosts=["HTTPBIN.org"]), "rules.0.hosts.0"),
        (lambda d: d["rules"][0].update(cidrs=["10.0.0.300/8"]), "rules.0.cidrs.0"),
    ],
)
def test_proxyconfig_rejects_bad_documents_naming_the_field(mutate, message):
    data = _sample().to_dict()
    mutate(data)
    with pytest.raises(InvalidProxyConfig, match=message):
        ProxyConfig.from_dict(data)


def test_connect_request_roundtrip():
    req = ConnectRequest("httpbin.org", 80, source="curl/curl", protocol="http")
    assert ConnectRequest.decode(req.encode()) == req


@pytest.mark.parametrize(
    "head, status",
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 405),
        (b"CONNECT httpbin.org HTTP/1.1\r\n\r\n", 400),
        (b"CONNECT httpbin.org:99999 HTTP/1.1\r\n\r\n", 400),
        (b"garbage\r\n\r\n", 400),
    ],
)
def test_connect_request_rejects(head, status):
    with pytest.raises(TunnelError) as err:
        ConnectRequest.decode(head)
    assert err.value.status == status
