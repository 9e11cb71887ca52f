"""Where callbacks may go (``MAILPIPE_CALLBACK_ALLOWED``): checked at intake and at send time.

Whoever may queue a notification chooses its ``callback_url``, and the worker
POSTs to it from inside the network: unchecked, that is a server-side request
forgery hole (the cloud metadata service at 169.254.169.254, an admin port on
localhost, the internal network). The setting lists the allowed targets,
comma-separated:

- ``hooks.example.com``: that host name; ``*.example.com``: any name under it;
- ``10.0.0.0/8``, ``127.0.0.1``, ``[fd00::/8]``: addresses in that network, which
  may then be private, loopback or link-local: only such an entry allows those;
- ``*``: any host whose addresses are all public;
- each may start with ``https://`` or ``http://`` and end with ``:PORT``. Without
  a scheme an entry allows https only; ``http://`` allows http and https. Without
  a port, any port.

Empty (the default) means ``*``: public addresses, over https.

Two checks, both pure: ``url_refusal`` reads the URL alone (at intake, and again
before each POST: no DNS), ``address_refusal`` judges each address the URL's
host resolves to (at send time, in the connection itself, so the address
checked is the address connected to and DNS cannot switch it in between).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

SETTING = "MAILPIPE_CALLBACK_ALLOWED"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
# NAT64's well-known prefix (RFC 6052) carries an IPv4 address in its last 32 bits.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Target:
    """One entry of the setting: what it allows, over which schemes, to which port."""

    text: str
    schemes: frozenset[str]
    port: int | None = None
    name: str | None = None  # exactly this host name
    suffix: str | None = None  # any name ending so (``*.example.com`` → ``.example.com``)
    network: IPNetwork | None = None  # any address in it, public or not
    public: bool = False  # ``*``: any host, public addresses only

    def serves(self, scheme: str, port: int) -> bool:
        return scheme in self.schemes and self.port in (None, port)

    def names(self, host: str) -> bool:
        """Does this entry allow ``host`` (a name or an address) where its addresses are public?"""
        return (
            self.public
            or self.name == host
            or (self.suffix is not None and host.endswith(self.suffix))
        )


@dataclass(frozen=True)
class CallbackPolicy:
    """The allowed targets; ``url_refusal`` and ``address_refusal`` say why one is not."""

    targets: tuple[Target, ...]

    @classmethod
    def parse(cls, entries: Iterable[str]) -> CallbackPolicy:
        """The policy of the setting's entries; ValueError naming a bad one. None: ``*``."""
        targets = tuple(parse_entry(entry) for entry in entries)
        return cls(targets or (parse_entry("*"),))

    def url_refusal(self, url: str) -> str | None:
        """Why callbacks may not go to ``url`` (one line, naming the setting), or None."""
        try:
            parts = urlsplit(url)
        except ValueError:  # an unclosed "[" (urllib: "Invalid IPv6 URL")
            return "must be an http or https URL with a host"
        scheme = parts.scheme.lower()
        host = _host(parts.hostname)
        try:
            port = parts.port or _DEFAULT_PORTS.get(scheme, 0)
        except ValueError:
            return "the URL's port is not a number from 1 to 65535"
        if scheme not in _DEFAULT_PORTS or not host:
            return "must be an http or https URL with a host"
        where = f"{scheme}://{_shown(host)}:{port}"
        serving = [t for t in self.targets if t.serves(scheme, port)]
        address = _address(host)
        if address is not None:
            return self.address_refusal(scheme, host, port, address)
        if _numeric(host):
            return f"{_shown(host)} is neither a host name nor an address written in full"
        if any(t.network is not None or (t.names(host) and not t.public) for t in serving):
            return None  # a listed name; or a listed network, which its addresses must be in
        if any(t.public for t in serving):
            if host == "localhost" or host.endswith(".localhost"):
                return f"{where} is not allowed: localhost is a loopback name ({SETTING})"
            return None
        return f"{where} is not allowed: {self._no_entry(scheme, port)}"

    def address_refusal(self, scheme: str, host: str, port: int, address: IPAddress) -> str | None:
        """Why a callback to ``host`` may not connect to ``address``, one it resolves to; or None.

        A private, loopback or link-local address needs a listed network that
        holds it; a public one, an entry naming the host (or ``*``).
        """
        address = _unwrapped(address)
        serving = [t for t in self.targets if t.serves(scheme, port)]
        if any(t.network is not None and address in t.network for t in serving):
            return None
        kind = address_kind(address)
        if _address(host) is not None:
            said, kind_said = str(address), f"{address} is {_a(kind)} address and"
        else:
            said = f"{_shown(host)} resolves to {address}"
            kind_said = f"{said}, {_a(kind)} address, and"
        if kind is not None:
            return f"{kind_said} no network in {SETTING} holds it"
        if any(t.names(host) for t in serving):
            return None
        return f"{said}: {self._no_entry(scheme, port)}"

    def _no_entry(self, scheme: str, port: int) -> str:
        if scheme == "http" and not any(t.serves("http", port) for t in self.targets):
            return f"http needs an entry starting with http:// in {SETTING}"
        return f"no entry of {SETTING} allows it"


def address_kind(address: IPAddress) -> str | None:
    """What kind of address a callback may not reach unless a listed network holds it; None:
    a public one."""
    address = _unwrapped(address)
    for kind, test in (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),  # the cloud metadata services live here
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("non-public", not address.is_global),  # shared (100.64/10), reserved, documentation
    ):
        if test:
            return kind
    return None


def parse_entry(entry: str) -> Target:
    """One entry of the setting; ValueError saying what is wrong with it."""
    text = entry.strip()
    rest = text
    schemes = frozenset({"https"})
    if "://" in rest:
        scheme, rest = rest.split("://", 1)
        if scheme.lower() not in _DEFAULT_PORTS:
            raise ValueError(f"{text!r}: the scheme may be https:// or http://")
        schemes = frozenset({"http", "https"}) if scheme.lower() == "http" else schemes
    host, port = _split_port(text, rest)
    if host == "*":
        return Target(text, schemes, port, public=True)
    if "/" in host or _address(host) is not None:
        try:
            network = ipaddress.ip_network(host, strict=True)
        except ValueError as exc:
            raise ValueError(f"{text!r}: not a network ({exc})") from None
        return Target(text, schemes, port, network=network)
    wildcard = host.startswith("*.")
    name = _host(host[2:] if wildcard else host)
    if not name or not all(_LABEL.match(label) for label in name.split(".")) or _numeric(name):
        raise ValueError(
            f"{text!r}: not a host name, *.domain, network (10.0.0.0/8) or * "
            "(an internationalised name is written in its xn-- form)"
        )
    if wildcard:
        return Target(text, schemes, port, suffix="." + name)
    return Target(text, schemes, port, name=name)


@lru_cache(maxsize=8)
def policy_of(entries: tuple[str, ...]) -> CallbackPolicy:
    """The policy of the setting's entries, parsed once per process."""
    return CallbackPolicy.parse(entries)


def _split_port(text: str, rest: str) -> tuple[str, int | None]:
    if rest.startswith("["):  # [IPv6] or [IPv6/n], then maybe :port
        close = rest.find("]")
        if close < 0:
            raise ValueError(f"{text!r}: a '[' without its ']'")
        host, after = rest[1:close], rest[close + 1 :]
        if after and not after.startswith(":"):
            raise ValueError(f"{text!r}: only :PORT may follow ']'")
        return host, _port(text, after[1:]) if after else None
    if rest.count(":") >= 2:  # a bare IPv6 address or network: no port
        return rest, None
    if ":" in rest:
        host, port = rest.rsplit(":", 1)
        return host, _port(text, port)
    return rest, None


def _port(text: str, value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise ValueError(f"{text!r}: the port must be a number from 1 to 65535")
    return int(value)


def _host(value: str | None) -> str:
    """A host as compared: lower case, without the root's trailing dot."""
    return (value or "").strip().lower().rstrip(".")


def _address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _unwrapped(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 one stands for (``::ffff:127.0.0.1``, NAT64), or itself."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def _numeric(host: str) -> bool:
    """A name whose last label is a number (``2130706433``, ``127.1``, ``0x7f.1``): no DNS name
    ends so, but the system's resolver reads such names as IPv4 addresses."""
    last = host.rsplit(".", 1)[-1]
    return last.isdigit() or bool(re.fullmatch(r"0x[0-9a-f]*", last))


def _a(kind: str | None) -> str:
    return f"an {kind}" if kind and kind[0] in "aeiou" else f"a {kind}"


def _shown(host: str) -> str:
    return f"[{host}]" if ":" in host else host
