"""Outcome classes and hints for the replies Microsoft 365 and Gmail really give (pure)."""

from __future__ import annotations

import base64

import pytest

from worker.transport import Phase, Reply
from worker.transport.smtp.replies import classify, enhanced_code, hint_for, lost, smtp_reply
from worker.transport.smtp.sasl import BearerResponder, oauthbearer, parse_xoauth2, xoauth2


@pytest.mark.parametrize(
    ("phase", "code", "text", "kind", "hint"),
    [
        ("data", 250, "2.0.0 Ok: queued as 4Bx9Kq1", "delivered", None),
        (
            "auth",
            535,
            "5.7.3 Authentication unsuccessful [SN4PR0501CA0054.namprd05]",
            "auth_rejected",
            "service principal or the mailbox permission",
        ),
        (
            "auth",
            535,
            "5.7.139 Authentication unsuccessful, SmtpClientAuthentication is "
            "disabled for the Tenant.",
            "permanent",
            "Set-CASMailbox",
        ),
        (
            "auth",
            535,
            "5.7.8 Username and Password not accepted.",
            "auth_rejected",
            "domain-wide delegation",
        ),
        ("auth", 534, "5.7.9 Application-specific password required.", "auth_rejected", None),
        ("auth", 454, "4.7.0 Temporary authentication failure", "auth_rejected", None),
        (
            "mail",
            530,
            "5.7.57 Client not authenticated to send mail.",
            "permanent",
            "must use AUTH",
        ),
        (
            "auth",
            550,
            "5.7.30 Basic authentication is not supported for Client Submission.",
            "permanent",
            'auth = "oauth"',
        ),
        (
            "mail",
            554,
            "5.2.252 SendAsDenied; alerts@example.com not allowed to send as x",
            "permanent",
            "SendAs",
        ),
        (
            "data",
            554,
            "5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException",
            "permanent",
            "10,000 recipients a day",
        ),
        (
            "connect",
            432,
            "4.3.2 Concurrent connections limit exceeded.",
            "transient",
            "Microsoft 365 allows 3",
        ),
        (
            "data",
            552,
            "5.3.4 Message size exceeds fixed maximum message size",
            "permanent",
            "too large",
        ),
        ("rcpt", 451, "4.3.0 Temporary failure", "transient", None),
        ("rcpt", 553, "5.1.3 Bad recipient address syntax", "permanent", None),
        ("mail", 421, "4.3.2 Service not available", "transient", None),
        ("data", None, "connection lost after DATA", "transient", None),
    ],
)
def test_classification_and_hints(
    phase: Phase, code: int | None, text: str, kind: str, hint: str | None
) -> None:
    result = smtp_reply(phase, code, text)
    assert result.kind == kind
    if hint is None:
        assert result.hint is None
    else:
        assert hint in (result.hint or "")


def test_enhanced_code_and_queue_id_are_extracted() -> None:
    result = smtp_reply("data", 250, b"2.0.0 Ok: queued as 4Bx9Kq1")
    assert (result.enhanced_code, result.queue_id) == ("2.0.0", "4Bx9Kq1")
    assert smtp_reply("auth", 535, "5.7.3 Authentication unsuccessful").enhanced_code == "5.7.3"


def test_a_535_outside_auth_is_permanent() -> None:
    assert classify(535, "5.7.3 x", "mail") == "permanent"


def test_xoauth2_string() -> None:
    assert (
        xoauth2("alerts@example.com", "tok") == "user=alerts@example.com\x01auth=Bearer tok\x01\x01"
    )


def test_xoauth2_matches_googles_documented_example_on_the_wire() -> None:
    # Google's XOAUTH2 protocol page: the initial client response for this user and
    # token, base64-encoded as it goes on the AUTH line.
    token = "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg"
    documented = (
        "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNr"
        "QmhkSFJoZG1semRHRXVZMjl0Q2cBAQ=="
    )
    assert base64.b64encode(xoauth2("someuser@example.com", token).encode()).decode() == documented


def test_oauthbearer_string_escapes_the_gs2_name() -> None:
    assert oauthbearer("a,b=c@example.com", "tok", "smtp.gmail.com", 587) == (
        "n,a=a=2Cb=3Dc@example.com,\x01host=smtp.gmail.com\x01port=587\x01auth=Bearer tok\x01\x01"
    )


def test_responder_answers_a_refusal_as_each_mechanism_requires() -> None:
    # Google's documented refusal as it comes on the wire (``334 <base64>``); smtplib
    # decodes the base64 before it calls the responder, as done here.
    on_the_wire = (
        "eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIG1hYyIsInNjb3BlIjoiaHR0cHM6Ly9tYWls"
        "Lmdvb2dsZS5jb20vIn0K"
    )
    xo = BearerResponder("XOAUTH2", "initial")
    assert xo() == "initial"
    assert xo(base64.decodebytes(on_the_wire.encode())) == "", "an empty line ends the exchange"
    assert xo.server_error == {
        "status": "401",
        "schemes": "bearer mac",
        "scope": "https://mail.google.com/",
    }
    ob = BearerResponder("OAUTHBEARER", "initial")
    assert ob(b"") == "initial", "an empty 334 asks for the initial response"
    assert ob(b'{"status":"invalid_token"}') == "\x01"


def test_parse_xoauth2_reads_back_what_xoauth2_writes() -> None:
    sent = xoauth2("alerts@example.com", "tok-123")
    assert parse_xoauth2(sent.encode()) == ("alerts@example.com", "tok-123")
    assert parse_xoauth2(b"user=a@b.c\x01auth=Basic x\x01\x01") is None


@pytest.mark.parametrize(
    ("phase", "code", "text", "kind"),
    [
        # RFC 5321 reply classes, on both sides of each boundary.
        ("data", 200, "2.0.0 Ok", "delivered"),
        ("data", 399, "3.0.0 go on", "delivered"),
        ("data", 400, "4.0.0 try later", "transient"),
        ("data", 499, "4.0.0 try later", "transient"),
        ("data", 500, "5.0.0 syntax error", "permanent"),
        ("data", 199, "1.0.0 not a reply class of SMTP", "permanent"),
        ("auth", 235, "2.7.0 Authentication successful", "delivered"),
        # Microsoft 365 answers AUTH with 530 5.7.57 when it will not authenticate the
        # client: a fresh token may help, as with 535.
        ("auth", 530, "5.7.57 Client not authenticated to send mail.", "auth_rejected"),
        ("auth", 530, "5.7.0 Must issue a STARTTLS command first", "permanent"),
        ("auth", 454, "4.7.1 Relay access denied", "transient"),
        ("auth", 421, "4.7.0 Try again later, closing connection", "transient"),
        ("auth", 550, "5.7.139 SmtpClientAuthentication is disabled", "permanent"),
        ("auth", 535, "  5.7.139 Authentication unsuccessful", "permanent"),
        ("mail", 550, "5.7.139 not at AUTH", "permanent"),
        ("mail", 534, "5.7.9 not at AUTH", "permanent"),
        ("mail", 454, "4.7.0 Temporary failure, not at AUTH", "transient"),
    ],
)
def test_reply_classes_on_their_boundaries(phase: Phase, code: int, text: str, kind: str) -> None:
    assert classify(code, text, phase) == kind
    assert smtp_reply(phase, code, text).kind == kind


@pytest.mark.parametrize(
    ("code", "text", "provider", "hint"),
    [
        (535, "5.7.8 Username and Password not accepted.", "google_workspace", "delegation"),
        (535, "5.7.8 Username and Password not accepted.", "generic", None),
        (535, "5.7.8 Username and Password not accepted.", "microsoft365", None),
        (535, "5.7.3 Authentication unsuccessful", "microsoft365", "service principal"),
        (535, "5.7.3 Authentication unsuccessful", "google_workspace", None),
        (535, "5.7.139 Authentication unsuccessful", "microsoft365", "Set-CASMailbox"),
        (535, "5.7.139 Authentication unsuccessful", "generic", None),
        (530, "5.7.57 Client not authenticated", "microsoft365", "must use AUTH"),
        (530, "5.7.57 Client not authenticated", "generic", None),
        (535, "5.7.0 Authentication failed", "microsoft365", None),
        (535, "Authentication failed", None, None),
        (550, "5.7.3 not an AUTH reply", None, None),
        # A hint known from no provider in particular is for every profile.
        (552, "5.3.4 Message size exceeds fixed maximum message size", "generic", "too large"),
        (552, "5.3.4 Message size exceeds fixed maximum message size", None, "too large"),
    ],
)
def test_a_providers_advice_is_given_only_for_that_providers_profiles(
    code: int, text: str, provider: str | None, hint: str | None
) -> None:
    result = smtp_reply("auth", code, text, provider)
    assert result.hint == (hint_for(code, result.enhanced_code, provider))
    if hint is None:
        assert result.hint is None
    else:
        assert hint in (result.hint or "")


def test_the_first_fitting_hint_wins_in_the_tables_order() -> None:
    assert "Set-CASMailbox" in (hint_for(535, "5.7.139", "microsoft365") or "")
    assert "service principal" in (hint_for(535, "5.7.3", None) or "")


def test_a_reply_that_is_not_utf8_is_read_with_replacements() -> None:
    result = smtp_reply("rcpt", 550, b"5.1.1 Empf\xe4nger unbekannt\r\n")
    assert result.text == "5.1.1 Empf\ufffdnger unbekannt"
    assert (result.kind, result.code, result.enhanced_code) == ("permanent", 550, "5.1.1")


def test_a_multi_line_reply_becomes_one_line() -> None:
    result = smtp_reply("ehlo", 250, "mx.example.test Hello\n  SIZE 35882577\r\n8BITMIME ")
    assert result.text == "mx.example.test Hello SIZE 35882577 8BITMIME"
    assert result.enhanced_code is None


def test_a_queue_id_is_read_only_from_a_success() -> None:
    assert smtp_reply("data", 200, "2.0.0 queued as A1.b-2").queue_id == "A1.b-2"
    assert smtp_reply("data", 299, "2.0.0 queued as A1").queue_id == "A1"
    assert smtp_reply("data", 300, "3.0.0 queued as A1").queue_id is None
    assert smtp_reply("data", 451, "4.3.0 queued as A1, then lost").queue_id is None
    assert smtp_reply("data", None, "queued as A1").queue_id is None
    assert smtp_reply("data", 250, "2.0.0 Ok").queue_id is None


def test_a_lost_connection_has_no_code_and_is_transient() -> None:
    result = smtp_reply("data", None, b"")
    assert (result.kind, result.code, result.text, result.hint) == ("transient", None, "", None)


def test_the_enhanced_code_is_read_only_at_the_start() -> None:
    assert enhanced_code("  4.7.0 busy") == "4.7.0"
    assert enhanced_code("busy 4.7.0") is None
    assert enhanced_code("5.7.1234 too long") is None


def test_a_connection_lost_without_a_reply_is_transient_and_named_on_one_line() -> None:
    assert lost(ConnectionResetError("reset\r\n  by peer")) == Reply(
        "transient", None, "ConnectionResetError: reset by peer"
    )
