"""Host names in their one normal form: what policies, compiled configs and decisions compare.

DESIGN section 1: egress-mesh normalises hosts (case, trailing dot) where osm-edge compares them
as written. ``normalise_host`` is the one definition; the checks on top (which names are valid
where) stay with their callers.
"""

from __future__ import annotations

import ipaddress

#: the blanks a header value or a policy field may carry around a name (never Unicode spaces:
#: a name ending in U+00A0 is not the name without it)
BLANKS = " \t"


def normalise_host(host: str) -> str:
    """Lower case, surrounding blanks and one trailing dot removed, IP literals in canonical form
    (``[2001:DB8::1]`` -> ``2001:db8::1``), international names in ASCII (``Bücher.de`` ->
    ``xn--bcher-kva.de``); a wildcard's leading ``*.`` stays. UnicodeError for a name IDNA
    cannot encode."""
    host = host.strip(BLANKS).lower()
    if host.endswith("."):
        host = host[:-1]
    try:
        return str(ipaddress.ip_address(host[1:-1] if host.startswith("[") and host.endswith("]") else host))
    except ValueError:
        pass
    if host.isascii():
        return host
    prefix, rest = ("*.", host[2:]) if host.startswith("*.") else ("", host)
    return prefix + rest.encode("idna").decode("ascii")
