"""The suite's network rule (``tests/conftest.py``): loopback only, checked before sending."""

import socket

import pytest


def test_other_hosts_are_refused_before_anything_is_sent(loopback_only):
    with pytest.raises(socket.gaierror, match="loopback addresses only"):
        socket.getaddrinfo("example.invalid", 80)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        with pytest.raises(ConnectionRefusedError, match="loopback addresses only"):
            sock.connect(("192.0.2.1", 80))  # a documentation address (TEST-NET-1)
        with pytest.raises(ConnectionRefusedError, match="loopback addresses only"):
            sock.connect_ex(("192.0.2.2", 80))
    assert loopback_only == ["example.invalid", "192.0.2.1", "192.0.2.2"]
    loopback_only.clear()  # refused as expected: not a failure of this test


def test_loopback_is_reached(loopback_only):
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        with socket.create_connection(("localhost", port), timeout=5):
            conn, _ = server.accept()
            conn.close()
    assert loopback_only == []


@pytest.mark.api
def test_api_tests_reach_their_service_unguarded():
    assert socket.getaddrinfo.__module__ == "socket"
    assert socket.socket.connect.__qualname__ != "loopback_only.<locals>.guarded_connect"
