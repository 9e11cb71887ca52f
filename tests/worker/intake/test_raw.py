"""A whole message made sendable as a profile: its headers kept, From rewritten where refused."""

from __future__ import annotations

from email.parser import BytesHeaderParser
from email.policy import SMTP

from worker.credentials import Profile
from worker.intake.raw import sendable

RAW = (
    b"From: Alertmanager <alertmanager@tools.example.test>\r\n"
    b"To: oncall@example.com\r\n"
    b"Subject: [FIRING:1] DiskFull\r\n"
    b"X-Folded: first part\r\n"
    b"\tsecond part\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Disk / on db-01 is 97% full.\r\n"
)


def profile(provider: str) -> Profile:
    return Profile(
        name="p", provider=provider, host="smtp.example.test", port=587, security="starttls",  # type: ignore[arg-type]
        from_email="alerts@example.com", from_name="Example Alerts", auth="password",
        username="alerts@example.com",
    )  # fmt: skip


def made(data: bytes, provider: str) -> tuple[bytes, str]:
    headers = BytesHeaderParser(policy=SMTP).parsebytes(data)
    return sendable(data, headers, profile(provider), "7f3c")


def test_microsoft_and_google_get_the_mailbox_as_from_and_the_original_as_reply_to() -> None:
    for provider in ("microsoft365", "google_workspace"):
        data, message_id = made(RAW, provider)
        head, body = data.split(b"\r\n\r\n", 1)
        assert head.startswith(b"From: Example Alerts <alerts@example.com>\r\n")
        assert b"Reply-To: Alertmanager <alertmanager@tools.example.test>" in head
        assert head.count(b"From:") == 1
        assert b"X-Folded: first part\r\n\tsecond part" in head, "folded headers stay whole"
        assert body == b"Disk / on db-01 is 97% full.\r\n", "the body is untouched"
        assert message_id == "<7f3c@example.com>"


def test_a_generic_server_keeps_the_tools_from_and_message_id() -> None:
    with_id = RAW.replace(b"MIME-Version", b"Message-ID: <a1@tools.example.test>\r\nMIME-Version")
    data, message_id = made(with_id, "generic")
    assert b"From: Alertmanager <alertmanager@tools.example.test>" in data
    assert b"Reply-To" not in data
    assert message_id == "<a1@tools.example.test>"
    assert data.count(b"Message-ID") == 1
    assert b"\r\nDate: " in data or data.startswith(b"Date: "), "a missing Date is added"
