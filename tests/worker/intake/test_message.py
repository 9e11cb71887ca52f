"""Building messages: validation errors name the field; Bcc and injected headers cannot leak."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime

import pytest

from worker.intake import (
    Attachment,
    InvalidMessageError,
    Notification,
    build_message,
)
from worker.transport import OutgoingMessage

NOW = datetime(2026, 11, 21, 10, 15, tzinfo=UTC)


def build(notification: Notification, **options: object) -> OutgoingMessage:
    return build_message(
        notification,
        job_id="7f3c",
        from_email="alerts@example.com",
        now=NOW,
        **options,  # type: ignore[arg-type]
    )


def parse(message: OutgoingMessage) -> email.message.EmailMessage:
    parsed = email.message_from_bytes(message.data, policy=email.policy.default)
    assert isinstance(parsed, email.message.EmailMessage)
    return parsed


def test_headers_body_and_envelope() -> None:
    message = build(
        Notification(
            to=("oncall@example.com",),
            cc=("lead@example.com",),
            bcc=("audit@example.com",),
            reply_to="noc@example.com",
            subject="[P1] db-01 down",
            text="Disk full on db-01",
            html="<p>Disk full on <b>db-01</b></p>",
            headers={"X-Incident-Id": "INC-42"},
        ),
        from_name="Example Alerts",
    )
    assert message.sender == "alerts@example.com"
    assert message.recipients == ("oncall@example.com", "lead@example.com", "audit@example.com")
    assert message.message_id == "<7f3c@example.com>"
    parsed = parse(message)
    assert parsed["From"] == "Example Alerts <alerts@example.com>"
    assert parsed["To"] == "oncall@example.com"
    assert parsed["Cc"] == "lead@example.com"
    assert parsed["Reply-To"] == "noc@example.com"
    assert parsed["Subject"] == "[P1] db-01 down"
    assert parsed["Message-ID"] == "<7f3c@example.com>"
    assert parsed["Date"] == "Sat, 21 Nov 2026 10:15:00 +0000"
    assert parsed["X-Incident-Id"] == "INC-42"
    assert parsed.get_content_type() == "multipart/alternative"
    plain = parsed.get_body(("plain",))
    html = parsed.get_body(("html",))
    assert plain is not None and plain.get_content().strip() == "Disk full on db-01"
    assert html is not None and "<b>db-01</b>" in html.get_content()


def test_bcc_never_appears_in_the_message() -> None:
    message = build(
        Notification(to=("a@example.com",), bcc=("secret-boss@example.com",), subject="s", text="t")
    )
    assert b"secret-boss" not in message.data
    assert "secret-boss@example.com" in message.recipients


def test_same_job_same_message_id() -> None:
    n = Notification(to=("a@example.com",), subject="s", text="t")
    assert build(n).message_id == build(n).message_id
    assert build(n).data == build(n).data


def test_utf8_names_and_subjects_round_trip() -> None:
    message = build(
        Notification(to=("a@example.com",), subject="Störung — Datenbank 数据库 ⚠", text="Grüße"),
        from_name="Überwachung Ålert",
    )
    assert message.data.isascii(), "encoded words keep the message 7-bit"
    assert not message.smtputf8
    parsed = parse(message)
    assert parsed["Subject"] == "Störung — Datenbank 数据库 ⚠"
    assert parsed["From"].addresses[0].display_name == "Überwachung Ålert"
    body = parsed.get_body(("plain",))
    assert body is not None and body.get_content().strip() == "Grüße"


def test_internationalised_addresses_need_smtputf8() -> None:
    message = build(Notification(to=("用户@例子.广告",), subject="s", text="t"))
    assert message.smtputf8
    assert "用户@例子.广告".encode() in message.data


@pytest.mark.parametrize(
    ("notification", "field", "problem"),
    [
        (
            Notification(to=("a@example.com\r\nBcc: x@evil.test",), subject="s", text="t"),
            "to",
            "line break",
        ),
        (
            Notification(to=("a@example.com",), subject="hi\r\nBcc: x@evil.test", text="t"),
            "subject",
            "line break",
        ),
        (
            Notification(
                to=("a@example.com",),
                subject="s",
                text="t",
                headers={"X-Id": "1\nBcc: x@evil.test"},
            ),
            "headers['X-Id']",
            "line break",
        ),
        (
            Notification(
                to=("a@example.com",), subject="s", text="t", headers={"Bcc": "x@evil.test"}
            ),
            "headers['Bcc']",
            "set by mailpipe",
        ),
        (
            Notification(to=("a@example.com",), subject="s", text="t", headers={"Bad Name": "x"}),
            "headers['Bad Name']",
            "not a valid header",
        ),
        (Notification(to=("not-an-address",), subject="s", text="t"), "to", "not an email"),
        (
            Notification(to=("a@example.com",), cc=("A@Example.com",), subject="s", text="t"),
            "cc",
            "already a recipient",
        ),
        (Notification(to=(), subject="s", text="t"), "to", "no recipients"),
        (
            Notification(to=("a@example.com",), reply_to="nope", subject="s", text="t"),
            "reply_to",
            "not an email",
        ),
        (
            Notification(
                to=("a@example.com",),
                subject="s",
                text="t",
                attachments=(Attachment("x.txt\r\n", "text/plain", b"x"),),
            ),
            "attachments.filename",
            "line break",
        ),
    ],
)
def test_bad_input_is_refused_naming_the_field(
    notification: Notification, field: str, problem: str
) -> None:
    with pytest.raises(InvalidMessageError) as caught:
        build(notification)
    assert caught.value.field == field
    assert problem in str(caught.value)
    assert "\n" not in str(caught.value)


def test_recipient_and_size_caps() -> None:
    many = tuple(f"u{i}@example.com" for i in range(4))
    with pytest.raises(InvalidMessageError, match="4 recipients, the profile allows 3"):
        build(Notification(to=many, subject="s", text="t"), max_recipients=3)
    big = Attachment("dump.bin", "application/octet-stream", b"\0" * 50_000)
    with pytest.raises(InvalidMessageError, match="the limit is 20000") as caught:
        build(
            Notification(to=("a@example.com",), subject="s", text="t", attachments=(big,)),
            max_bytes=20_000,
        )
    assert caught.value.field == "attachments"


def test_attachments_are_attached() -> None:
    log = Attachment("incident.log", "text/plain", b"line 1\nline 2\n")
    parsed = parse(
        build(Notification(to=("a@example.com",), subject="s", text="t", attachments=(log,)))
    )
    (part,) = list(parsed.iter_attachments())
    assert part.get_filename() == "incident.log"
    assert part.get_content() == "line 1\nline 2\n"
