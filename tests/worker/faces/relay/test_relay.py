"""The SMTP relay as tools meet it: smtplib, every reply code, to the test server by a worker."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

import pytest

from tests.pipeline import RELAY_PASSWORD, Pipeline
from tests.worker.faces.relay.conftest import Relay
from worker.store import StoreUnavailableError


def message(sender: str = "alertmanager@tools.example.test", **headers: str) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = "oncall@example.test"
    mail["Subject"] = "[FIRING:1] DiskFull db-01"
    mail["Message-ID"] = "<1700000000.42@alertmanager.example.test>"
    for name, value in headers.items():
        mail[name.replace("_", "-")] = value
    mail.set_content("Disk / on db-01 is 97% full.")
    mail.add_alternative("<p>Disk / on db-01 is <b>97%</b> full.</p>", subtype="html")
    return mail


def test_a_message_through_the_relay_arrives_with_its_own_headers_and_mime(
    relay: Relay, pipeline: Pipeline
) -> None:
    pipeline.start_worker()
    with relay.client() as smtp:
        refused = smtp.send_message(message(X_Alertmanager_Group="db"))
        code, _ = smtp.noop()

    assert refused == {} and code == 250
    pipeline.wait_for(lambda: len(pipeline.server.messages) == 1)
    arrived = pipeline.server.messages[0]
    assert arrived.rcpt_tos == ["oncall@example.test"]
    assert arrived.mail_from == "alerts@example.test", "sent as the profile's mailbox"
    mail = arrived.message
    assert mail["Message-ID"] == "<1700000000.42@alertmanager.example.test>", "kept"
    assert mail["X-Alertmanager-Group"] == "db"
    assert mail.get_body(("html",)).get_content().strip() == (  # type: ignore[union-attr]
        "<p>Disk / on db-01 is <b>97%</b> full.</p>"
    )


def test_mail_without_auth_is_530_and_auth_without_tls_is_not_offered(relay: Relay) -> None:
    with relay.client(user=None) as smtp:
        code, _ = smtp.mail("alertmanager@tools.example.test")
    assert code == 530
    with smtplib.SMTP("127.0.0.1", relay.port, timeout=30) as plain:
        plain.ehlo()
        assert not plain.has_extn("auth"), "no AUTH before STARTTLS"
        assert plain.has_extn("starttls") and plain.has_extn("size")


def plain_login(smtp: smtplib.SMTP, user: str, password: str) -> None:
    """AUTH PLAIN alone (smtplib's login() would try PLAIN, then LOGIN: two failures)."""
    smtp.user, smtp.password = user, password
    smtp.auth("PLAIN", smtp.auth_plain)


def test_a_wrong_password_is_535_slowly_then_the_address_is_locked_out(relay: Relay) -> None:
    for _ in range(3):  # relay_lockout_failures in the pipeline
        with relay.client(user=None) as smtp, pytest.raises(smtplib.SMTPAuthenticationError) as no:
            plain_login(smtp, "alertmanager", "wrong")
        assert no.value.smtp_code == 535
    with relay.client(user=None) as smtp, pytest.raises(smtplib.SMTPAuthenticationError) as locked:
        plain_login(smtp, "alertmanager", "wrong")
    assert locked.value.smtp_code == 454
    with relay.client(user=None) as smtp, pytest.raises(smtplib.SMTPAuthenticationError):
        plain_login(smtp, "alertmanager", RELAY_PASSWORD)  # even the right one, for now


def test_senders_and_recipients_a_user_may_not_use_are_553_and_550(relay: Relay) -> None:
    with relay.client(user="limited") as smtp:
        assert smtp.mail("someone@elsewhere.example")[0] == 553
        assert smtp.mail("ci@tools.example.test")[0] == 250
        assert smtp.rcpt("boss@elsewhere.example")[0] == 550
        assert smtp.rcpt("oncall@example.test")[0] == 250


def test_a_message_over_the_size_limit_is_552(relay: Relay, pipeline: Pipeline) -> None:
    limit = pipeline.runtime.settings.relay_max_message_bytes
    big = message()
    big.add_attachment(b"x" * limit, maintype="application", subtype="octet-stream")
    with relay.client() as smtp, pytest.raises(smtplib.SMTPSenderRefused) as refused:
        smtp.send_message(big)
    assert refused.value.smtp_code == 552
    assert pipeline.runtime.store.status_counts() == {}


def test_a_store_that_fails_answers_451_so_the_tool_keeps_the_message(
    relay: Relay, pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(*args: object, **kwargs: object) -> object:
        raise StoreUnavailableError("database error: connection refused")

    monkeypatch.setattr(pipeline.runtime.store, "add_job", down)
    with relay.client() as smtp, pytest.raises(smtplib.SMTPDataError) as later:
        smtp.send_message(message())
    assert later.value.smtp_code == 451


def test_an_internationalised_address_is_accepted_and_passed_on(
    relay: Relay, pipeline: Pipeline
) -> None:
    pipeline.start_worker()
    mail = message()
    del mail["To"]
    mail["To"] = "dienst@bücher.example.test"
    with relay.client() as smtp:
        smtp.send_message(mail, to_addrs=["dienst@bücher.example.test"], mail_options=["SMTPUTF8"])
    pipeline.wait_for(lambda: len(pipeline.server.messages) == 1)
    assert pipeline.server.messages[0].rcpt_tos == ["dienst@bücher.example.test"]
    assert "SMTPUTF8" in pipeline.server.messages[0].mail_options


def test_shutdown_says_421_to_an_open_session(relay: Relay) -> None:
    smtp = relay.client()
    relay.stop()
    code, text = smtp.noop()  # the 421 the relay sent before closing
    assert (code, text[:5]) == (421, b"4.3.2")
    smtp.close()
