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


# -- control characters, line separators and encoded words in headers ----------------

_BAD_CHARACTERS = [
    ("\x0b", "line separator (U+000B)"),
    ("\x0c", "line separator (U+000C)"),
    ("\x85", "line separator (U+0085)"),
    ("\u2028", "line separator (U+2028)"),
    ("\u2029", "line separator (U+2029)"),
    ("\x1e", "line separator (U+001E)"),
    ("\x00", "control character (U+0000)"),
    ("\x1b", "control character (U+001B)"),
    ("\x7f", "control character (U+007F)"),
    ("\x9b", "control character (U+009B)"),
    ("\udcff", "lone surrogate (U+DCFF)"),
]


def _with_bad(where: str, bad: str) -> tuple[Notification, dict[str, object]]:
    value = f"a{bad}b"
    base: dict[str, object] = {"to": ("a@example.com",), "subject": "s", "text": "t"}
    options: dict[str, object] = {}
    if where == "subject":
        base["subject"] = value
    elif where == "from_name":
        options["from_name"] = value
    elif where == "headers['X-Name']":
        base["headers"] = {"X-Name": value}
    elif where == "reply_to":
        base["reply_to"] = f"a{bad}@example.com"
    elif where == "cc":
        base["cc"] = (f"ü{bad}@example.com",)
    else:
        base["attachments"] = (Attachment(value, "text/plain", b"x"),)
    return Notification(**base), options  # type: ignore[arg-type]


@pytest.mark.parametrize(("bad", "problem"), _BAD_CHARACTERS)
@pytest.mark.parametrize(
    "where",
    ["subject", "from_name", "headers['X-Name']", "reply_to", "cc", "attachments.filename"],
)
def test_control_characters_and_line_separators_are_refused_in_every_header_field(
    where: str, bad: str, problem: str
) -> None:
    notification, options = _with_bad(where, bad)
    with pytest.raises(InvalidMessageError) as caught:
        build(notification, **options)
    assert caught.value.field == where
    assert problem in str(caught.value)
    assert len(str(caught.value).splitlines()) == 1


def test_a_tab_is_allowed_in_a_header() -> None:
    parsed = parse(build(Notification(to=("a@example.com",), subject="a\tb", text="t")))
    assert parsed["Subject"] == "a\tb"


@pytest.mark.parametrize(
    "encoded",
    [
        "=?utf-8?q?a=0D=0ABcc:_x@evil.test?=",
        "=?utf-8?b?YQ0KQmNjOiB4QGV2aWwudGVzdA==?=",
        "=?utf-8?q?a=00b?=",
        "=?utf-8?q?a=E2=80=A8b?=",
    ],
)
@pytest.mark.parametrize("where", ["subject", "from_name", "headers['X-Name']", "attachments"])
def test_an_encoded_word_cannot_smuggle_a_line_break_or_control_character(
    where: str, encoded: str
) -> None:
    base: dict[str, object] = {"to": ("a@example.com",), "subject": "s", "text": "t"}
    options: dict[str, object] = {}
    if where == "subject":
        base["subject"] = encoded
    elif where == "from_name":
        options["from_name"] = encoded
    elif where == "headers['X-Name']":
        base["headers"] = {"X-Name": encoded}
    else:
        base["attachments"] = (Attachment(encoded, "text/plain", b"x"),)
    with pytest.raises(InvalidMessageError, match="encoded word") as caught:
        build(Notification(**base), **options)  # type: ignore[arg-type]
    assert caught.value.field == ("attachments.filename" if where == "attachments" else where)


@pytest.mark.parametrize(
    ("headers", "field"),
    [
        ({"X-Name\n": "x"}, "headers['X-Name\\n']"),
        ({"Content-Disposition": "x"}, "headers['Content-Disposition']"),
        ({"Resent-To": '"'}, "headers['Resent-To']"),
        ({"Orig-Date": "x"}, "headers['Orig-Date']"),
    ],
)
def test_header_names_the_email_package_would_mangle_are_refused(
    headers: dict[str, str], field: str
) -> None:
    with pytest.raises(InvalidMessageError) as caught:
        build(Notification(to=("a@example.com",), subject="s", text="t", headers=headers))
    assert caught.value.field == field


def test_a_content_type_with_a_line_break_is_refused() -> None:
    bad = Attachment("x.txt", "text/plain\n", b"x")
    with pytest.raises(InvalidMessageError) as caught:
        build(Notification(to=("a@example.com",), subject="s", text="t", attachments=(bad,)))
    assert caught.value.field == "attachments.content_type"


def test_a_surrogate_in_a_body_is_refused_naming_the_body() -> None:
    for field in ("text", "html"):
        values = {"text": "t", "html": None, field: "a\udcffb"}
        with pytest.raises(InvalidMessageError, match="lone surrogate") as caught:
            build(Notification(to=("a@example.com",), subject="s", **values))  # type: ignore[arg-type]
        assert caught.value.field == field


def test_huge_header_values_are_refused_without_echoing_them() -> None:
    with pytest.raises(InvalidMessageError, match="at most 2000") as caught:
        build(Notification(to=("a@example.com",), subject="x " * 500_000, text="t"))
    assert caught.value.field == "subject"
    assert len(str(caught.value)) < 100
    name = "X-" + "n" * 5000
    with pytest.raises(InvalidMessageError) as caught:
        build(Notification(to=("a@example.com",), subject="s", text="t", headers={name: "v"}))
    assert len(str(caught.value)) < 150


def test_an_oversized_message_names_the_part_that_is_big() -> None:
    with pytest.raises(InvalidMessageError, match="the limit is 2000") as caught:
        build(Notification(to=("a@example.com",), subject="s", text="x" * 3000), max_bytes=2000)
    assert caught.value.field == "text"
    with pytest.raises(InvalidMessageError) as caught:
        build(
            Notification(to=("a@example.com",), subject="s", text="t", html="<p>" * 1000),
            max_bytes=2000,
        )
    assert caught.value.field == "html"


def test_a_utf8_sender_name_with_quotes_round_trips() -> None:
    message = build_message(
        Notification(to=("用户@例子.广告",), subject="s", text="t"),
        job_id="7f3c",
        from_email="alerts@example.com",
        from_name='Ops "night" \\ shift',
        now=NOW,
    )
    assert message.smtputf8
    assert parse(message)["From"].addresses[0].display_name == 'Ops "night" \\ shift'
