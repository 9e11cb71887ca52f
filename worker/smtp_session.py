"""One SMTP connection: connect, TLS, EHLO, AUTH, and transactions that report an Outcome.

smtplib quirks handled here (CPython ``Lib/smtplib.py``): ``starttls()`` and
``SMTP_SSL`` default to an unverified context, so a verifying one is always
passed; ``starttls()`` forgets the EHLO features, so EHLO is sent again before
AUTH is chosen; ``auth()`` never sends EHLO itself.
"""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
import time
from collections.abc import Callable
from typing import NoReturn

from providers import PasswordCredentials
from worker.credentials import OAuthCredentials
from worker.message import OutgoingMessage
from worker.profiles import Profile, is_loopback
from worker.sasl import BearerResponder, Mechanism, oauthbearer, xoauth2
from worker.smtp_outcomes import Outcome, OutcomeKind, Phase, RecipientResult, outcome

log = logging.getLogger(__name__)

SmtpCredentials = OAuthCredentials | PasswordCredentials


class SessionError(Exception):
    """The session cannot go on; ``outcome`` says why (never holds a secret)."""

    def __init__(self, result: Outcome) -> None:
        super().__init__(result.summary())
        self.outcome = result


class ConnectionDropped(SessionError):
    """The connection died before any message data was sent: safe to retry elsewhere."""


def ssl_context(profile: Profile) -> ssl.SSLContext:
    """A verifying context (system CAs, or the profile's ``ca_file``)."""
    cafile = str(profile.ca_file) if profile.ca_file else None
    return ssl.create_default_context(cafile=cafile)


class SmtpSession:
    """An SMTP connection owned by one thread at a time."""

    def __init__(
        self,
        profile: Profile,
        context: ssl.SSLContext,
        *,
        timeout_seconds: float = 30.0,
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
            self._fail(outcome(phase, exc.smtp_code, exc.smtp_error))
        except ssl.SSLCertVerificationError as exc:
            self._fail(
                Outcome(
                    kind="permanent",
                    phase="tls",
                    text=f"certificate of {profile.host} not trusted: {exc.verify_message}",
                    hint="set ca_file to the CA that signed the server's certificate, "
                    "or fix host to match the certificate",
                )
            )
        except (OSError, smtplib.SMTPException) as exc:
            self._fail(outcome(phase, None, f"{type(exc).__name__}: {exc}"))

    def _ehlo(self) -> None:
        assert self.smtp is not None
        code, reply = self.smtp.ehlo()
        if code != 250:
            raise smtplib.SMTPResponseException(code, reply)

    def _starttls(self) -> None:
        assert self.smtp is not None
        if not self.smtp.has_extn("starttls"):
            self._fail(
                Outcome(
                    kind="permanent",
                    phase="tls",
                    text=f"{self.profile.host} does not offer STARTTLS",
                    hint='use security = "tls" if the port expects TLS from the start',
                )
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
                Outcome(
                    kind="permanent",
                    phase="auth",
                    text="refusing to send credentials over an unencrypted connection",
                    hint='use security = "starttls" or "tls"',
                )
            )
        offered = self.capabilities.get("auth", "").upper().split()
        try:
            if isinstance(credentials, PasswordCredentials):
                self._password_auth(credentials, offered)
            else:
                self._bearer_auth(credentials, offered)
        except smtplib.SMTPAuthenticationError as exc:
            self._fail(self._auth_outcome(exc))
        except smtplib.SMTPResponseException as exc:
            self._fail(outcome("auth", exc.smtp_code, exc.smtp_error))
        except UnicodeError:
            # smtplib ASCII-encodes the SASL response; the exception would carry
            # the whole response (password or token) in its repr: say only what.
            self._fail(
                Outcome(
                    kind="permanent",
                    phase="auth",
                    text="the username or password is not ASCII, which SMTP AUTH cannot send",
                )
            )
        except (OSError, smtplib.SMTPException) as exc:
            self._fail(outcome("auth", None, f"{type(exc).__name__}: {exc}"))
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

    def _auth_outcome(self, exc: smtplib.SMTPAuthenticationError) -> Outcome:
        result = outcome("auth", exc.smtp_code, exc.smtp_error)
        server_error = self._responder.server_error if self._responder else None
        if server_error is None:
            return result
        # Gmail explains a refused token in the 334 before the 535: keep it.
        return Outcome(
            kind=result.kind,
            phase="auth",
            code=result.code,
            enhanced_code=result.enhanced_code,
            text=f"{result.text} (server said: {server_error})",
            hint=result.hint,
        )

    def _no_mechanism(self, wanted: str, offered: list[str]) -> NoReturn:
        self._fail(
            Outcome(
                kind="permanent",
                phase="auth",
                text=f"{self.profile.host} offers AUTH {' '.join(offered) or '(none)'}, "
                f"not {wanted}",
                hint="check host, port and security (Exchange Online offers XOAUTH2 only "
                "after STARTTLS on 587)",
            )
        )

    # -- transactions ------------------------------------------------------

    def send(self, message: OutgoingMessage) -> Outcome:
        """One SMTP transaction. Raises ConnectionDropped if nothing was sent yet."""
        assert self.smtp is not None
        self.last_used = self._clock()
        if message.smtputf8 and not self.smtp.has_extn("smtputf8"):
            return Outcome(
                kind="permanent",
                phase="mail",
                text=f"{self.profile.host} does not support SMTPUTF8, which the "
                "internationalised addresses of this message need",
            )
        try:
            mail, rcpts, data = self._envelope(message)
        except (OSError, smtplib.SMTPServerDisconnected) as exc:
            self.broken = True
            raise ConnectionDropped(outcome("mail", None, f"{type(exc).__name__}: {exc}")) from exc
        if mail[0] != 250:
            self._abort_data(data)
            return self._refused(outcome("mail", *mail))
        if any(code == 421 for code, _ in rcpts):
            self.broken = True
            raise ConnectionDropped(outcome("rcpt", 421, "421 at RCPT"))
        results = [
            _recipient(address, *reply)
            for address, reply in zip(message.recipients, rcpts, strict=True)
        ]
        if not any(r.accepted for r in results):
            self._abort_data(data)
            first = results[0]
            kind: OutcomeKind = (
                "transient" if any(r.kind == "transient" for r in results) else "permanent"
            )
            return self._refused(
                Outcome(
                    kind=kind,
                    phase="rcpt",
                    code=first.code,
                    enhanced_code=first.enhanced_code,
                    text=first.text,
                    hint=outcome("rcpt", first.code, first.text).hint,
                    recipients=tuple(results),
                )
            )
        return self._data(message, tuple(results), data)

    def _envelope(self, message: OutgoingMessage) -> tuple[Reply, list[Reply], Reply | None]:
        """MAIL and RCPT replies, plus DATA's when the server pipelines.

        With PIPELINING (RFC 2920, offered by Exchange Online, Gmail and
        Postfix) MAIL, every RCPT and DATA go out in one write and their
        replies are read in order: one round trip instead of 2 + recipients.
        """
        smtp = self.smtp
        assert smtp is not None
        options = ["SMTPUTF8", "BODY=8BITMIME"] if message.smtputf8 else []
        if not smtp.has_extn("pipelining"):
            mail = smtp.mail(message.sender, options)
            if mail[0] != 250:
                return mail, [], None
            return mail, [smtp.rcpt(address) for address in message.recipients], None
        commands = [
            " ".join(["MAIL FROM:" + smtplib.quoteaddr(message.sender), *options]),
            *("RCPT TO:" + smtplib.quoteaddr(address) for address in message.recipients),
            "DATA",
        ]
        smtp.send("".join(c + "\r\n" for c in commands).encode("utf-8"))
        mail = smtp.getreply()
        rcpts = [smtp.getreply() for _ in message.recipients]
        return mail, rcpts, smtp.getreply()

    def _abort_data(self, data: Reply | None) -> None:
        """A pipelined DATA that got 354 anyway (RFC 2920 §3.1): end it with an empty message."""
        if data is None or data[0] != 354:
            return
        assert self.smtp is not None
        try:
            self.smtp.send(b".\r\n")
            self.smtp.getreply()
        except (OSError, smtplib.SMTPException):
            self.broken = True

    def _data(
        self,
        message: OutgoingMessage,
        recipients: tuple[RecipientResult, ...],
        data: Reply | None,
    ) -> Outcome:
        smtp = self.smtp
        assert smtp is not None
        try:
            code, reply = data or smtp.docmd("DATA")
            if code != 354:  # nothing was sent
                return self._refused(outcome("data", code, reply))
            smtp.send(_dot_stuffed(message.data))
            code, reply = smtp.getreply()
        except (OSError, smtplib.SMTPServerDisconnected) as exc:
            # The data may have been delivered: never retried silently.
            self.broken = True
            return outcome("data", None, f"connection lost after DATA: {type(exc).__name__}")
        result = outcome("data", code, reply, recipients=recipients)
        if result.kind == "delivered":
            self.messages_sent += 1
        else:
            self._refused(result)
        return result

    def _refused(self, result: Outcome) -> Outcome:
        """After a failed transaction: 421 means the server is closing; else RSET."""
        if result.code == 421:
            self.broken = True
            if result.phase == "mail":
                raise ConnectionDropped(result)
            return result
        try:
            assert self.smtp is not None
            self.smtp.rset()
        except (OSError, smtplib.SMTPException):
            self.broken = True
        return result

    def alive(self) -> bool:
        """NOOP round trip: used before reusing a connection that sat idle."""
        if self.smtp is None or self.broken:
            return False
        try:
            return self.smtp.noop()[0] == 250
        except (OSError, smtplib.SMTPException):
            self.broken = True
            return False

    def close(self) -> None:
        if self.smtp is None:
            return
        try:
            if not self.broken:
                self.smtp.quit()
        except (OSError, smtplib.SMTPException):
            pass
        finally:
            self.smtp.close()
            self.smtp = None

    def _fail(self, result: Outcome) -> NoReturn:
        self.broken = True
        self.close()
        raise SessionError(result)


Reply = tuple[int, bytes]


def _recipient(address: str, code: int, reply: bytes) -> RecipientResult:
    result = outcome("rcpt", code, reply)
    return RecipientResult(
        address=address,
        accepted=code in (250, 251),
        code=code,
        enhanced_code=result.enhanced_code,
        text=result.text,
        kind=result.kind,
    )


def _dot_stuffed(data: bytes) -> bytes:
    """The message as DATA carries it (RFC 5321 §4.5.2), ending in CRLF.CRLF."""
    stuffed = re.sub(rb"(?m)^\.", b"..", data)
    if not stuffed.endswith(b"\r\n"):
        stuffed += b"\r\n"
    return stuffed + b".\r\n"
