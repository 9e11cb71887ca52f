"""AUTH PLAIN and LOGIN for the relay: Argon2 checks in a pool of their own, and a lockout.

Failures are counted per (client address, user name), so one attacker behind a
shared NAT locks out only the name it guesses, and only that user's own good
login forgives them. A login counts as a failure from the moment it starts
(in the event loop, before any await), so parallel guesses cannot race past
the limit: after ``lockout_failures`` the pair is refused for
``lockout_seconds`` with a temporary 454 (RFC 4954). A wrong password is
answered after a delay that doubles with each failure (0.25 s … 4 s).

Argon2 (64 MiB and tens of milliseconds each) runs in two threads of its own,
never in the pool that stores messages, with at most ``_MAX_CHECKS`` checks in
flight; past that a login gets 454 at once. An unknown user costs the same
Argon2 check as a known one, so timing does not tell names apart. A password
checked once is remembered (a keyed digest of the user, the stored hash and
the password) for a few minutes: a changed password_hash ends that at once.
"""

from __future__ import annotations

import asyncio
import binascii
import hashlib
import hmac
import logging
import os
import time
from base64 import b64decode
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from aiosmtpd.smtp import MISSING, SMTP, AuthResult

from worker.faces.relay.config import RelayUsers
from worker.faces.relay.users import RelayUser, hash_password

log = logging.getLogger("mailpipe.relay")

_REMEMBER_SECONDS = 300.0
_MAX_DELAY_SECONDS = 4.0
_CHECK_THREADS = 2
_MAX_CHECKS = 2 * _CHECK_THREADS
# Checked for a name that is not a user, so that an unknown name costs a known one's time.
_NOBODY = RelayUser(name="", password_hash=hash_password(os.urandom(16).hex()), profile="")
LOCKED_OUT = "454 4.7.0 Too many failed logins for this user from this address; try again later"
BUSY = "454 4.7.0 Too many logins in progress; try again later"


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0


class Logins:
    """Checks relay logins; one per relay process (its memory is its own)."""

    def __init__(
        self,
        users: RelayUsers,
        *,
        lockout_failures: int,
        lockout_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.users = users
        self.lockout_failures = lockout_failures
        self.lockout_seconds = lockout_seconds
        self._clock = clock
        self._sleep = sleep
        self._failures: dict[tuple[str, str], _Failures] = {}
        self._verified: dict[bytes, float] = {}
        self._pepper = os.urandom(32)
        self._checks = ThreadPoolExecutor(_CHECK_THREADS, thread_name_prefix="relay-argon2")
        self._in_flight = 0

    def close(self) -> None:
        self._checks.shutdown(wait=False, cancel_futures=True)

    async def plain(self, server: SMTP, args: list[str]) -> AuthResult:
        """RFC 4616: ``authzid NUL authcid NUL password``, on the AUTH line or after a 334."""
        response = await _response(server, args, b"")
        if response is None:
            return AuthResult(success=False, handled=True)
        parts = response.split(b"\x00")
        if len(parts) != 3:
            await server.push("501 5.5.2 Cannot split the PLAIN response")
            return AuthResult(success=False, handled=True)
        return await self._check(server, parts[1], parts[2])

    async def login(self, server: SMTP, args: list[str]) -> AuthResult:
        username = await _response(server, args, b"Username:")
        if username is None:
            return AuthResult(success=False, handled=True)
        password = await _response(server, ["LOGIN"], b"Password:")
        if password is None:
            return AuthResult(success=False, handled=True)
        return await self._check(server, username, password)

    async def _check(self, server: SMTP, raw_user: bytes, raw_password: bytes) -> AuthResult:
        peer = str(server.session.peer[0]) if server.session and server.session.peer else "?"
        name = raw_user.decode("utf-8", errors="replace")
        # From here to the count below nothing awaits: parallel logins see each other's counts.
        failures = self._failures_of(peer, name)
        if failures.count >= self.lockout_failures:
            return AuthResult(success=False, handled=False, message=LOCKED_OUT)
        if self._in_flight >= _MAX_CHECKS:
            return AuthResult(success=False, handled=False, message=BUSY)
        failures.count, failures.last = failures.count + 1, self._clock()
        self._in_flight += 1
        try:
            ok = await self._valid(name, raw_password)
        finally:
            self._in_flight -= 1
        if ok:
            self._failures.pop((peer, name), None)
            return AuthResult(success=True, auth_data=name)
        log.warning("relay: failed login for %r from %s (%d)", name, peer, failures.count)
        await self._sleep(min(0.25 * 2 ** (failures.count - 1), _MAX_DELAY_SECONDS))
        return AuthResult(success=False, handled=False)

    def _failures_of(self, peer: str, name: str) -> _Failures:
        """This pair's failures; forgiven after a quiet ``lockout_seconds``."""
        failures = self._failures.get((peer, name))
        if failures is None or self._clock() - failures.last > self.lockout_seconds:
            if len(self._failures) > 10_000:
                self._forget_old()
            failures = self._failures[(peer, name)] = _Failures()
        return failures

    def _forget_old(self) -> None:
        now = self._clock()
        self._failures = {
            pair: f for pair, f in self._failures.items() if now - f.last <= self.lockout_seconds
        }

    async def _valid(self, name: str, password: bytes) -> bool:
        user = self.users.get(name)
        checked = user or _NOBODY
        key = hmac.new(
            self._pepper,
            b"\x00".join((name.encode(), checked.password_hash.encode(), password)),
            hashlib.sha256,
        ).digest()
        if user is not None and self._verified.get(key, 0.0) > self._clock():
            return True
        text = password.decode("utf-8", errors="replace")
        loop = asyncio.get_running_loop()
        ok = await loop.run_in_executor(self._checks, checked.password_ok, text)
        if not (ok and user is not None):
            return False
        now = self._clock()
        if len(self._verified) > 10_000:
            self._verified = {k: t for k, t in self._verified.items() if t > now}
        self._verified[key] = now + _REMEMBER_SECONDS
        return True


async def _response(server: SMTP, args: list[str], challenge: bytes) -> bytes | None:
    """The client's base64 answer: on the AUTH line when given, else after a 334."""
    if len(args) > 1:
        try:
            return b64decode(args[1], validate=True)
        except (binascii.Error, ValueError):
            await server.push("501 5.5.2 Cannot decode base64")
            return None
    answer = await server.challenge_auth(challenge)
    if answer is MISSING:
        return None
    assert isinstance(answer, bytes)
    return answer
