"""The callbacks' HTTP transport: a host resolved once, every address checked, a checked one used.

httpcore pools connections per origin (scheme, host, port) and opens each one
through its network backend's ``connect_tcp(host, port)``. The backend here
resolves the host there, refuses the connection unless every address is
allowed (``CallbackPolicy.address_refusal``), and connects to those addresses
itself: TLS (SNI, the certificate's name) and the Host header keep the name,
while DNS gets no second answer between the check and the connection (DNS
rebinding). The URL itself is checked before each request, as at intake.

No proxy is used (a proxy would resolve the name itself) and redirects are
not followed (the client is made with ``follow_redirects=False``).
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Callable, Iterable

import httpcore
import httpx

from worker.callback_targets import CallbackPolicy, IPAddress
from worker.errors import MailpipeError

# host, port → its addresses, in the order to try them.
Resolver = Callable[[str, int], list[IPAddress]]


class CallbackRefusedError(MailpipeError):
    """The callback's target is not allowed (MAILPIPE_CALLBACK_ALLOWED): it is not sent."""

    kind = "permanent"


def system_resolver(host: str, port: int) -> list[IPAddress]:
    """The host's addresses from the system's resolver (getaddrinfo), without repeats."""
    found: list[IPAddress] = []
    for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])  # no IPv6 zone
        if address not in found:
            found.append(address)
    return found


class _CheckedBackend(httpcore.NetworkBackend):
    """httpcore's own socket backend, given only addresses the policy allows."""

    def __init__(self, scheme: str, policy: CallbackPolicy, resolve: Resolver) -> None:
        self._scheme = scheme
        self._policy = policy
        self._resolve = resolve
        self._sockets = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = self._resolve(host, port)
        except (OSError, UnicodeError) as exc:
            raise httpcore.ConnectError(f"{host} does not resolve ({type(exc).__name__})") from exc
        if not addresses:
            raise httpcore.ConnectError(f"{host} has no address")
        for address in addresses:  # every one, not only the first: a later try may use it
            refusal = self._policy.address_refusal(self._scheme, host, port, address)
            if refusal is not None:
                raise CallbackRefusedError(refusal)
        failed: Exception | None = None
        for address in addresses:
            try:
                return self._sockets.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failed = exc
        assert failed is not None
        raise failed

    def sleep(self, seconds: float) -> None:
        self._sockets.sleep(seconds)


class CallbackTransport(httpx.BaseTransport):
    """An httpx transport that sends only where ``policy`` allows (raises CallbackRefusedError).

    ``resolve`` and ``verify`` are the system's resolver and certificate store
    unless given (tests give a resolver for names no DNS has, and their CA).
    """

    def __init__(
        self,
        policy: CallbackPolicy,
        *,
        resolve: Resolver = system_resolver,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self._policy = policy
        self._by_scheme = {
            scheme: _transport(_CheckedBackend(scheme, policy, resolve), verify)
            for scheme in ("http", "https")
        }

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        refusal = self._policy.url_refusal(str(request.url))
        if refusal is not None:
            raise CallbackRefusedError(refusal)
        return self._by_scheme[request.url.scheme].handle_request(request)

    def close(self) -> None:
        for transport in self._by_scheme.values():
            transport.close()


def _transport(
    backend: httpcore.NetworkBackend, verify: ssl.SSLContext | bool
) -> httpx.HTTPTransport:
    """httpx's transport (its request and error mapping) on a pool that connects through
    ``backend``: httpx has no argument for the backend, so its pool is replaced."""
    transport = httpx.HTTPTransport(verify=verify, trust_env=False)
    transport._pool = httpcore.ConnectionPool(
        ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
        network_backend=backend,
    )
    return transport
