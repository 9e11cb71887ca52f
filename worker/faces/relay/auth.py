"""AUTH PLAIN and LOGIN for the relay: Argon2 checks off the event loop, and a lockout.

A wrong password is answered after a delay that doubles with each failure
from the same address (0.25 s, 0.5 s, … up to 4 s), and after
``lockout_failures`` failures the address is refused for ``lockout_seconds``
with a temporary 454 (RFC 4954). Argon2 is deliberately slow, so a password
checked once is remembered (as a keyed digest, in memory) for a few minutes:
tools that open a connection per message do not pay for it every time.
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
from collections.abc import Callable
from dataclasses import dataclass

from aiosmtpd.smtp import MISSING, SMTP, AuthResult

from worker.faces.relay.config import RelayUsers

log = logging.getLogger("mailpipe.relay")

_REMEMBER_SECONDS = 300.0
_MAX_DELAY_SECONDS = 4.0


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
    ) -> None:
        self.users = users
        self.lockout_failures = lockout_failures
        self.lockout_seconds = lockout_seconds
        self._clock = clock
        self._failures: dict[str, _Failures] = {}
        self._verified: dict[bytes, float] = {}
        self._pepper = os.urandom(32)

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
        failures = self._failures.get(peer)
        now = self._clock()
        if failures and now - failures.last > self.lockout_seconds:
            del self._failures[peer]  # forgiven after a quiet period
            failures = None
        if failures and failures.count >= self.lockout_failures:
            return AuthResult(
                success=False,
                handled=False,
                message="454 4.7.0 Too many failed logins from this address; try again later",
            )
        name = raw_user.decode("utf-8", errors="replace")
        if await self._valid(name, raw_password):
            self._failures.pop(peer, None)
            return AuthResult(success=True, auth_data=name)
        failures = self._failures.setdefault(peer, _Failures())
        failures.count, failures.last = failures.count + 1, now
        log.warning("relay: failed login for %r from %s (%d)", name, peer, failures.count)
        await asyncio.sleep(min(0.25 * 2 ** (failures.count - 1), _MAX_DELAY_SECONDS))
        return AuthResult(success=False, handled=False)

    async def _valid(self, name: str, password: bytes) -> bool:
        user = self.users.get(name)
        if user is None:
            return False
        key = hmac.new(self._pepper, name.encode() + b"\x00" + password, hashlib.sha256).digest()
        if self._verified.get(key, 0.0) > self._clock():
            return True
        text = password.decode("utf-8", errors="replace")
        ok = await asyncio.get_running_loop().run_in_executor(None, user.password_ok, text)
        if ok:
            now = self._clock()
            if len(self._verified) > 10_000:
                self._verified = {k: t for k, t in self._verified.items() if t > now}
            self._verified[key] = now + _REMEMBER_SECONDS
        return ok


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
