"""Each row of the summary matrix as a picture: the traffic path of that mode (pod, sidecar, egress
gateway, httpbin.org / httpstat.us) with the observed result on each edge, as a Mermaid flowchart
(GitHub renders ```mermaid blocks in Markdown)."""

from __future__ import annotations

from mesh.api.proxyconfig import GATEWAY_PORT
from scenarios.demo.matrix import DESTINATIONS, Cell, Row, build, row_labels
from scenarios.demo.model import DemoRun
from scenarios.demo.text import t


def _node(host: str) -> str:
    return host.replace(".", "_")


def _label(text: str) -> str:
    return '"' + text.replace('"', "#quot;") + '"'


def _edge(source: str, cell: Cell, target: str, lang: str, via: str = "") -> str:
    """``source -- result --> target``: solid when it went through, ``x`` when refused, dotted when
    nothing connected or the scenario did not run."""
    text = _label(cell.text(lang) + (f" ({via})" if via else ""))
    observed = cell.observed
    if observed is None:
        return f"  {source} -. {text} .-> {target}"
    if observed.status is None:
        return f"  {source} -. {text} .-x {target}"
    if observed.status >= 400:
        return f"  {source} -- {text} --x {target}"
    return f"  {source} -- {text} --> {target}"


def mermaid(row: Row, cells: dict[str, Cell], lang: str) -> str:
    mode, _policy = row
    lines = ["flowchart LR", f"  pod[{_label(t('client_pod', lang))}]"]
    lines += [f"  {_node(host)}[{_label(host)}]" for host in DESTINATIONS]
    if mode == "disabled":
        lines.append(f"  sidecar[{_label(t('sidecar_no_listener', lang))}]")
        lines += [_edge("pod", cells[host], "sidecar", lang, host) for host in DESTINATIONS]
        return "\n".join(lines)
    lines += [f"  sidecar[{_label(t('sidecar', lang))}]", "  pod --> sidecar"]
    if mode == "passthrough":
        lines += [_edge("sidecar", cells[host], _node(host), lang) for host in DESTINATIONS]
        return "\n".join(lines)
    lines.append(f"  gateway[{_label(t('gateway', lang))}]")
    through = [h for h in DESTINATIONS if cells[h].observed is None or (cells[h].observed.status or 0) < 400]
    if through:
        lines.append(f"  sidecar -- {_label(f'CONNECT :{GATEWAY_PORT}')} --> gateway")
    for host in DESTINATIONS:
        source = "gateway" if host in through else "sidecar"
        lines.append(_edge(source, cells[host], _node(host), lang))
    return "\n".join(lines)


def to_markdown(run: DemoRun) -> str:
    """A heading and a Mermaid block per matrix row."""
    parts = [f"### {t('traffic_paths', run.lang)}\n"]
    for row, cells in build(run).items():
        mode, policy = row_labels(row, run.lang)
        title = mode if policy == "-" else f"{mode} · {policy}"
        parts.append(f"**{title}**\n\n```mermaid\n{mermaid(row, cells, run.lang)}\n```\n")
    return "\n".join(parts)
