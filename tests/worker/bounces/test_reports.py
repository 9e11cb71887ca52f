"""RFC 3464 reports of four real shapes, parsed: job, recipient, event, status, diagnostic."""

from __future__ import annotations

import pytest

from tests.worker.bounces import samples
from worker.bounces.reports import parse_report

JOB = "4c1f0a9b2d3e4f5061728394a5b6c7d8"
MESSAGE_ID = f"<{JOB}@example.test>"


def test_postfix_names_the_job_by_envid_and_the_recipient_bounced() -> None:
    report = parse_report(samples.postfix(JOB, MESSAGE_ID, "gone@example.net"))
    assert report is not None
    assert (report.envelope_id, report.message_id) == (JOB, MESSAGE_ID)
    (r,) = report.recipients
    assert (r.recipient, r.event, r.status, r.smtp_code) == ("gone@example.net", "bounced",
                                                              "5.1.1", 550)  # fmt: skip
    assert r.diagnostic.startswith("550 5.1.1 <gone@example.net>: Recipient address rejected")


def test_exim_delay_warning_is_a_delayed_event() -> None:
    report = parse_report(samples.exim_delay(JOB, MESSAGE_ID, "slow@far.example"))
    assert report is not None
    assert report.envelope_id == JOB
    (r,) = report.recipients
    assert (r.recipient, r.event, r.status, r.smtp_code) == ("slow@far.example", "delayed",
                                                              "4.0.0", 451)  # fmt: skip


@pytest.mark.parametrize("shape", [samples.exchange_online, samples.gmail])
def test_exchange_and_gmail_reports_name_the_job_by_the_returned_message_id(shape: object) -> None:
    report = parse_report(shape(MESSAGE_ID, "gone@example.net"))  # type: ignore[operator]
    assert report is not None
    assert (report.envelope_id, report.message_id) == (None, MESSAGE_ID)
    (r,) = report.recipients
    assert (r.recipient, r.event, r.smtp_code) == ("gone@example.net", "bounced", 550)
    assert r.status in ("5.1.10", "5.1.1")


def test_an_xtext_envid_is_decoded() -> None:
    report = parse_report(samples.postfix("job+2B1", MESSAGE_ID, "gone@example.net"))
    assert report is not None and report.envelope_id == "job+1"


def test_a_message_that_is_no_report_is_none() -> None:
    assert parse_report(samples.unrelated()) is None
