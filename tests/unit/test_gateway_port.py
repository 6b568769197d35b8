"""The gateway port is one fact (mesh/api/proxyconfig.py GATEWAY_PORT): the controller, the gateway
program and the server's default use it."""

from __future__ import annotations

import inspect

from mesh.api.proxyconfig import GATEWAY_PORT


def test_the_gateway_and_the_controller_use_the_api_port():
    from mesh.controller import reconciler
    from mesh.gateway import __main__ as gateway_main
    from mesh.gateway.server import Gateway

    assert reconciler.GATEWAY_PORT is GATEWAY_PORT
    assert gateway_main.GATEWAY_PORT is GATEWAY_PORT
    assert inspect.signature(Gateway.start).parameters["port"].default == GATEWAY_PORT
