"""`mailpipe profiles check`: walk a profile through every step a real send takes.

Token (claims decoded without verification, the token itself never shown),
connect, TLS, EHLO, AUTH, optionally a test message, QUIT; for a Graph profile,
the token and optionally a test message through ``sendMail``. Each step reports
ok or the failure with its hint; the first failure stops the walk.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from worker.credentials import Credentials, OAuthCredentials, Profile, SmtpCredentials
from worker.errors import MailpipeError
from worker.intake.message import Notification, build_message
from worker.transport import OutgoingMessage, SessionError
from worker.transport.graph import GraphTransport
from worker.transport.smtp import SmtpSession
from worker.transport.tls import ssl_context

EXCHANGE_AUDIENCES = frozenset(
    {
        "https://outlook.office365.com",
        "https://outlook.office.com",
        "00000002-0000-0ff1-ce00-000000000000",  # Office 365 Exchange Online's app ID
    }
)
GRAPH_AUDIENCES = frozenset({"https://graph.microsoft.com", "00000003-0000-0000-c000-000000000000"})
_SHOWN_CLAIMS = ("aud", "roles", "scp", "exp", "tid", "sub", "upn", "appid")


@dataclass(frozen=True)
class Step:
    name: str
    ok: bool
    detail: str
    hint: str | None = None


def check_profile(
    credentials: Credentials, name: str, *, send_to: str | None = None
) -> Iterator[Step]:
    """Yield one Step per stage; stop after the first failure."""
    profile = credentials.profiles.get(name)
    try:
        smtp_credentials = credentials.get(profile)
    except MailpipeError as exc:
        yield Step("token", False, exc.message, exc.hint)
        return
    if isinstance(smtp_credentials, OAuthCredentials):
        step = token_step(profile, smtp_credentials.access_token)
        yield step
        if not step.ok:
            return
    if profile.transport == "graph":
        yield from _graph_steps(credentials, profile, send_to)
        return
    session = SmtpSession(profile, ssl_context(profile))
    try:
        yield from _smtp_steps(profile, session, smtp_credentials, send_to)
    except SessionError as exc:
        failed = exc.outcome
        yield Step(failed.phase, False, failed.summary(with_hint=False), failed.hint)
    finally:
        session.close()


def _smtp_steps(
    profile: Profile,
    session: SmtpSession,
    smtp_credentials: SmtpCredentials,
    send_to: str | None,
) -> Iterator[Step]:
    session.connect()
    tls = f"{session.tls_version}, certificate verified" if session.tls_version else "none"
    yield Step("connect", True, f"{profile.host}:{profile.port} {profile.security} (TLS: {tls})")
    features = "; ".join(
        f"{k.upper()} {v}".strip() for k, v in sorted(session.capabilities.items())
    )
    yield Step("ehlo", True, features)
    session.authenticate(smtp_credentials)
    yield Step("auth", True, f"{session.mechanism} as {profile.username}")
    if send_to:
        result = session.send(_test_message(profile, send_to))
        ok = result.kind == "delivered"
        yield Step("send", ok, result.summary(with_hint=False), result.hint)


def _graph_steps(credentials: Credentials, profile: Profile, send_to: str | None) -> Iterator[Step]:
    if not send_to:
        url = f"{profile.graph_url}/users/{profile.username}/sendMail"
        yield Step("graph", True, f"sends with POST {url} (--send-to ADDRESS tries it)")
        return
    transport = GraphTransport(credentials)
    try:
        result = transport.send(profile, _test_message(profile, send_to)).outcome
    finally:
        transport.close()
    ok = result.kind == "delivered"
    yield Step("send", ok, result.summary(with_hint=False), result.hint)


def _test_message(profile: Profile, send_to: str) -> OutgoingMessage:
    return build_message(
        Notification(
            to=(send_to,),
            subject=f"mailpipe test message from profile {profile.name}",
            text=f"This message checks that profile {profile.name} can send.",
        ),
        job_id=f"check-{datetime.now(UTC):%Y%m%d%H%M%S}",
        from_email=profile.from_email,
        from_name=profile.from_name,
    )


def token_step(profile: Profile, access_token: str) -> Step:
    """Show what the token claims, and catch the Microsoft mistakes before SMTP does."""
    import jwt  # here: every worker imports this module, and only a check decodes a token

    try:
        claims = jwt.decode(access_token, options={"verify_signature": False})
    except jwt.DecodeError:
        return Step("token", True, "opaque token (not a JWT), nothing to decode")
    shown = ", ".join(f"{k}={_claim(claims[k])}" for k in _SHOWN_CLAIMS if k in claims)
    if profile.provider != "microsoft365":
        return Step("token", True, shown)
    problem = _microsoft_problem(profile, claims)
    if problem:
        return Step("token", False, shown, problem)
    return Step("token", True, shown)


def _microsoft_problem(profile: Profile, claims: dict[str, Any]) -> str | None:
    audience = claims.get("aud")
    grant = profile.oauth.grant if profile.oauth else None
    if profile.transport == "graph":
        return _graph_problem(grant, audience, claims)
    if audience in GRAPH_AUDIENCES:
        return (
            "the token is for Microsoft Graph, not Exchange: the scope must be "
            "https://outlook.office365.com/.default (app-only) or "
            "https://outlook.office.com/SMTP.Send (delegated)"
        )
    if audience not in EXCHANGE_AUDIENCES:
        return f"the token's audience {audience!r} is not Exchange Online"
    return _missing_permission(
        grant, claims, role="SMTP.SendAsApp", scope="SMTP.Send", api="Office 365 Exchange Online"
    )


def _graph_problem(grant: str | None, audience: object, claims: dict[str, Any]) -> str | None:
    if audience not in GRAPH_AUDIENCES:
        return (
            f"the token's audience {audience!r} is not Microsoft Graph: the scope must be "
            "https://graph.microsoft.com/.default (app-only) or "
            "https://graph.microsoft.com/Mail.Send (delegated)"
        )
    return _missing_permission(
        grant, claims, role="Mail.Send", scope="Mail.Send", api="Microsoft Graph"
    )


def _missing_permission(
    grant: str | None, claims: dict[str, Any], *, role: str, scope: str, api: str
) -> str | None:
    """App-only tokens carry the application permission in ``roles``, delegated in ``scp``."""
    if grant == "client_credentials" and role not in (claims.get("roles") or []):
        return (
            f"the token has no {role} role: add the application permission {role} ({api}) "
            "and grant admin consent"
        )
    if grant == "refresh_token" and scope not in str(claims.get("scp", "")).split():
        return f"the token has no {scope} scope: the user must consent to {scope}"
    return None


def _claim(value: object) -> str:
    if isinstance(value, int) and value > 1_000_000_000:
        return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return str(value)
