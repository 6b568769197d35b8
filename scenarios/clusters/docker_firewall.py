"""The egress boundary on the Docker backend: the boundary's NetworkPolicies as host firewall rules.

The backend has no network plugin to enforce NetworkPolicy, so it does it on the host. It compiles
the policies with the controller's own code (``mesh.controller.boundary``) from the objects it
keeps in its manifest directory (what the controller reads), and ``translate`` turns them into
iptables rules: one chain per harness run, ``EGRESS-MESH-<run id>``, jumped to from the top of
Docker's ``DOCKER-USER`` chain, which Docker consults first for every packet it forwards between
containers (same network, bridged, seen by iptables through ``br_netfilter``) and out of them.

For each pod a policy selects (all pods of a meshed namespace), and each of its addresses:
packets of established connections pass, packets to what a rule allows pass (``RETURN``: Docker's
own rules decide as before), every other packet from it is refused (TCP reset, ICMP
port-unreachable), so a blocked connection fails at once instead of timing out. Pods no policy
selects are not touched. ``HostFirewall.apply`` writes the whole chain in one
``iptables-restore`` (idempotent: the same rules twice change nothing); an empty rule set, and
``remove_chains`` (from ``down()`` and ``python -m scenarios.clusters.docker clean``), remove the
chain and its jump.
"""

from __future__ import annotations

import ipaddress
import os
import shlex
import shutil
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHAIN_PREFIX = "EGRESS-MESH-"
DOCKER_USER = "DOCKER-USER"
BRIDGE_NF_CALL = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"

Runner = Callable[[Sequence[str], str | None], subprocess.CompletedProcess]


class FirewallError(RuntimeError):
    """The boundary cannot be enforced (or the policy uses what this translation does not know)."""


@dataclass(frozen=True)
class Endpoint:
    """A pod as the firewall sees it."""

    namespace: str
    name: str
    labels: Mapping[str, str]
    addresses: tuple[str, ...]
    #: named container ports: name -> (protocol, number)
    ports: Mapping[str, tuple[str, int]] = field(default_factory=dict)


def available() -> bool:
    """Whether this host can enforce the boundary (root, iptables): the backend's ``network-policy``."""
    return os.geteuid() == 0 and shutil.which("iptables-restore") is not None


def chain_name(run_id: str) -> str:
    return f"{CHAIN_PREFIX}{run_id}"[:28]  # iptables' limit


# --- NetworkPolicy -> rules (pure) ------------------------------------------------------------------


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Kubernetes LabelSelector semantics (``matchLabels`` and ``matchExpressions``; ``{}`` matches all)."""
    selector = selector or {}
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or ():
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or ()
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def translate(
    policies: Iterable[Mapping[str, Any]],
    endpoints: Sequence[Endpoint],
    namespaces: Mapping[str, Mapping[str, str]],
    chain: str,
) -> list[str]:
    """``iptables-restore`` rule lines (``-A chain ...``) enforcing the policies' egress rules;
    ``[]`` when no policy selects any endpoint."""
    policies = [p for p in policies if "Egress" in ((p.get("spec") or {}).get("policyTypes") or ())]
    namespace_labels = {ns: {**labels, NAMESPACE_NAME_LABEL: ns} for ns, labels in namespaces.items()}
    body: list[str] = []
    for source in sorted(endpoints, key=lambda e: (e.namespace, e.name)):
        selecting = [p for p in policies if _selects(p, source)]
        if not selecting:
            continue
        allowed = [
            match
            for policy in selecting
            for rule in (policy["spec"].get("egress") or ())
            for match in _rule_matches(policy, rule, endpoints, namespace_labels)
        ]
        for address in source.addresses:
            src = f"-s {_ipv4(address, source)}/32"
            body += [f"-A {chain} {src} {match} -j RETURN".replace("  ", " ") for match in allowed]
            comment = f'-m comment --comment "egress boundary {source.namespace}/{source.name}"'
            body.append(f"-A {chain} {src} -p tcp {comment} -j REJECT --reject-with tcp-reset")
            body.append(f"-A {chain} {src} {comment} -j REJECT --reject-with icmp-port-unreachable")
    if not body:
        return []
    established = f"-A {chain} -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN"
    return [established, *dict.fromkeys(body)]


def _selects(policy: Mapping[str, Any], endpoint: Endpoint) -> bool:
    meta = policy.get("metadata") or {}
    return meta.get("namespace") == endpoint.namespace and selector_matches(
        (policy.get("spec") or {}).get("podSelector"), endpoint.labels
    )


def _rule_matches(
    policy: Mapping[str, Any],
    rule: Mapping[str, Any],
    endpoints: Sequence[Endpoint],
    namespace_labels: Mapping[str, Mapping[str, str]],
) -> list[str]:
    """iptables match text for each (destination, port) one egress rule allows."""
    peers = rule.get("to")
    ports = rule.get("ports") or [None]
    matches: list[str] = []
    if not peers:  # any destination
        return [text for text in (_port_match(port, None) for port in ports) if text is not None]
    for peer in peers:
        if "ipBlock" in peer:
            block = peer["ipBlock"]
            if block.get("except"):
                raise FirewallError("the Docker backend's firewall does not translate ipBlock.except")
            if ipaddress.ip_network(block["cidr"], strict=False).version != 4:
                continue  # the backend's networks carry no IPv6
            for port in ports:
                text = _port_match(port, None)
                if text is not None:
                    matches.append(f"-d {block['cidr']} {text}".strip())
            continue
        for target in _peer_endpoints(policy, peer, endpoints, namespace_labels):
            for port in ports:
                text = _port_match(port, target)
                if text is None:
                    continue
                matches += [f"-d {_ipv4(a, target)}/32 {text}".strip() for a in target.addresses]
    return matches


def _peer_endpoints(
    policy: Mapping[str, Any],
    peer: Mapping[str, Any],
    endpoints: Sequence[Endpoint],
    namespace_labels: Mapping[str, Mapping[str, str]],
) -> list[Endpoint]:
    own = (policy.get("metadata") or {}).get("namespace")
    if "namespaceSelector" in peer:
        wanted = {
            ns
            for ns, labels in namespace_labels.items()
            if selector_matches(peer["namespaceSelector"], labels)
        }
    else:
        wanted = {own}
    return [
        e for e in endpoints if e.namespace in wanted and selector_matches(peer.get("podSelector"), e.labels)
    ]


def _port_match(port: Mapping[str, Any] | None, target: Endpoint | None) -> str | None:
    """``-p tcp -m tcp --dport 53``; ``""`` for any port and protocol; ``None`` when a named port
    does not exist on the target (it then matches nothing, as in Kubernetes)."""
    if port is None:
        return ""
    protocol = str(port.get("protocol") or "TCP").lower()
    number = port.get("port")
    if number is None:
        return f"-p {protocol}"
    if isinstance(number, str) and not number.isdigit():
        named = target.ports.get(number) if target else None
        if named is None or named[0].lower() != protocol:
            return None
        number = named[1]
    end = port.get("endPort")
    span = f"{number}:{end}" if end else f"{number}"
    return f"-p {protocol} -m {protocol} --dport {span}"


def _ipv4(address: str, endpoint: Endpoint) -> str:
    if ipaddress.ip_address(address).version != 4:
        raise FirewallError(
            f"pod {endpoint.namespace}/{endpoint.name} has the IPv6 address {address}; the Docker "
            "backend's firewall filters IPv4 only, so it cannot enforce the egress boundary"
        )
    return address


# --- the host ---------------------------------------------------------------------------------------


def run_command(argv: Sequence[str], stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), input=stdin, capture_output=True, text=True, timeout=60)


class HostFirewall:
    """One harness run's chain in the host's iptables, jumped to from ``DOCKER-USER``."""

    def __init__(self, run_id: str, runner: Runner = run_command) -> None:
        self.run_id = run_id
        self.chain = chain_name(run_id)
        self._run = runner
        self._applied: list[str] | None = None

    def apply(self, rules: Sequence[str]) -> list[str]:
        """Make the chain hold exactly ``rules``; returns the commands run (none when unchanged)."""
        rules = list(rules)
        if rules == self._applied:
            return []
        if not rules:
            actions = self.remove()
            self._applied = []
            return actions
        _require_root()
        actions = _ensure_bridge_netfilter(self._run)
        restore = "\n".join(["*filter", f":{self.chain} - [0:0]", *rules, "COMMIT", ""])
        self._check(["iptables-restore", "--noflush", "--wait"], restore)
        actions.append(f"iptables-restore --noflush <<< '{len(rules)} rules in chain {self.chain}'")
        if self._run(["iptables", "--wait", "-C", DOCKER_USER, *self._jump()], None).returncode != 0:
            self._check(["iptables", "--wait", "-I", DOCKER_USER, "1", *self._jump()])
            actions.append(shlex.join(["iptables", "-I", DOCKER_USER, "1", *self._jump()]))
        self._applied = rules
        return actions

    def remove(self) -> list[str]:
        self._applied = None
        return remove_chains(self.run_id, self._run)

    def _jump(self) -> list[str]:
        return ["-m", "comment", "--comment", f"egress-mesh run {self.run_id}", "-j", self.chain]

    def _check(self, argv: Sequence[str], stdin: str | None = None) -> None:
        done = self._run(argv, stdin)
        if done.returncode != 0:
            detail = " ".join((done.stderr or done.stdout or "").split())
            if "DOCKER-USER" in detail or "No chain/target/match by that name" in detail:
                detail += f" (Docker's {DOCKER_USER} chain is missing: does dockerd run with iptables?)"
            raise FirewallError(f"{shlex.join(argv)} failed: {detail}")


def remove_chains(run_id: str | None = None, runner: Runner = run_command) -> list[str]:
    """Remove one run's chain and its jump (every run's when ``run_id`` is None). Quietly nothing
    where iptables cannot be used (not root, not installed): then no chain was ever made either."""
    if os.geteuid() != 0 or shutil.which("iptables") is None:
        return []
    listed = runner(["iptables", "--wait", "-S"], None)
    if listed.returncode != 0:
        return []
    lines = listed.stdout.splitlines()
    prefix = chain_name(run_id) if run_id else CHAIN_PREFIX
    chains = [
        line.split()[1] for line in lines if line.startswith("-N ") and line.split()[1].startswith(prefix)
    ]
    actions = []
    for chain in chains:
        for line in lines:
            words = shlex.split(line)
            if words[:2] == ["-A", DOCKER_USER] and words[-2:] == ["-j", chain]:
                argv = ["iptables", "--wait", "-D", *words[1:]]
                runner(argv, None)
                actions.append(shlex.join(argv))
        for flag in ("-F", "-X"):
            runner(["iptables", "--wait", flag, chain], None)
            actions.append(shlex.join(["iptables", flag, chain]))
    return actions


def _require_root() -> None:
    if os.geteuid() != 0:
        raise FirewallError(
            "the Docker backend enforces the egress boundary with host iptables rules, which needs root"
        )
    if shutil.which("iptables-restore") is None:
        raise FirewallError(
            "the Docker backend's egress boundary needs iptables on the host (apt install iptables)"
        )


def _ensure_bridge_netfilter(runner: Runner) -> list[str]:
    """Packets between containers on one Docker network are bridged: iptables sees them only with
    ``br_netfilter`` and ``net.bridge.bridge-nf-call-iptables=1`` (Docker 27.3+ no longer sets it
    unless a network needs it). Turned on when off, and left on, as Docker leaves it."""
    actions = []
    if not BRIDGE_NF_CALL.exists():
        done = runner(["modprobe", "br_netfilter"], None)
        actions.append("modprobe br_netfilter")
        if done.returncode != 0 or not BRIDGE_NF_CALL.exists():
            raise FirewallError(
                "the kernel module br_netfilter is not loaded and cannot be (modprobe br_netfilter): "
                "without it the host firewall does not see traffic between containers"
            )
    if BRIDGE_NF_CALL.read_text().strip() != "1":
        try:
            BRIDGE_NF_CALL.write_text("1\n")
        except OSError as exc:
            raise FirewallError(f"cannot set net.bridge.bridge-nf-call-iptables=1: {exc.strerror}") from None
        actions.append("sysctl -w net.bridge.bridge-nf-call-iptables=1")
    return actions


# --- what the backend knows -> endpoints, policies --------------------------------------------------


def enforce(
    firewall: HostFirewall,
    objects: Iterable[Mapping[str, Any]],
    endpoints: Callable[[], Sequence[Endpoint]],
    mesh_name: str,
    mesh_namespace: str,
) -> list[str]:
    """Compile the boundary from the backend's objects exactly as the controller does, translate it
    for the pods ``endpoints()`` lists (only asked when some policy exists) and apply it. Returns the
    commands run, then the boundary's warnings as comments."""
    from mesh.controller.boundary import compile_boundary
    from mesh.controller.reconciler import build_snapshot

    snapshot = build_snapshot(objects, mesh_namespace=mesh_namespace)
    plan = compile_boundary(snapshot, mesh_name)
    rules: list[str] = []
    if plan.policies:
        namespaces = {ns.name: ns.labels for ns in snapshot.namespaces}
        rules = translate(plan.policies, endpoints(), namespaces, firewall.chain)
    return [*firewall.apply(rules), *(f"# egress boundary: {w}" for w in plan.warnings)]


def container_addresses(api: Any, container: str) -> tuple[str, ...]:
    """Every address a container (a pod's sandbox) has on its Docker networks."""
    networks = api.inspect_container(container)["NetworkSettings"]["Networks"] or {}
    return tuple(sorted({n["IPAddress"] for n in networks.values() if n.get("IPAddress")}))


def named_ports(pod_spec: Mapping[str, Any]) -> dict[str, tuple[str, int]]:
    return {
        str(port["name"]): (str(port.get("protocol") or "TCP"), int(port["containerPort"]))
        for container in [*(pod_spec.get("initContainers") or ()), *(pod_spec.get("containers") or ())]
        for port in container.get("ports") or ()
        if port.get("name") and port.get("containerPort")
    }
