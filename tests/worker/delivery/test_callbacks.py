"""The callback's body and signature: pure, checked the way a receiver checks them."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime

from tests.fakes.callback_receiver import verify
from worker.delivery.callbacks import body, signature
from worker.store import Event


def event() -> Event:
    return Event(
        id="e1", job_id="j1", event="failed", profile="alerts", recipient="gone@example.test",
        at=datetime(2026, 12, 7, 12, 0, 5, tzinfo=UTC), smtp_code=550, enhanced_code="5.1.1",
        text="5.1.1 User unknown",
    )  # fmt: skip


def test_the_body_has_the_contract_fields_and_a_utc_time() -> None:
    assert json.loads(body(event())) == {
        "event": "failed",
        "job_id": "j1",
        "profile": "alerts",
        "recipient": "gone@example.test",
        "at": "2026-12-07T12:00:05Z",
        "smtp_code": 550,
        "enhanced_code": "5.1.1",
        "text": "5.1.1 User unknown",
    }


def test_the_signature_is_an_hmac_of_timestamp_dot_body() -> None:
    content = body(event())
    header = signature(b"s3cret", 1_800_000_000, content)
    mac = hmac.new(b"s3cret", b"1800000000." + content, hashlib.sha256).hexdigest()
    assert header == f"t=1800000000,v1={mac}"
    assert verify(b"s3cret", header, content, now=1_800_000_010)


def test_a_changed_body_a_wrong_key_or_an_old_timestamp_do_not_verify() -> None:
    content = body(event())
    header = signature(b"s3cret", 1_800_000_000, content)
    assert not verify(b"s3cret", header, content.replace(b"550", b"250"), now=1_800_000_000)
    assert not verify(b"other", header, content, now=1_800_000_000)
    assert not verify(b"s3cret", header, content, now=1_800_000_000 + 3600)
