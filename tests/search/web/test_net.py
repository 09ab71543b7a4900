"""The SSRF guard: address policy, refusals before connecting, pinning, redirects, caps."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from webtools import Reply, mapping_resolver

from knowgen.errors import ToolError
from knowgen.net.http import (
    FetchError,
    SafeFetcher,
    ServiceClient,
    UrlRefused,
    address_refusal,
    ip_literal,
)

# Each address below is internal by RFC or by cloud convention; the guard must refuse it.
INTERNAL = {
    "127.0.0.1": "loopback", "127.8.9.10": "loopback", "::1": "loopback",
    "10.1.2.3": "private", "172.16.0.1": "private", "192.168.1.1": "private",
    "fd12:3456::1": "private", "169.254.10.10": "link-local", "fe80::1": "link-local",
    "224.0.0.1": "multicast", "ff02::1": "multicast", "0.0.0.0": "unspecified",
    "::": "unspecified", "100.64.0.1": "carrier-grade NAT", "100.127.255.254": "carrier-grade NAT",
    "169.254.169.254": "metadata", "fd00:ec2::254": "metadata", "168.63.129.16": "metadata",
    "100.100.100.200": "metadata", "::ffff:127.0.0.1": "loopback", "::ffff:10.0.0.1": "private",
    "::ffff:169.254.169.254": "metadata", "64:ff9b::a9fe:a9fe": "metadata",
    "2002:c0a8:101::1": "private", "240.0.0.1": "reserved", "255.255.255.255": "",
    "fec0::1": "site-local", "198.18.0.1": "private", "192.0.2.1": "private",
}
PUBLIC = ["93.184.216.34", "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111",
          "::ffff:8.8.8.8", "64:ff9b::808:808"]


@pytest.mark.parametrize("address", sorted(INTERNAL))
def test_internal_addresses_refused(address):
    reason = address_refusal(address)
    assert reason is not None
    assert INTERNAL[address] in reason


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address):
    assert address_refusal(address) is None


@pytest.mark.parametrize("host,expected", [
    ("127.1", "127.0.0.1"), ("0x7f.0.0.1", "127.0.0.1"), ("2130706433", "127.0.0.1"),
    ("0177.0.0.1", "127.0.0.1"), ("::ffff:7f00:1", "::ffff:7f00:1"), ("example.org", None),
    ("1e100.net", None), ("cafe", None),
])
def test_ip_literal_forms(host, expected):
    assert ip_literal(host) == expected


@pytest.mark.parametrize("url,fragment", [
    ("ftp://example.org/x", "only http"), ("file:///etc/passwd", "only http"),
    ("gopher://x/", "only http"), ("javascript:alert(1)", "only http"), ("", "only http"),
    ("http://user:pw@example.org/", "user names"), ("http:///nohost", "no host"),
    ("http://[::1/", "malformed"), ("http://example.org:99999/", "malformed"),
    ("http://" + "x" * 70 + ".bücher.example/", "malformed"),
    ("http://localhost:8080/", "internal host name"),
    ("http://metadata.google.internal/computeMetadata/v1/", "internal host name"),
    ("http://printer.local/", "internal host name"),
    ("http://127.0.0.1:9/", "loopback"), ("http://[::1]:9/", "loopback"),
    ("http://2130706433/", "loopback"), ("http://0x7f.1/", "loopback"),
    ("http://169.254.169.254/latest/meta-data/", "metadata"),
    ("http://[fd00:ec2::254]/latest/", "metadata"),
    ("http://[::ffff:169.254.169.254]/", "metadata"),
    ("http://10.0.0.5/admin", "private"), ("http://100.64.1.1/", "carrier-grade"),
])
def test_refused_urls_never_connect(url, fragment, loopback_only):
    fetcher = SafeFetcher(resolver=mapping_resolver({}))
    with pytest.raises(UrlRefused) as err:
        fetcher.fetch(url)
    assert fragment in str(err.value)
    assert loopback_only == []


@pytest.mark.parametrize("addresses,fragment", [
    (["10.0.0.7"], "private"), (["169.254.169.254"], "metadata"),
    (["fd00:ec2::254"], "metadata"), (["::ffff:192.168.0.1"], "private"),
    (["127.0.0.1"], "loopback"), (["93.184.216.34", "10.0.0.7"], "private"),
    (["100.100.100.200"], "metadata"),
])
def test_names_resolving_inside_are_refused_before_connecting(addresses, fragment, loopback_only):
    calls: list[str] = []
    fetcher = SafeFetcher(resolver=mapping_resolver({"evil.test": addresses}, calls))
    with pytest.raises(UrlRefused) as err:
        fetcher.fetch("https://evil.test/steal")
    assert fragment in str(err.value) and "evil.test" in str(err.value)
    assert calls == ["evil.test"]
    assert loopback_only == []


def test_unresolvable_host_is_a_tool_error(loopback_only):
    fetcher = SafeFetcher(resolver=mapping_resolver({}))
    with pytest.raises(FetchError, match="Cannot resolve"):
        fetcher.fetch("http://nowhere.test/")
    assert loopback_only == []


def test_loopback_needs_the_allow_list(web):
    web.route("/hello", Reply(200, "<p>hi</p>"))
    with pytest.raises(UrlRefused):
        SafeFetcher().fetch(web.url("/hello"))
    assert web.requests == []
    resp = SafeFetcher(allow_hosts=[web.url()]).fetch(web.url("/hello"))
    assert resp.status == 200 and resp.body == b"<p>hi</p>"
    assert resp.content_type == "text/html" and resp.charset == "utf-8"


def test_connects_to_the_checked_address_with_the_name_in_host(web, loopback_only):
    """The name is resolved once; the socket goes to that address; Host carries the name."""
    web.route("/page", Reply(200, "ok", {"Content-Type": "text/plain"}))
    calls: list[str] = []
    fetcher = SafeFetcher(allow_hosts=[f"pinned.test:{web.port}"],
                          resolver=mapping_resolver({"pinned.test": ["127.0.0.1"]}, calls))
    resp = fetcher.fetch(f"http://pinned.test:{web.port}/page")
    assert resp.body == b"ok"
    assert calls == ["pinned.test"]
    assert loopback_only == [("127.0.0.1", web.port)]
    assert web.hits("/page")[0].headers["host"] == f"pinned.test:{web.port}"


def test_rebinding_cannot_swap_the_address_after_the_check(web, loopback_only):
    """A resolver that answers differently on a second lookup is never asked twice."""
    web.route("/r", Reply(200, "first"))
    answers = iter([["127.0.0.1"], ["169.254.169.254"]])
    fetcher = SafeFetcher(allow_hosts=[f"flip.test:{web.port}"], resolver=lambda h, p: next(answers))
    assert fetcher.fetch(f"http://flip.test:{web.port}/r").body == b"first"
    assert loopback_only == [("127.0.0.1", web.port)]


def test_redirects_are_followed_and_each_hop_checked(web):
    web.route("/a", Reply(302, "", {"Location": "/b"}))
    web.route("/b", Reply(301, "", {"Location": web.url("/c?x=1")}))
    web.route("/c", Reply(200, "final", {"Content-Type": "text/plain"}))
    resp = SafeFetcher(allow_hosts=[web.url()]).fetch(web.url("/a"))
    assert resp.body == b"final" and resp.url == web.url("/c?x=1")
    assert [r.path for r in web.requests] == ["/a", "/b", "/c"]


def test_redirect_to_a_private_address_is_refused(web, loopback_only):
    web.route("/start", Reply(302, "", {"Location": "http://intranet.test/secrets"}))
    web.route("/meta", Reply(307, "", {"Location": "http://169.254.169.254/latest/meta-data/"}))
    resolver = mapping_resolver({"intranet.test": ["10.20.30.40"]})
    fetcher = SafeFetcher(allow_hosts=[web.url()], resolver=resolver)
    with pytest.raises(UrlRefused, match="private"):
        fetcher.fetch(web.url("/start"))
    with pytest.raises(UrlRefused, match="metadata"):
        fetcher.fetch(web.url("/meta"))
    assert all(addr[0] == "127.0.0.1" for addr in loopback_only)
    assert len(loopback_only) == 2


def test_redirect_loop_stops(web):
    web.route("/loop", Reply(302, "", {"Location": "/loop"}))
    with pytest.raises(FetchError, match="after 5 redirects"):
        SafeFetcher(allow_hosts=[web.url()]).fetch(web.url("/loop"))
    assert len(web.hits("/loop")) == 6


def test_303_turns_post_into_get_and_credentials_stay_on_their_host(web):
    other = f"http://localhost.test:{web.port}/other"
    web.route("/form", Reply(303, "", {"Location": "/done"}))
    web.route("/done", Reply(200, "done"))
    web.route("/away", Reply(307, "", {"Location": other}))
    web.route("/other", Reply(200, "other"))
    fetcher = SafeFetcher(allow_hosts=[web.url(), f"localhost.test:{web.port}"],
                          resolver=mapping_resolver({"localhost.test": ["127.0.0.1"]}))
    fetcher.fetch(web.url("/form"), method="POST", body=b'{"a": 1}',
                  headers={"Content-Type": "application/json", "X-API-KEY": "k1"})
    done = web.hits("/done")[0]
    assert done.method == "GET" and done.body == b"" and "content-type" not in done.headers
    assert done.headers["x-api-key"] == "k1"  # same host: kept
    fetcher.fetch(web.url("/away"), headers={"Authorization": "Bearer s", "X-API-KEY": "k2"})
    moved = web.hits("/other")[0]
    assert "authorization" not in moved.headers and "x-api-key" not in moved.headers


def test_byte_cap_with_and_without_content_length(web):
    web.route("/big", Reply(200, b"x" * 5000, {"Content-Type": "text/plain"}))
    web.route("/stream", Reply(200, b"y" * 5000, {"Content-Type": "text/plain"},
                               content_length=False))
    fetcher = SafeFetcher(allow_hosts=[web.url()], max_bytes=1000)
    with pytest.raises(FetchError, match="too large"):
        fetcher.fetch(web.url("/big"))
    with pytest.raises(FetchError, match="larger than the limit"):
        fetcher.fetch(web.url("/stream"))
    cut = fetcher.fetch(web.url("/stream"), allow_truncate=True)
    assert cut.truncated and cut.body == b"y" * 1000


def test_slow_server_times_out(web):
    def slow(_req):
        time.sleep(1.5)
        return Reply(200, "late")

    web.route("/slow", slow)
    fetcher = SafeFetcher(allow_hosts=[web.url()], timeout=0.3)
    start = time.monotonic()
    with pytest.raises(FetchError, match="did not answer") as err:
        fetcher.fetch(web.url("/slow"))
    assert err.value.retryable and time.monotonic() - start < 1.4


def test_closed_port_is_a_retryable_tool_error():
    with pytest.raises(FetchError, match="Could not connect") as err:
        SafeFetcher(allow_hosts=["127.0.0.1:9"], timeout=2).fetch("http://127.0.0.1:9/")
    assert err.value.retryable and isinstance(err.value, ToolError)


def test_service_client_retries_429_and_5xx_then_succeeds(web, caplog):
    replies = iter([Reply(429, "slow down", {"Retry-After": "0"}), Reply(503, "busy"),
                    Reply(200, {"ok": True})])
    web.route("/api", lambda _r: next(replies))
    sleeps: list[float] = []
    client = ServiceClient("Test API", SafeFetcher(allow_hosts=[web.url()]), max_retries=3,
                           backoff_base=0.5, sleep=sleeps.append)
    resp = client.call(web.url("/api"))
    assert resp.status == 200 and len(web.hits("/api")) == 3
    assert sleeps[0] == 0.0 and 0.5 <= sleeps[1] <= 1.0
    assert sum("retrying" in r.message for r in caplog.records if r.levelname == "WARNING") == 2


def test_service_client_gives_up_with_an_actionable_message(web):
    web.route("/down", Reply(500, "boom"))
    web.route("/auth", Reply(401, "bad key sk-secret-123"))
    client = ServiceClient("Test API", SafeFetcher(allow_hosts=[web.url()]), max_retries=2,
                           backoff_base=0, secrets=["sk-secret-123"], sleep=lambda s: None)
    with pytest.raises(ToolError, match="kept failing after 3 attempts.*HTTP 500"):
        client.call(web.url("/down"))
    with pytest.raises(ToolError, match="HTTP 401: check the API key") as err:
        client.call(web.url("/auth"))
    assert "sk-secret-123" not in str(err.value) and "***" in str(err.value)
    assert len(web.hits("/down")) == 3 and len(web.hits("/auth")) == 1


@pytest.fixture
def tls_server(tmp_path):
    """An HTTPS server on 127.0.0.1 with a self-signed certificate for secure.test."""
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj",
                    "/CN=secure.test", "-addext", "subjectAltName=DNS:secure.test",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    seen: list[str | None] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = f"host={self.headers['Host']}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.sni_callback = lambda sock, name, _ctx: seen.append(name)
    httpd = HTTPServer(("127.0.0.1", 0), Handler)
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield httpd.server_address[1], cert, seen
    httpd.shutdown()
    httpd.server_close()


def test_https_sends_sni_and_checks_the_certificate_for_the_name(tls_server, loopback_only):
    port, cert, seen = tls_server
    client_ctx = ssl.create_default_context(cafile=str(cert))
    resolver = mapping_resolver({"secure.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
    fetcher = SafeFetcher(allow_hosts=[f"secure.test:{port}", f"other.test:{port}"], resolver=resolver,
                          ssl_context=client_ctx)
    resp = fetcher.fetch(f"https://secure.test:{port}/")
    assert resp.body == f"host=secure.test:{port}".encode()
    assert seen == ["secure.test"]
    assert loopback_only == [("127.0.0.1", port)]
    with pytest.raises(FetchError, match="certificate"):
        fetcher.fetch(f"https://other.test:{port}/")


def test_unsafe_characters_are_quoted_and_idn_hosts_encoded(web):
    web.route("/wiki/C%C3%B4te%20d'Ivoire", Reply(200, "ok"))
    fetcher = SafeFetcher(allow_hosts=[web.url()])
    assert fetcher.fetch(web.url("/wiki/Côte d'Ivoire")).body == b"ok"
    calls: list[str] = []
    idn = SafeFetcher(resolver=mapping_resolver({"xn--bcher-kva.example": ["10.9.9.9"]}, calls))
    with pytest.raises(UrlRefused, match="private"):
        idn.fetch("http://Bücher.example/")
    assert calls == ["xn--bcher-kva.example"]


def test_ipv6_loopback_server_when_allowed():
    import socket as _socket
    from http.server import ThreadingHTTPServer

    class V6(ThreadingHTTPServer):
        address_family = _socket.AF_INET6

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = self.headers["Host"].encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    try:
        httpd = V6(("::1", 0), Handler)
    except OSError:
        pytest.skip("no IPv6 loopback here")
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        port = httpd.server_address[1]
        with pytest.raises(UrlRefused, match="loopback"):
            SafeFetcher().fetch(f"http://[::1]:{port}/")
        resp = SafeFetcher(allow_hosts=[f"[::1]:{port}"]).fetch(f"http://[::1]:{port}/")
        assert resp.body == f"[::1]:{port}".encode()
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_redirect_to_a_loopback_host_off_the_allow_list_is_refused(web, loopback_only):
    """An allow-listed loopback server cannot bounce the fetch to another loopback address."""
    from http.server import ThreadingHTTPServer

    reached: list[str] = []

    class Recorder(BaseHTTPRequestHandler):
        def do_GET(self):
            reached.append(self.path)
            body = b"internal secret"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    try:
        inner = ThreadingHTTPServer(("127.0.0.2", 0), Recorder)
    except OSError:
        pytest.skip("127.0.0.2 cannot be bound here")
    thread = threading.Thread(target=inner.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        inner_url = f"http://127.0.0.2:{inner.server_address[1]}/admin"
        web.route("/jump", Reply(302, "", {"Location": inner_url}))
        fetcher = SafeFetcher(allow_hosts=[web.url()])
        with pytest.raises(UrlRefused, match=r"127\.0\.0\.2 is a loopback address"):
            fetcher.fetch(web.url("/jump"))
        assert [r.path for r in web.requests] == ["/jump"]
        assert loopback_only == [("127.0.0.1", web.port)]
        assert reached == []
        # The inner server is real and reachable: the refusal came from the guard.
        allowed = SafeFetcher(allow_hosts=[web.url(), inner_url]).fetch(web.url("/jump"))
        assert allowed.body == b"internal secret" and reached == ["/admin"]
    finally:
        inner.shutdown()
        inner.server_close()


def test_allow_list_names_host_and_port_through_redirects(web, loopback_only):
    """Allow-listing one loopback server admits its port only, never the host's other ports."""
    from webtools import WebServer

    other = WebServer()  # a second real server on the same host, another port
    try:
        other.route("/admin", Reply(200, "internal secret"))
        web.route("/page", Reply(200, "ok"))
        web.route("/jump", Reply(302, "", {"Location": other.url("/admin")}))
        fetcher = SafeFetcher(allow_hosts=[f"127.0.0.1:{web.port}"])
        assert fetcher.fetch(web.url("/page")).body == b"ok"
        with pytest.raises(UrlRefused, match="loopback"):
            fetcher.fetch(other.url("/admin"))
        with pytest.raises(UrlRefused, match="loopback"):
            fetcher.fetch(web.url("/jump"))
        assert other.requests == [] and ("127.0.0.1", other.port) not in loopback_only
        # A bare host admits its default ports only; every port must be asked for with "*".
        with pytest.raises(UrlRefused):
            SafeFetcher(allow_hosts=["127.0.0.1"]).fetch(other.url("/admin"))
        assert other.requests == []
        assert SafeFetcher(allow_hosts=["127.0.0.1:*"]).fetch(web.url("/jump")).body \
            == b"internal secret"
        # The URL form names its port too, and a service client allows its own endpoint only.
        assert SafeFetcher(allow_hosts=[other.url()]).fetch(other.url("/admin")).status == 200
    finally:
        other.close()


@pytest.mark.parametrize(("entry", "pairs"), [
    ("127.0.0.1:8080", [("127.0.0.1", 8080)]),
    ("[::1]:8080", [("::1", 8080)]),
    ("::1", [("::1", 80), ("::1", 443)]),
    ("[::1]", [("::1", 80), ("::1", 443)]),
    ("Example.TEST", [("example.test", 80), ("example.test", 443)]),
    ("https://svc.test/api", [("svc.test", 443)]),
    ("http://svc.test:8888", [("svc.test", 8888)]),
    ("svc.test:*", [("svc.test", -1)]),
])
def test_allow_entry_forms(entry, pairs):
    from knowgen.net.http import allow_entry

    assert allow_entry(entry) == pairs


@pytest.mark.parametrize("entry", ["host:0", "host:65536", "host:http", "http://h:99999"])
def test_allow_entry_refuses_bad_ports(entry):
    from knowgen.errors import ConfigError
    from knowgen.net.http import allow_entry

    with pytest.raises(ConfigError, match="port"):
        allow_entry(entry)
