"""egress-mesh: a service mesh for egress control, compatible with osm-edge's egress API."""

__version__ = "0.1.0"
