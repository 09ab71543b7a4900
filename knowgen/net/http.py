"""Outbound HTTP that cannot be aimed at internal addresses (an SSRF guard).

Every request of the web backends goes through :class:`SafeFetcher`: only
``http``/``https`` URLs without credentials; the host is resolved once (the
resolver is injectable) and every address must be public (loopback, private,
link-local, multicast, reserved, unspecified, carrier-grade NAT, site-local and
cloud metadata addresses are refused, also inside IPv6 forms: IPv4-mapped,
NAT64, 6to4, Teredo; names like ``localhost`` or ``*.internal`` are refused
unresolved); the connection goes to the checked address, never to a second
lookup (no DNS rebinding), while ``Host`` and TLS SNI carry the name; redirects
are followed by hand, each hop checked, credentials dropped when the host
changes; a byte cap, a per-operation timeout and a whole-fetch deadline apply;
environment proxies are ignored. ``allow_hosts`` (empty by default) names the
internal places that may be contacted anyway, e.g. a self-hosted service or a
test server, each as host and port: ``"127.0.0.1:8080"``, ``"[::1]:8080"`` or a
URL (``"http://10.0.0.5:8888"``); a bare host (``"10.0.0.5"``) means its default
ports 80 and 443 only, and ``"host:*"`` every port, which must be asked for.
Every hop of a redirect is matched against the same host-and-port list.

Example:
    >>> page = SafeFetcher(timeout=10).fetch("https://example.org/")
"""

from __future__ import annotations

import copy
import http.client
import ipaddress
import logging
import random
import re
import socket
import ssl
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

from knowgen.errors import ConfigError, ToolError
from knowgen.net.openai_client import parse_retry_after

logger = logging.getLogger(__name__)

#: ``resolver(host, port) -> IP addresses``; the default wraps ``socket.getaddrinfo``.
Resolver = Callable[[str, int], list[str]]

DEFAULT_USER_AGENT = "knowgen/0.1 (+https://github.com/knowgen/knowgen)"
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
#: Headers that never follow a redirect to another host.
SENSITIVE_HEADERS = frozenset({"authorization", "x-api-key", "cookie", "proxy-authorization"})

#: Cloud instance-metadata and platform addresses (some are in public ranges).
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, ...
    "169.254.170.2", "169.254.169.123",  # AWS ECS task metadata, AWS time service
    "100.100.100.200", "168.63.129.16",  # Alibaba Cloud, Azure WireServer
    "192.0.0.192",  # Oracle Cloud
    "fd00:ec2::254", "fd00:ec2::123",  # AWS metadata and time service over IPv6
))
_NAMED_NETS = (
    (ipaddress.ip_network("100.64.0.0/10"), "a carrier-grade NAT address"),
    (ipaddress.ip_network("fec0::/10"), "a site-local IPv6 address"),
    (ipaddress.ip_network("64:ff9b:1::/48"), "a local-use NAT64 address"),
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_BLOCKED_NAMES = frozenset({"localhost", "metadata", "metadata.google.internal",
                            "metadata.goog", "instance-data", "instance-data.ec2.internal"})
_BLOCKED_SUFFIXES = (".localhost", ".local", ".internal", ".localdomain", ".home.arpa")
_CHECKS = tuple((f"is_{kind.replace('-', '_')}", f"a {kind} address") for kind in (
    "unspecified", "loopback", "link-local", "multicast", "reserved", "private"))
_IPV4_LOOSE = re.compile(r"[0-9a-fA-Fx.]+")
_HINTS = {401: "check the API key", 403: "check the API key and its permissions",
          404: "check the URL"}


class UrlRefused(ToolError):
    """The URL may not be fetched (bad scheme, internal address, ...)."""


class FetchError(ToolError):
    """A fetch failed; ``status`` (HTTP status or None), ``retryable``, ``retry_after`` (s)."""

    def __init__(self, message: str, status: int | None = None, retryable: bool = False,
                 retry_after: float | None = None):
        super().__init__(message)
        self.status, self.retryable, self.retry_after = status, retryable, retry_after


def system_resolver(host: str, port: int) -> list[str]:
    """All addresses of ``host`` from ``socket.getaddrinfo``, in its order, without repeats."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def address_refusal(address: str) -> str | None:
    """Why the IP ``address`` may not be contacted, or ``None`` when it is public."""
    try:
        ip = ipaddress.ip_address(str(address).split("%", 1)[0])
    except ValueError:
        return f"{address!r} is not an IP address"
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner is not None:
            reason = address_refusal(str(inner))
            return f"{reason} (inside {ip})" if reason else None
    for net, reason in _NAMED_NETS:
        if ip.version == net.version and ip in net:
            return reason
    for attr, reason in _CHECKS:
        if getattr(ip, attr):
            return reason
    return None if ip.is_global else "not a public address"


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)


def ip_literal(host: str) -> str | None:
    """``host`` as a canonical IP string if it is one (``127.1`` and ``0x7f.1`` included)."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if _IPV4_LOOSE.fullmatch(host) and any(c.isdigit() for c in host):
        try:
            return socket.inet_ntoa(socket.inet_aton(host))
        except OSError:
            return None
    return None


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect and what to ask for."""

    url: str
    scheme: str
    host: str
    port: int
    path: str
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class Response:
    """A final HTTP response: the URL that answered (after redirects), its status, headers
    (names in lower case), body (at most the byte cap) and whether the body was cut there."""

    url: str
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    truncated: bool = False

    @property
    def content_type(self) -> str:
        """The media type, lower case, without parameters ("" when absent)."""
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()

    @property
    def charset(self) -> str | None:
        """The ``charset`` parameter of ``Content-Type``, if any."""
        header = self.headers.get("content-type", "")
        match = re.search(r"charset=[\"']?([\w.:-]+)", header, re.IGNORECASE)
        return match.group(1) if match else None

    def text(self) -> str:
        """The body decoded with its charset (UTF-8 when absent or unknown)."""
        try:
            return self.body.decode(self.charset or "utf-8", errors="replace")
        except LookupError:
            return self.body.decode("utf-8", errors="replace")


class _PinnedConnection(http.client.HTTPConnection):
    """HTTP(S) to a fixed, checked address; ``Host``, SNI and the certificate use the name."""

    def __init__(self, host: str, port: int, address: str, timeout: float,
                 context: ssl.SSLContext | None = None):
        super().__init__(host, port, timeout=timeout)
        self.address, self.tls_context = address, context
        self.default_port = 443 if context else 80

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)
        if self.tls_context is not None:
            self.sock = self.tls_context.wrap_socket(self.sock, server_hostname=self.host)


class SafeFetcher:
    """An HTTP client that refuses internal addresses at every hop.

    Args:
        timeout: Seconds one connect or read may take.
        max_bytes: Default cap on a response body.
        max_redirects: Redirects followed before giving up.
        total_timeout: Seconds the whole fetch may take, redirects included
            (default: three times ``timeout``).
        allow_hosts: Places exempt from the address check, as ``host:port``,
            ``[ipv6]:port``, a URL, a bare host (ports 80 and 443) or ``host:*``
            (every port); hosts are names or IP literals, matched exactly.
        resolver: ``resolver(host, port) -> addresses``; :func:`system_resolver` when None.
        user_agent: ``User-Agent`` header.
        ssl_context: TLS settings (default: the system's trusted CAs, hostname checked).
    """

    def __init__(self, *, timeout: float = 15.0, max_bytes: int = 5_000_000,
                 max_redirects: int = 5, total_timeout: float | None = None,
                 allow_hosts: Iterable[str] = (), resolver: Resolver | None = None,
                 user_agent: str = DEFAULT_USER_AGENT, ssl_context: ssl.SSLContext | None = None):
        if timeout <= 0 or max_bytes <= 0 or max_redirects < 0:
            raise ConfigError("timeout and max_bytes must be > 0 and max_redirects >= 0.")
        if isinstance(allow_hosts, str):
            allow_hosts = [allow_hosts]
        self.timeout, self.max_bytes = float(timeout), int(max_bytes)
        self.max_redirects = int(max_redirects)
        self.total_timeout = float(total_timeout or 3 * timeout)
        self.allow_hosts = frozenset(p for h in allow_hosts if str(h).strip()
                                     for p in allow_entry(h))
        self.resolver: Resolver = resolver or system_resolver
        self.user_agent = user_agent
        self.ssl_context = ssl_context or ssl.create_default_context()

    def with_allowed(self, hosts: Iterable[str]) -> SafeFetcher:
        """A copy of this fetcher that also allows ``hosts``."""
        clone = copy.copy(self)
        clone.allow_hosts = self.allow_hosts | {p for h in hosts if str(h).strip()
                                                for p in allow_entry(h)}
        return clone

    # -- checking ---------------------------------------------------------
    def check_url(self, url: str, *, resolve: bool = True) -> Target:
        """Validate ``url`` and resolve its host to addresses that may be contacted.

        With ``resolve=False`` only the URL and a literal host are checked (no lookup).

        Raises:
            UrlRefused: when the URL or any address of its host may not be contacted.
            FetchError: when the host cannot be resolved.
        """
        url = str(url or "").strip()
        shown = repr(url[:200])
        try:
            parts = urlsplit(url)
            scheme = parts.scheme.lower()
            port = parts.port or (443 if scheme == "https" else 80)
            host = _norm_host(parts.hostname or "")
        except (ValueError, UnicodeError):
            raise UrlRefused(f"Cannot fetch {shown}: the URL is malformed.") from None
        if scheme not in ("http", "https"):
            raise UrlRefused(f"Cannot fetch {shown}: only http:// and https:// URLs are allowed.")
        if parts.username is not None or parts.password is not None:
            raise UrlRefused(f"Refused {shown}: URLs with user names or passwords are not fetched.")
        if not host:
            raise UrlRefused(f"Cannot fetch {shown}: the URL has no host.")
        addresses = self._addresses(url, host, port, resolve)
        path = _requote(parts.path or "/") + (f"?{_requote(parts.query)}" if parts.query else "")
        return Target(url, scheme, host, port, path, tuple(addresses))

    def _addresses(self, url: str, host: str, port: int, resolve: bool) -> list[str]:
        allowed = (host, port) in self.allow_hosts or (host, ANY_PORT) in self.allow_hosts
        literal = ip_literal(host)
        if not allowed and literal is None and (
                host in _BLOCKED_NAMES or host.endswith(_BLOCKED_SUFFIXES)):
            raise UrlRefused(f"Refused {url[:200]!r}: {host} is an internal host name.")
        if literal is not None:
            addresses = [literal]
        elif not resolve:
            return []
        else:
            try:
                addresses = [str(a) for a in self.resolver(host, port)]
            except (OSError, UnicodeError) as exc:
                raise FetchError(f"Cannot resolve the host {host} ({type(exc).__name__}). "
                                 "Check the URL.") from None
            if not addresses:
                raise FetchError(f"The host {host} has no address. Check the URL.")
        if not allowed:
            for address in addresses:
                reason = address_refusal(address)
                if reason:
                    logger.warning("Refused %s: %s resolves to %s", url[:200], host, reason)
                    raise UrlRefused(f"Refused {url[:200]!r}: {host} is {reason} ({address}); "
                                     "only public web addresses can be fetched.")
        return addresses

    # -- fetching ---------------------------------------------------------
    def fetch(self, url: str, *, method: str = "GET", headers: dict[str, str] | None = None,
              body: bytes | None = None, max_bytes: int | None = None,
              allow_truncate: bool = False) -> Response:
        """Send one request, following redirects, and return the final response.

        ``max_bytes`` overrides the fetcher's cap; with ``allow_truncate`` a larger
        body is cut there instead of failing. A redirect that turns the request into
        a GET drops the body.

        Raises:
            UrlRefused: for a refused URL at any hop; FetchError: network failures, a
                body over the cap, too many redirects.
        """
        cap = int(max_bytes or self.max_bytes)
        deadline = time.monotonic() + self.total_timeout
        headers = dict(headers or {})
        for hop in range(self.max_redirects + 1):
            target = self.check_url(url)
            resp, location = self._send(target, method, headers, body, cap, allow_truncate,
                                        deadline)
            if location is None:
                return resp
            if hop == self.max_redirects:
                break
            next_url = urljoin(url, location)
            logger.debug("Redirect %d from %s to %s", resp.status, url, next_url)
            if resp.status == 303 or (resp.status in (301, 302) and method == "POST"):
                method, body = "GET", None
                headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
            moved = self.check_url(next_url, resolve=False)
            if (moved.scheme, moved.host, moved.port) != (target.scheme, target.host, target.port):
                headers = {k: v for k, v in headers.items() if k.lower() not in SENSITIVE_HEADERS}
            url = next_url
        raise FetchError(f"Gave up on {url[:200]!r} after {self.max_redirects} redirects.")

    def _send(self, target: Target, method: str, headers: dict[str, str], body: bytes | None,
              cap: int, allow_truncate: bool, deadline: float
              ) -> tuple[Response, str | None]:
        last_error: OSError | None = None
        for address in target.addresses:
            conn = self._connection(target, address, deadline)
            try:
                try:
                    conn.connect()
                except ssl.SSLError as exc:
                    raise _network_error(target, exc, self.timeout) from None
                except OSError as exc:  # this address is unreachable: try the next checked one
                    last_error = exc
                    continue
                return self._exchange(conn, target, method, headers, body, cap, allow_truncate,
                                      deadline)
            except OSError as exc:
                raise _network_error(target, exc, self.timeout) from None
            except http.client.HTTPException as exc:
                raise FetchError(f"{target.host} sent a malformed HTTP response "
                                 f"({type(exc).__name__}).", retryable=True) from None
            finally:
                conn.close()
        raise _network_error(target, last_error or OSError("no address"), self.timeout)

    def _connection(self, target: Target, address: str, deadline: float) -> _PinnedConnection:
        context = self.ssl_context if target.scheme == "https" else None
        return _PinnedConnection(target.host, target.port, address,
                                 _remaining(deadline, self.timeout, target), context)

    def _exchange(self, conn: http.client.HTTPConnection, target: Target, method: str,
                  headers: dict[str, str], body: bytes | None, cap: int, allow_truncate: bool,
                  deadline: float) -> tuple[Response, str | None]:
        sent = {"User-Agent": self.user_agent, "Accept": "*/*", **headers}
        conn.request(method, target.path, body=body, headers=sent)
        raw = conn.getresponse()
        resp_headers = {k.lower(): v for k, v in raw.getheaders()}
        location = resp_headers.get("location")
        if raw.status in REDIRECT_STATUSES and location:
            return Response(target.url, raw.status, resp_headers), location
        length = resp_headers.get("content-length", "").strip()
        if length.isdigit() and int(length) > cap and not allow_truncate:
            raise FetchError(f"{target.url[:200]} is too large ({length} bytes; the limit is "
                             f"{cap}).", status=raw.status)
        chunks, size, truncated = [], 0, False
        while True:
            if conn.sock is not None:
                conn.sock.settimeout(_remaining(deadline, self.timeout, target))
            chunk = raw.read(min(65536, cap + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > cap:
                if not allow_truncate:
                    raise FetchError(f"{target.url[:200]} is larger than the limit of {cap} "
                                     "bytes.", status=raw.status)
                truncated = True
                break
        data = b"".join(chunks)[:cap]
        return Response(target.url, raw.status, resp_headers, data, truncated), None


def _remaining(deadline: float, timeout: float, target: Target) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise FetchError(f"Fetching {target.url[:200]} took too long; try again later.",
                         retryable=True)
    return min(timeout, left)


def _network_error(target: Target, exc: BaseException, timeout: float) -> FetchError:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return FetchError(f"The TLS certificate of {target.host} could not be verified.")
    if isinstance(exc, TimeoutError):
        return FetchError(f"{target.host} did not answer within {timeout:g} s; try again "
                          "later.", retryable=True)
    return FetchError(f"Could not connect to {target.host} ({type(exc).__name__}); try again "
                      "later or use another URL.", retryable=True)


ANY_PORT = -1
"""The port of an ``allow_hosts`` entry written ``host:*``."""


def allow_entry(entry: str) -> list[tuple[str, int]]:
    """The ``(host, port)`` pairs one ``allow_hosts`` entry admits.

    ``"127.0.0.1:8080"`` and ``"[::1]:8080"`` admit that port, a URL its port
    (or its scheme's default), a bare host (``"example.test"``, ``"::1"``,
    ``"[::1]"``) ports 80 and 443, and ``"host:*"`` every port (:data:`ANY_PORT`).

    Raises:
        ConfigError: for an entry whose port is not a number from 1 to 65535 or ``*``.
    """
    text = str(entry).strip()
    if "://" in text:
        parts = urlsplit(text)
        try:
            port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
        except ValueError:
            raise ConfigError(f"allow_hosts entry {text!r} has an invalid port.") from None
        return [(_norm_host(parts.hostname or ""), port)]
    host, port_text = text, ""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    if not port_text:
        return [(_norm_host(host), 80), (_norm_host(host), 443)]
    if port_text == "*":
        return [(_norm_host(host), ANY_PORT)]
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ConfigError(f"allow_hosts entry {text!r}: the port must be a number from 1 to "
                          "65535, or * for every port.")
    return [(_norm_host(host), int(port_text))]


def _norm_host(host: str) -> str:
    host = str(host).strip().strip("[]").rstrip(".").lower()
    return host if host.isascii() else host.encode("idna").decode("ascii")


def _requote(text: str) -> str:
    """Percent-encode characters that may not appear in a request line, keeping escapes."""
    return quote(text, safe="/%:@!$&'()*+,;=?-._~")


class ServiceClient:
    """Calls one web API through a :class:`SafeFetcher` with bounded retries.

    HTTP 408, 429 and 5xx, timeouts and connection errors are retried with
    exponential backoff and jitter (``Retry-After`` honoured up to ``backoff_max``),
    each retry logged at WARNING. Failures surface as :class:`FetchError`
    (a :class:`~knowgen.errors.ToolError`) with ``secrets`` scrubbed.

    Args:
        service: Name used in messages, e.g. ``"Serper"``.
        fetcher: The guarded fetcher.
        max_retries: Retries after the first attempt; ``backoff_base`` is the first
            delay in seconds (doubling), ``backoff_max`` the longest.
        secrets: Strings never to show in a message.
        sleep: The sleeping function (tests pass a fast one).
    """

    def __init__(self, service: str, fetcher: SafeFetcher, *, max_retries: int = 3,
                 backoff_base: float = 1.0, backoff_max: float = 30.0,
                 secrets: Iterable[str] = (), sleep: Callable[[float], None] = time.sleep):
        if max_retries < 0 or backoff_base < 0:
            raise ConfigError("max_retries and backoff_base must be >= 0.")
        self.service, self.fetcher = service, fetcher
        self.max_retries, self.backoff_base = int(max_retries), float(backoff_base)
        self.backoff_max = float(backoff_max)
        self._secrets = [s for s in secrets if s]
        self._sleep = sleep

    def call(self, url: str, *, method: str = "GET", headers: dict[str, str] | None = None,
             body: bytes | None = None, hints: dict[int, str] | None = None,
             **fetch_kwargs: Any) -> Response:
        """Send a request and return its 2xx response.

        ``hints`` maps a non-retryable status to advice for the message;
        ``fetch_kwargs`` go to :meth:`SafeFetcher.fetch`.

        Raises:
            ToolError: when the request is refused or keeps failing.
        """
        attempts = self.max_retries + 1
        for attempt in range(1, attempts + 1):
            try:
                resp = self.fetcher.fetch(url, method=method, headers=headers, body=body,
                                          **fetch_kwargs)
                if 200 <= resp.status < 300:
                    return resp
                error = self._status_error(resp, hints or {})
            except UrlRefused:
                raise
            except FetchError as exc:
                error = FetchError(self._scrub(str(exc)), exc.status, exc.retryable)
            if not error.retryable or attempts == 1:
                logger.warning("%s request failed: %s", self.service, error)
                raise error
            if attempt == attempts:
                break
            delay = self._delay(attempt, error.retry_after)
            logger.warning("%s request failed (%s); attempt %d of %d, retrying in %.2f s",
                           self.service, error, attempt, attempts, delay)
            self._sleep(delay)
        logger.warning("%s request failed after %d attempts: %s", self.service, attempts, error)
        raise FetchError(f"{self.service} kept failing after {attempts} attempts: {error}",
                         error.status, retryable=True)

    def _status_error(self, resp: Response, hints: dict[int, str]) -> FetchError:
        status = resp.status
        detail = self._scrub(resp.text()[:300].strip())
        detail = f" ({' '.join(detail.split())})" if detail else ""
        wait = parse_retry_after(resp.headers.get("retry-after"))
        if status == 429:
            return FetchError(f"{self.service} is rate limiting requests (HTTP 429); wait "
                              "before searching again.", status, True, wait)
        if status >= 500 or status == 408:
            return FetchError(f"{self.service} had a server error (HTTP {status}); try again "
                              "later.", status, True, wait)
        hint = hints.get(status) or _HINTS.get(status, "check the request")
        return FetchError(f"{self.service} answered HTTP {status}: {hint}{detail}.", status)

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(self.backoff_max, retry_after)
        step = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        return step / 2 + random.uniform(0, step / 2)

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text
