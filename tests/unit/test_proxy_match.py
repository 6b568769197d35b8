import pytest

from mesh.api.proxyconfig import Endpoint, Identity, Mode, Protocol, ProxyConfig, Rule
from mesh.proxy.match import BadHost, decide, handling, host_matches, normalise_host, split_host_port

GW = Endpoint("gw.example", 1080)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("HTTPBin.ORG", ("httpbin.org", None)),
        ("httpbin.org.", ("httpbin.org", None)),
        ("httpbin.org:80", ("httpbin.org", 80)),
        ("[::1]:8080", ("::1", 8080)),
        ("[2001:DB8::1]", ("2001:db8::1", None)),
        ("2001:db8::1", ("2001:db8::1", None)),
        ("10.0.0.1:443", ("10.0.0.1", 443)),
    ],
)
def test_split_host_port(text, expected):
    assert split_host_port(text) == expected


@pytest.mark.parametrize("text", ["", "a b", "host:0", "host:99999", "[::1", "[zz]:80", "x" * 300, "ex!.com"])
def test_bad_hosts(text):
    with pytest.raises(BadHost):
        split_host_port(text)


@pytest.mark.parametrize(
    "pattern, host, expected",
    [
        ("httpbin.org", "httpbin.org", True),
        ("httpbin.org", "www.httpbin.org", False),
        ("*.example.com", "a.example.com", True),
        ("*.example.com", "a.b.example.com", True),
        ("*.example.com", "example.com", False),
        ("*.example.com", "badexample.com", False),
        ("*.example.com", "a.example.com.evil", False),
    ],
)
def test_host_matches(pattern, host, expected):
    assert host_matches(pattern, normalise_host(host)) is expected


def cfg(mode: Mode, *rules: Rule, gateway: Endpoint | None = None) -> ProxyConfig:
    return ProxyConfig(Identity("curl", "curl"), mode, rules=rules, gateway=gateway)


HTTPBIN = Rule(Protocol.HTTP, 80, hosts=("httpbin.org",), egress="curl/httpbin-80")
WILD = Rule(Protocol.HTTPS, 443, hosts=("*.example.com",))
NET = Rule(Protocol.TCP, 5432, cidrs=("10.9.0.0/16",))


@pytest.mark.parametrize(
    "config, protocol, port, ip, name, allowed, target",
    [
        (cfg(Mode.DISABLED), Protocol.HTTP, 80, "1.2.3.4", "httpbin.org", False, ""),
        (cfg(Mode.PERMISSIVE), Protocol.HTTP, 80, "1.2.3.4", "anything.io", True, "1.2.3.4"),
        (cfg(Mode.PERMISSIVE, gateway=GW), Protocol.HTTP, 80, "1.2.3.4", "anything.io", True, "anything.io"),
        (cfg(Mode.PERMISSIVE, gateway=GW), Protocol.TCP, 22, "1.2.3.4", None, True, "1.2.3.4"),
        (cfg(Mode.POLICY, HTTPBIN), Protocol.HTTP, 80, "6.6.6.6", "httpbin.org", True, "httpbin.org"),
        (cfg(Mode.POLICY, HTTPBIN), Protocol.HTTP, 80, "1.2.3.4", "httpstat.us", False, ""),
        (cfg(Mode.POLICY, HTTPBIN), Protocol.HTTP, 8080, "1.2.3.4", "httpbin.org", False, ""),
        (cfg(Mode.POLICY, HTTPBIN), Protocol.HTTPS, 80, "1.2.3.4", "httpbin.org", False, ""),
        (cfg(Mode.POLICY, WILD), Protocol.HTTPS, 443, "1.2.3.4", "api.example.com", True, "api.example.com"),
        (cfg(Mode.POLICY, WILD), Protocol.HTTPS, 443, "1.2.3.4", "example.com", False, ""),
        (cfg(Mode.POLICY, WILD), Protocol.HTTPS, 443, "1.2.3.4", None, False, ""),
        (cfg(Mode.POLICY, NET), Protocol.TCP, 5432, "10.9.3.4", None, True, "10.9.3.4"),
        (cfg(Mode.POLICY, NET), Protocol.TCP, 5432, "10.8.3.4", None, False, ""),
        (cfg(Mode.POLICY, NET), Protocol.TCP, 5433, "10.9.3.4", None, False, ""),
    ],
)
def test_decision_table(config, protocol, port, ip, name, allowed, target):
    decision = decide(config, protocol, port, ip, name)
    assert decision.allowed is allowed, decision.reason
    assert decision.target == target


def test_rule_gateway_wins_over_config_gateway_and_names_the_egress():
    rule = Rule(Protocol.HTTP, 80, hosts=("httpbin.org",), gateway=Endpoint("other", 1080), egress="curl/x")
    decision = decide(cfg(Mode.POLICY, rule, gateway=GW), Protocol.HTTP, 80, "1.1.1.1", "httpbin.org")
    assert (decision.gateway, decision.egress) == (Endpoint("other", 1080), "curl/x")
    decision = decide(cfg(Mode.POLICY, HTTPBIN, gateway=GW), Protocol.HTTP, 80, "1.1.1.1", "httpbin.org")
    assert decision.gateway == GW


def test_handling_follows_the_rules_of_the_port():
    config = cfg(Mode.POLICY, HTTPBIN, WILD, NET, Rule(Protocol.TCP, 80, cidrs=("10.0.0.0/8",)))
    assert handling(config, 443) == Protocol.HTTPS
    assert handling(config, 5432) == Protocol.TCP
    assert handling(config, 80) is None  # mixed: sniff
    assert handling(config, 9999) is None
