"""One SMTP connection: connect, TLS, EHLO and AUTH; transactions are in ``transaction``.

smtplib quirks handled here (CPython ``Lib/smtplib.py``): ``starttls()`` and
``SMTP_SSL`` default to an unverified context, so a verifying one is always
passed; ``starttls()`` forgets the EHLO features, so EHLO is sent again before
AUTH is chosen; ``auth()`` never sends EHLO itself. smtplib's exceptions are
translated into ``SessionError`` here and in ``transaction``, nowhere else.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
import time
from collections.abc import Callable, Iterator, Sequence
from typing import NoReturn

from providers import PasswordCredentials
from worker.credentials import OAuthCredentials, Profile, SmtpCredentials, is_loopback
from worker.settings import DEFAULTS
from worker.transport.base import OutgoingMessage
from worker.transport.errors import SessionError
from worker.transport.outcome import Outcome, Phase, Reply
from worker.transport.smtp import transaction
from worker.transport.smtp.replies import lost, smtp_reply
from worker.transport.smtp.sasl import BearerResponder, Mechanism, oauthbearer, xoauth2

log = logging.getLogger(__name__)


class SmtpSession:
    """An SMTP connection owned by one thread at a time."""

    def __init__(
        self,
        profile: Profile,
        context: ssl.SSLContext,
        *,
        timeout_seconds: float = DEFAULTS.smtp_timeout_seconds,
        ehlo_name: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.profile = profile
        self.context = context
        self.timeout_seconds = profile.timeout_seconds or timeout_seconds
        self.ehlo_name = profile.ehlo_name or ehlo_name
        self._clock = clock
        self.smtp: smtplib.SMTP | None = None
        self.encrypted = False
        self.broken = False
        # Set when the connection was lost after a content sent with the next commands.
        self.lost_grouped_content = False
        self.credentials: SmtpCredentials | None = None
        self.mechanism: str | None = None
        # The last bearer AUTH's responder: it keeps the server's refusal reason.
        self._responder: BearerResponder | None = None
        self.messages_sent = 0
        self.opened_at = clock()
        self.last_used = self.opened_at

    # -- connection --------------------------------------------------------

    def connect(self) -> None:
        """Open the connection, TLS as the profile says, EHLO; raise SessionError on failure."""
        profile = self.profile
        phase: Phase = "connect"
        self.broken = self.encrypted = False
        try:
            if profile.security == "tls":
                phase = "tls"
                self.smtp = smtplib.SMTP_SSL(
                    profile.host,
                    profile.port,
                    local_hostname=self.ehlo_name,
                    timeout=self.timeout_seconds,
                    context=self.context,
                )
                self.encrypted = True
            else:
                self.smtp = smtplib.SMTP(
                    profile.host,
                    profile.port,
                    local_hostname=self.ehlo_name,
                    timeout=self.timeout_seconds,
                )
            phase = "ehlo"
            self._ehlo()
            if profile.security == "starttls":
                phase = "tls"
                self._starttls()
                phase = "ehlo"
                self._ehlo()
        except smtplib.SMTPResponseException as exc:
            self._fail(
                phase, smtp_reply(phase, exc.smtp_code, exc.smtp_error, self.profile.provider)
            )
        except ssl.SSLCertVerificationError as exc:
            self._fail(
                "tls",
                f"certificate of {profile.host} not trusted: {exc.verify_message}",
                hint="set ca_file to the CA that signed the server's certificate, "
                "or fix host to match the certificate",
            )
        except OSError as exc:
            self._fail(
                phase,
                lost(exc),
            )

    def _ehlo(self) -> None:
        assert self.smtp is not None
        code, reply = self.smtp.ehlo()
        if code != 250:
            raise smtplib.SMTPResponseException(code, reply)

    def _starttls(self) -> None:
        assert self.smtp is not None
        if not self.smtp.has_extn("starttls"):
            self._fail(
                "tls",
                f"{self.profile.host} does not offer STARTTLS",
                hint='use security = "tls" if the port expects TLS from the start',
            )
        self.smtp.starttls(context=self.context)
        self.encrypted = True

    @property
    def tls_version(self) -> str | None:
        """e.g. "TLSv1.3" once the connection is encrypted (certificate verified)."""
        sock = self.smtp.sock if self.smtp else None
        return sock.version() if isinstance(sock, ssl.SSLSocket) else None

    @property
    def capabilities(self) -> dict[str, str]:
        return dict(self.smtp.esmtp_features) if self.smtp else {}

    # -- authentication ----------------------------------------------------

    def authenticate(self, credentials: SmtpCredentials) -> None:
        """AUTH with a token (XOAUTH2/OAUTHBEARER) or a password (PLAIN/LOGIN)."""
        assert self.smtp is not None
        if not self.encrypted and not (
            self.profile.allow_plaintext_auth and is_loopback(self.profile.host)
        ):
            self._fail(
                "auth",
                "refusing to send credentials over an unencrypted connection",
                hint='use security = "starttls" or "tls"',
            )
        offered = self.capabilities.get("auth", "").upper().split()
        try:
            if isinstance(credentials, PasswordCredentials):
                self._password_auth(credentials, offered)
            else:
                self._bearer_auth(credentials, offered)
        except smtplib.SMTPAuthenticationError as exc:
            self._fail("auth", self._auth_reply(exc))
        except smtplib.SMTPResponseException as exc:
            self._fail(
                "auth", smtp_reply("auth", exc.smtp_code, exc.smtp_error, self.profile.provider)
            )
        except UnicodeError:
            # smtplib ASCII-encodes the SASL response; the exception would carry
            # the whole response (password or token) in its repr: say only what.
            self._fail("auth", "the username or password is not ASCII, which SMTP AUTH cannot send")
        except OSError as exc:
            self._fail(
                "auth",
                lost(exc),
            )
        self.credentials = credentials

    def _password_auth(self, credentials: PasswordCredentials, offered: list[str]) -> None:
        assert self.smtp is not None
        mechanism = next((m for m in ("PLAIN", "LOGIN") if m in offered), None)
        if mechanism is None:
            self._no_mechanism("PLAIN or LOGIN", offered)
        self.smtp.user = credentials.username
        self.smtp.password = credentials.password.get_secret_value()
        try:
            method = self.smtp.auth_plain if mechanism == "PLAIN" else self.smtp.auth_login
            self.smtp.auth(mechanism, method)
        finally:
            self.smtp.password = ""  # smtplib keeps it on the object otherwise
        self.mechanism = mechanism

    def _bearer_auth(self, credentials: OAuthCredentials, offered: list[str]) -> None:
        assert self.smtp is not None
        wanted = credentials.sasl.upper() if credentials.sasl else None
        mechanism: Mechanism | None = None
        for candidate in ("XOAUTH2", "OAUTHBEARER"):
            if candidate in offered and wanted in (None, candidate):
                mechanism = candidate
                break
        if mechanism is None:
            self._no_mechanism(wanted or "XOAUTH2 or OAUTHBEARER", offered)
        if mechanism == "XOAUTH2":
            initial = xoauth2(credentials.username, credentials.access_token)
        else:
            initial = oauthbearer(
                credentials.username, credentials.access_token, self.profile.host, self.profile.port
            )
        self._responder = BearerResponder(mechanism, initial)
        try:
            self.smtp.auth(
                mechanism,
                self._responder,
                initial_response_ok=self.profile.sasl_initial_response,
            )
        except smtplib.SMTPAuthenticationError as exc:
            if not (self.profile.sasl_initial_response and exc.smtp_code in (500, 501)):
                raise
            # "500 Line too long": send the response after the server's 334 instead.
            log.info("%s refused the AUTH line's length; retrying without it", self.profile.host)
            self._responder = BearerResponder(mechanism, initial)
            self.smtp.auth(mechanism, self._responder, initial_response_ok=False)
        self.mechanism = mechanism

    def _auth_reply(self, exc: smtplib.SMTPAuthenticationError) -> Reply:
        reply = smtp_reply("auth", exc.smtp_code, exc.smtp_error, self.profile.provider)
        server_error = self._responder.server_error if self._responder else None
        if server_error is None:
            return reply
        # Gmail explains a refused token in the 334 before the 535: keep it.
        return Reply(
            kind=reply.kind,
            code=reply.code,
            enhanced_code=reply.enhanced_code,
            text=f"{reply.text} (server said: {server_error})",
            hint=reply.hint,
        )

    def _no_mechanism(self, wanted: str, offered: list[str]) -> NoReturn:
        self._fail(
            "auth",
            f"{self.profile.host} offers AUTH {' '.join(offered) or '(none)'}, not {wanted}",
            hint="check host, port and security (Exchange Online offers XOAUTH2 only "
            "after STARTTLS on 587)",
        )

    # -- transactions ------------------------------------------------------

    def send(self, message: OutgoingMessage) -> Outcome:
        """One SMTP transaction. Raises ConnectionDropped if nothing was sent yet."""
        assert self.smtp is not None
        self.last_used = self._clock()
        result = transaction.send(self, message)
        if result.kind == "delivered":
            self.messages_sent += 1
        return result

    def send_many(
        self, messages: Sequence[OutgoingMessage], *, group: bool = False
    ) -> Iterator[Outcome]:
        """Transactions one after another; with ``group``, pipelined across messages."""
        assert self.smtp is not None
        for result in transaction.send_many(self, messages, group=group):
            self.last_used = self._clock()
            if result.kind == "delivered":
                self.messages_sent += 1
            yield result

    def alive(self) -> bool:
        """NOOP round trip: used before reusing a connection that sat idle."""
        if self.smtp is None or self.broken:
            return False
        try:
            return self.smtp.noop()[0] == 250
        except OSError:
            self.broken = True
            return False

    def close(self) -> None:
        if self.smtp is None:
            return
        try:
            if not self.broken:
                self.smtp.quit()
        except OSError:
            pass
        finally:
            self.smtp.close()
            self.smtp = None

    def _fail(self, phase: Phase, reason: Reply | str, *, hint: str | None = None) -> NoReturn:
        self.broken = True
        self.close()
        raise SessionError(phase, reason, hint=hint)
