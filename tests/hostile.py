"""Hostile manifests (issue 10): the one copy the controller, meshctl and Docker backend tests share."""

from __future__ import annotations

#: 5,000 levels of nesting in 10 KB: an Egress whose spec is a list in a list in a list...
DEEP_5000 = "apiVersion: policy.openservicemesh.io/v1alpha1\nkind: Egress\nspec:\n" + "- " * 5000 + "x\n"
#: the same in flow style
DEEP_FLOW = "apiVersion: policy.openservicemesh.io/v1alpha1\nkind: Egress\nspec: " + "[" * 5000 + "]" * 5000

#: "billion laughs": 9 lines, about 600 bytes, 9**9 values once the aliases are expanded
ALIAS_BOMB = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: lol, namespace: default}\n" + "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}' if prev else 'lol'] * 9)}]\n"
    for prev, name in zip(["", *"abcdefgh"], "abcdefghi", strict=True)
)

#: an alias inside the collection it names: a structure that contains itself
RECURSIVE = "apiVersion: v1\nkind: ConfigMap\nmetadata: &m {name: loop, namespace: default, self: *m}\n"

#: a 5,000-digit integer (Python refuses to convert more than 4,300 digits)
HUGE_INTEGER = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big, namespace: default}\nn: " + "9" * 5000

#: the 13th month: a timestamp YAML recognises but Python cannot build
BAD_TIMESTAMP = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: when, namespace: default}\nt: 2024-13-45\n"

#: an Egress whose metadata is a string, and a List whose items are not objects
ODD_SHAPES = (
    "apiVersion: policy.openservicemesh.io/v1alpha1\nkind: Egress\nmetadata: just-a-string\n"
    "---\napiVersion: v1\nkind: List\nitems: [1, two, [3]]\n"
)

#: name -> text, each refused with a message naming the file
ALL = {
    "deep.yaml": DEEP_5000,
    "deep-flow.yaml": DEEP_FLOW,
    "bomb.yaml": ALIAS_BOMB,
    "recursive.yaml": RECURSIVE,
    "huge-integer.yaml": HUGE_INTEGER,
    "bad-timestamp.yaml": BAD_TIMESTAMP,
}


def large_manifest(count: int = 16_000) -> str:
    """A valid multi-document manifest of ``count`` Egresses (16,000: about 6.3 MB), one identity each."""
    return "---\n".join(
        f"""apiVersion: policy.openservicemesh.io/v1alpha1
kind: Egress
metadata:
  name: egress-{i}
  namespace: team-{i % 50}
spec:
  sources:
  - kind: ServiceAccount
    name: app-{i}
    namespace: team-{i % 50}
  hosts:
  - host-{i}.example.com
  - www.host-{i}.example.com
  - api.host-{i}.example.com
  ipAddresses:
  - 10.{i % 250}.0.0/16
  ports:
  - number: 80
    protocol: http
  - number: 443
    protocol: https
"""
        for i in range(count)
    )
