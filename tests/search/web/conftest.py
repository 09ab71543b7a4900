"""Fixtures of the web-backend tests, and a guard that keeps every test on loopback.

``loopback_only`` (autouse) wraps ``socket.socket.connect``: any attempt to
connect to a non-loopback address fails the test before a packet is sent, and
every connection is recorded so tests can assert that a refusal happened
before connecting. Tests marked ``api`` talk to the real services and are exempt.
"""

from __future__ import annotations

import ipaddress
import socket

import pytest
from webtools import WebServer


@pytest.fixture
def web():
    server = WebServer()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def loopback_only(request, monkeypatch):
    """Fail any connection to a non-loopback address; record every connection.

    Tests marked ``api`` (real services, run only with a key) are exempt.
    """
    attempts: list[tuple[str, int]] = []
    if request.node.get_closest_marker("api"):
        return attempts
    real_connect = socket.socket.connect

    def guarded(self, address):
        host = address[0] if isinstance(address, tuple) else address
        attempts.append(address)
        try:
            loopback = ipaddress.ip_address(str(host).split("%")[0]).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise AssertionError(f"test tried to connect to non-loopback address {address}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    return attempts
