"""Options of the test suite, and the network rule every test runs under."""

import ipaddress
import socket

import pytest


def pytest_addoption(parser):
    parser.addoption("--clip-weights", default=None, metavar="FILE",
                     help="open_clip weights file for the tests marked 'weights' (e.g. a "
                     "ViT-B-32 checkpoint); without it they are skipped")
    parser.addoption("--clip-model", default="ViT-B-32",
                     help="open_clip model name of --clip-weights (default: ViT-B-32)")


LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_local(host) -> bool:
    """Whether ``host`` names this machine: a loopback name or address, or the unspecified
    address of a server that binds (``None``, ``""``, ``0.0.0.0``, ``::``)."""
    if host is None:
        return True
    name = host.decode() if isinstance(host, bytes) else str(host)
    if name in LOOPBACK_NAMES or name == "":
        return True
    try:
        address = ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


@pytest.fixture(autouse=True)
def loopback_only(request, monkeypatch):
    """Tests reach 127.0.0.0/8 and ::1 only. A lookup of any other name and a TCP
    connection to any other address are refused before anything leaves the machine, and
    the test that tried fails, whichever thread tried (a library's background report
    included). Tests of refusing other addresses inject their own resolver instead.

    Tests marked ``api`` (run only when a service's key is set) reach that service and
    are left alone. Yields the hosts refused so far; a test that expects a refusal
    checks them and clears the list.
    """
    tried = []
    if request.node.get_closest_marker("api"):
        yield tried
        return
    resolve = socket.getaddrinfo
    connect, connect_ex = socket.socket.connect, socket.socket.connect_ex

    def refuse(host):
        tried.append(host)
        return f"tests reach loopback addresses only, not {host!r}"

    def getaddrinfo(host, *args, **kwargs):
        if not is_local(host):
            raise socket.gaierror(socket.EAI_NONAME, refuse(host))
        return resolve(host, *args, **kwargs)

    def checked(sock, address):
        if (sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM
                and not is_local(address[0])):
            raise ConnectionRefusedError(refuse(address[0]))

    def guarded_connect(sock, address):
        checked(sock, address)
        return connect(sock, address)

    def guarded_connect_ex(sock, address):
        checked(sock, address)
        return connect_ex(sock, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", guarded_connect_ex)
    yield tried
    assert not tried, f"the test tried to reach {tried}: tests send traffic to 127.0.0.0/8 only"


@pytest.fixture
def hub_offline(monkeypatch):
    """The Hugging Face Hub's offline mode, as a user gets it with ``HF_HUB_OFFLINE=1``.

    huggingface_hub reads that variable once, when it is imported, so setting it during
    the session changes nothing: the read value is replaced as well.
    """
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
