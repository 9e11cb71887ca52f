"""notify()'s arguments: wrong types and oversized parts are refused, naming the field, first."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from worker.credentials import load_profiles
from worker.intake import (
    Attachment,
    InvalidMessageError,
    Notification,
    check_notification_arguments,
    check_sizes,
    notify,
)
from worker.intake.message import DEFAULT_MAX_MESSAGE_BYTES

GOOD: dict[str, Any] = {"profile": "relay", "to": ["a@example.com"], "subject": "s", "text": "t"}


@pytest.mark.parametrize(
    ("changes", "field", "problem"),
    [
        ({"to": None}, "to", "must be a list of addresses, not NoneType"),
        ({"to": "a@b.c"}, "to", "must be a list of addresses, not str"),
        ({"to": b"a@b.c"}, "to", "not bytes"),
        ({"to": ["a@example.com", 3]}, "to[1]", "must be a string, not int"),
        ({"cc": None}, "cc", "list of addresses"),
        ({"bcc": 5}, "bcc", "list of addresses"),
        ({"text": None}, "text", "must be a string, not None"),
        ({"subject": 3}, "subject", "must be a string, not int"),
        ({"html": 5}, "html", "must be a string, not int"),
        ({"reply_to": ["a@example.com"]}, "reply_to", "not list"),
        ({"headers": {"X-Id": 42}}, "headers['X-Id']", "must be a string, not int"),
        ({"headers": {42: "x"}}, "headers", "header names must be strings, not int"),
        ({"headers": [("X-Id", "1")]}, "headers", "must be a mapping, not list"),
        ({"attachments": [b"data"]}, "attachments[0]", "must be a worker.intake.Attachment"),
        ({"attachments": Attachment("a", "text/plain", b"")}, "attachments", "not Attachment"),
        (
            {"attachments": [Attachment("a", "text/plain", b""), Attachment(3, "x/y", b"")]},  # type: ignore[arg-type]
            "attachments[1].filename",
            "must be a string, not int",
        ),
        (
            {"attachments": [Attachment("a", "text/plain", "text")]},  # type: ignore[arg-type]
            "attachments[0].data",
            "must be a bytes value, not 'text'",
        ),
        ({"priority": None}, "priority", "None is not normal or high"),
        ({"priority": "urgent"}, "priority", "'urgent' is not normal or high"),
        ({"idempotency_key": 7}, "idempotency_key", "printable"),
        ({"idempotency_key": "a\nb"}, "idempotency_key", "printable"),
        ({"profile": None}, "profile", "must be a string, not None"),
    ],
)
def test_wrong_types_are_refused_naming_the_field(
    changes: dict[str, Any], field: str, problem: str
) -> None:
    with pytest.raises(InvalidMessageError) as caught:
        check_notification_arguments(**{**GOOD, **changes})
    assert caught.value.field == field
    assert str(caught.value) == f"{field}: {problem}" or problem in str(caught.value)
    assert len(str(caught.value).splitlines()) == 1


def test_good_arguments_become_a_notification() -> None:
    notification = check_notification_arguments(
        **GOOD, cc=(a for a in ["b@example.com"]), headers={"X-Id": "1"}, priority="high"
    )
    assert notification == Notification(
        to=("a@example.com",), cc=("b@example.com",), subject="s", text="t", headers={"X-Id": "1"}
    )


@pytest.mark.parametrize(
    ("notification", "field"),
    [
        (Notification(to=(), subject="s", text="x" * 2001), "text"),
        (Notification(to=(), subject="s", text="é" * 1001), "text"),  # 2002 bytes in UTF-8
        (Notification(to=(), subject="s", text="t", html="h" * 2001), "html"),
        (Notification(to=(), subject="s", text="x" * 1500, html="h" * 600), "html"),
        (
            Notification(
                to=(),
                subject="s",
                text="t",
                attachments=(
                    Attachment("a", "text/plain", b"a" * 10),
                    Attachment("b", "text/plain", b"b" * 10),
                    Attachment("c", "text/plain", b"c" * 2001),
                ),
            ),
            "attachments[2]",
        ),
        (
            Notification(
                to=(),
                subject="s",
                text="t" * 1000,
                attachments=(Attachment("a", "text/plain", b"a" * 1001),),
            ),
            "attachments[0]",
        ),
    ],
)
def test_sizes_are_checked_part_by_part_naming_the_part(
    notification: Notification, field: str
) -> None:
    with pytest.raises(InvalidMessageError, match="2000") as caught:
        check_sizes(notification, 2000)
    assert caught.value.field == field


def test_a_50_mb_body_is_refused_before_anything_is_built() -> None:
    text = "x" * 50_000_000
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(InvalidMessageError) as caught:
            check_sizes(Notification(to=(), subject="s", text=text), DEFAULT_MAX_MESSAGE_BYTES)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert caught.value.field == "text"
    assert str(caught.value) == (
        f"text: is 50000000 bytes, the profile's message limit is {DEFAULT_MAX_MESSAGE_BYTES}"
    )
    assert peak < 1_000_000, "no copy of the text was made"
    assert time.perf_counter() - started < 1


class _NoStore:
    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the store was used ({name}) for a refused notification")


class _Producer:
    """Just enough of a Producer for notify() to reach its checks: profiles, no store."""

    def __init__(self, profiles_file: Path) -> None:
        self.profiles = load_profiles(profiles_file, {}, secrets=False)
        self.store = _NoStore()
        self.settings = _NoStore()
        self.metrics = _NoStore()
        self.celery = _NoStore()


@pytest.fixture
def producer(tmp_path: Path) -> _Producer:
    path = tmp_path / "profiles.toml"
    path.write_text(
        '[profiles.relay]\nhost = "smtp.example.net"\nfrom_email = "alerts@example.net"\n'
        'auth = "password"\npassword_env = "RELAY_PASSWORD"\nmax_message_bytes = 4096\n'
    )
    return _Producer(path)


def test_notify_refuses_wrong_types_before_it_needs_a_runtime() -> None:
    # No runtime given and none buildable here: the check comes first.
    with pytest.raises(InvalidMessageError, match=r"^to: must be a list of addresses, not str$"):
        notify("relay", to="a@b.c", subject="s", text="t")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"text": "x" * 50_000}, "text"),
        ({"html": "<p>" * 5_000}, "html"),
        ({"attachments": [Attachment("a.bin", "application/octet-stream", b"a" * 5000)]},
         "attachments[0]"),
    ],
)  # fmt: skip
def test_notify_checks_the_profiles_size_limit_before_building(
    producer: _Producer, changes: dict[str, Any], field: str
) -> None:
    arguments = {**GOOD, **changes}
    with pytest.raises(InvalidMessageError, match="limit is 4096") as caught:
        notify(**arguments, runtime=producer)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_notify_refuses_bad_input_before_the_store(producer: _Producer) -> None:
    with pytest.raises(InvalidMessageError) as caught:
        notify(**{**GOOD, "subject": "a\u2028b"}, runtime=producer)  # type: ignore[arg-type]
    assert caught.value.field == "subject"
