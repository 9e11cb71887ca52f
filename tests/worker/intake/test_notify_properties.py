"""Properties: any input to notify()'s checks or build_message() is built or refused in one line.

Refused means an InvalidMessageError whose ``str()`` is one short line that
starts with the field it names; never another exception type. What is built
carries no header the producer did not ask for, and no control character or
line separator in any header.

Each example picks one hostile field (or none): that field gets anything,
the others good values, so that every check is reached, the last ones too.
"""

from __future__ import annotations

import dataclasses
import email
import email.policy
import re
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from worker.intake import (
    Attachment,
    InvalidMessageError,
    Notification,
    build_message,
    check_notification_arguments,
    check_sizes,
)
from worker.transport import OutgoingMessage

NOW = datetime(2026, 11, 21, 10, 15, tzinfo=UTC)
_PROPERTY = settings(
    max_examples=200,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)

# Every kind of character a header must not hold (raw, or in an encoded word) ...
_NASTY = [
    "\x00", "\x01", "\x08", "\n", "\r", "\r\n", "\x0b", "\x0c", "\x1b", "\x1c", "\x1f", "\x7f",
    "\x80", "\x85", "\x9f", "\u2028", "\u2029", "\ud800", "\udcff",
    "=?utf-8?q?a=0D=0ABcc:_x@evil.test?=", "=?utf-8?b?YQ0KQmNjOiB4?=", "=?utf-8?q?=00?=",
    "=?unknown-8bit?q?=FF?=", "Bcc: x@evil.test", "x" * 2100,
]  # fmt: skip
# ... and tricky ones it may.
_TRICKY = [
    "\t", "\ufeff", "\u200b", "\u202e", "=?", "?=", "=?utf-8?q?hello_world?=", '"', "\\", "<",
    ">", "@", ",", ";", ":", "(", ")", "[", "]", " ", "  ", ".", "é", "警报", "😀", "x" * 80,
    "a " * 60,
]  # fmt: skip
_SAFE_CHARACTERS = st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"))
_SAFE_TEXT = st.lists(
    st.one_of(st.sampled_from(_TRICKY), st.text(_SAFE_CHARACTERS, max_size=8)), max_size=6
).map("".join)
_TEXT = st.lists(
    st.one_of(st.sampled_from(_NASTY), st.sampled_from(_TRICKY), st.text(max_size=8)), max_size=6
).map("".join)

_ATEXT = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789!#$%&'*+-/=?^_`{|}~", min_size=1)
_DOMAINS = st.from_regex(r"[a-z0-9]{1,20}(-[a-z0-9]{1,5})?", fullmatch=True)
_GOOD_ADDRESSES = st.one_of(
    st.sampled_from(["oncall@example.com", "用户@例子.广告", "ü@example.com", "x@Example.COM"]),
    st.builds(lambda local, host: f"{local}@{host}.example", _ATEXT, _DOMAINS),
)
_BAD_ADDRESSES = st.one_of(
    st.sampled_from(["a@b", "@x.y", "", "a@example.com\r\nBcc: x@evil.test", "a" * 2000]),
    st.builds(lambda local: f"{local}@example.com", _SAFE_TEXT),
    st.builds(lambda local, domain: f"{local}@{domain}.com", _TEXT, _TEXT),
    _GOOD_ADDRESSES.map(lambda a: a + "\u2028"),
    _TEXT,
)
_GOOD_HEADER_NAMES = st.one_of(
    st.sampled_from(["X-Incident-Id", "X-A", "x-a", "Received", "X-" + "n" * 70]),
    st.from_regex(r"X-[A-Za-z0-9-]{1,30}", fullmatch=True),
)
_BAD_HEADER_NAMES = st.one_of(
    st.sampled_from(["Bcc", "subject", "Content-Disposition", "Content-ID", "Resent-To"]),
    st.sampled_from(["Resent-Date", "Orig-Date", "X-" + "n" * 80, "X:Y", "", "X-A\n", "X-A\x85"]),
    _TEXT,
)
_GOOD_CONTENT_TYPES = st.sampled_from(
    ["text/plain", "application/octet-stream", "image/png", "application/pdf"]
)
_BAD_CONTENT_TYPES = st.one_of(
    st.sampled_from(["text/plain\n", "x", "text/plain; charset=x", "", "message/rfc822"]),
    st.sampled_from(["multipart/mixed", "Message/Partial"]),
    _TEXT,
)
_MAX_BYTES = st.sampled_from([300, 3000, 100_000])

# For each field of a notification (and the sender): good values, and anything.
_FIELDS: dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]] = {
    "subject": (_SAFE_TEXT, _TEXT),
    "text": (st.text(max_size=2000), _TEXT),
    "html": (st.none() | st.text(max_size=500), _TEXT),
    "reply_to": (st.none() | _GOOD_ADDRESSES, _BAD_ADDRESSES),
    "headers": (
        st.dictionaries(_GOOD_HEADER_NAMES, _SAFE_TEXT, max_size=3),
        st.dictionaries(_GOOD_HEADER_NAMES | _BAD_HEADER_NAMES, _TEXT, min_size=1, max_size=3),
    ),
    "attachments": (
        st.lists(st.builds(Attachment, _SAFE_TEXT, _GOOD_CONTENT_TYPES, st.binary(max_size=400))),
        st.lists(
            st.builds(
                Attachment,
                _TEXT,
                _GOOD_CONTENT_TYPES | _BAD_CONTENT_TYPES,
                st.binary(max_size=400),
            ),
            min_size=1,
            max_size=3,
        ),
    ),
    "from_name": (st.none() | _SAFE_TEXT, _TEXT),
    "from_email": (st.sampled_from(["alerts@example.com", "üalerts@example.com"]), _BAD_ADDRESSES),
}
_RECIPIENT_FIELDS = ("to", "cc", "bcc")


@st.composite
def _inputs(draw: st.DrawFn, *, hostile_fields: bool = True) -> tuple[Notification, dict[str, Any]]:
    """A notification and build_message's sender options, with at most one hostile field."""
    hostile = (
        draw(st.sampled_from([None, *_RECIPIENT_FIELDS, *_FIELDS])) if hostile_fields else None
    )
    event(f"hostile: {hostile}")
    values = {name: draw(bad if name == hostile else good) for name, (good, bad) in _FIELDS.items()}
    # Distinct recipients, split into to, cc and bcc; the hostile one gets anything.
    unique = st.lists(_GOOD_ADDRESSES, min_size=1, max_size=6, unique_by=str.lower)
    recipients = draw(unique)
    cut = sorted(draw(st.lists(st.integers(0, len(recipients)), min_size=2, max_size=2)))
    first = max(1, cut[0])
    second = max(first, cut[1])
    groups = [recipients[:first], recipients[first:second], recipients[second:]]
    for name, group in zip(_RECIPIENT_FIELDS, groups, strict=True):
        values[name] = tuple(group)
        if name == hostile:
            values[name] = tuple(draw(st.lists(_BAD_ADDRESSES, min_size=1, max_size=3)))
    options = {"from_name": values.pop("from_name"), "from_email": values.pop("from_email")}
    return Notification(**values), options


_FIELD = re.compile(
    r"(profile|to|cc|bcc|reply_to|subject|text|html|from_email|from_name|priority"
    r"|idempotency_key|headers|attachments)(\[.+\])?(\.(filename|content_type|data))?"
)
# What no header of a built message may hold (TAB is allowed).
_NOT_IN_HEADERS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def _refused(error: InvalidMessageError) -> None:
    text = str(error)
    assert len(text.splitlines()) == 1, text
    assert len(text) < 400, "no huge value echoed"
    assert _FIELD.fullmatch(error.field), error.field
    assert text.startswith(f"{error.field}: "), text
    event(f"refused: {error.field.split('[')[0]}: {text.split(': ', 1)[1][:24]}")


def _build(notification: Notification, **options: Any) -> OutgoingMessage | None:
    """The message, or None when refused as the contract says."""
    try:
        message = build_message(notification, job_id="7f3c", now=NOW, **options)
    except InvalidMessageError as exc:
        _refused(exc)
        return None
    event("built")
    return message


def _assert_built_safely(message: OutgoingMessage, notification: Notification) -> None:
    parsed = email.message_from_bytes(message.data, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    asked = {name.lower() for name in notification.headers}
    written = {"from", "to", "cc", "reply-to", "subject", "date", "message-id", "mime-version"}
    written |= {"content-type", "content-transfer-encoding"}
    names = {name.lower() for name in parsed}
    assert names <= written | asked, names - written - asked
    assert "bcc" not in names
    for part in parsed.walk():
        for name, value in part.items():
            assert not _NOT_IN_HEADERS.search(str(value)), (name, value)
    if "=?" not in notification.subject:  # encoded words are decoded, as any reader does
        assert parsed["Subject"].split() == notification.subject.split()
    if not message.smtputf8:
        assert message.data.isascii()
    for line in message.data.split(b"\r\n"):
        assert b"\r" not in line and b"\n" not in line, "bare CR or LF"
    assert set(message.recipients) == {
        a.strip() for a in (*notification.to, *notification.cc, *notification.bcc)
    }


@_PROPERTY
@given(inputs=_inputs(), max_bytes=_MAX_BYTES)
def test_build_message_builds_safely_or_refuses_in_one_line(
    inputs: tuple[Notification, dict[str, Any]], max_bytes: int
) -> None:
    notification, options = inputs
    message = _build(notification, max_bytes=max_bytes, **options)
    if message is not None:
        assert len(message.data) <= max_bytes
        _assert_built_safely(message, notification)


_ANYTHING = st.one_of(
    st.none(),
    st.integers(),
    st.floats(allow_nan=False),
    st.booleans(),
    st.binary(max_size=10),
    _TEXT,
    st.lists(st.one_of(st.none(), st.integers(), _TEXT), max_size=3),
    st.dictionaries(st.one_of(_TEXT, st.integers()), st.one_of(_TEXT, st.integers()), max_size=2),
    st.builds(
        Attachment,
        st.one_of(_TEXT, st.integers()),
        _GOOD_CONTENT_TYPES | _BAD_CONTENT_TYPES,
        st.one_of(st.binary(max_size=10), _TEXT),
    ),
)
_HASHABLE = st.one_of(st.none(), st.integers(), st.binary(max_size=5), _TEXT, _GOOD_HEADER_NAMES)
_ARGUMENTS: dict[str, st.SearchStrategy[Any]] = {
    "profile": st.just("relay"),
    "to": st.lists(_GOOD_ADDRESSES, min_size=1, max_size=2, unique_by=str.lower),
    "subject": _SAFE_TEXT,
    "text": st.text(max_size=500),
    "html": st.none() | st.text(max_size=200),
    "cc": st.just(()),
    "bcc": st.lists(st.just("audit@example.org"), max_size=1).map(iter),
    "reply_to": st.none() | _GOOD_ADDRESSES,
    "headers": st.none() | st.dictionaries(_GOOD_HEADER_NAMES, _SAFE_TEXT, max_size=2),
    "attachments": st.lists(
        st.builds(Attachment, _SAFE_TEXT, _GOOD_CONTENT_TYPES, st.binary(max_size=50)), max_size=2
    ),
    "idempotency_key": st.none() | st.text("abc:-_0123456789", min_size=1, max_size=50),
    "priority": st.sampled_from(["normal", "high"]),
}
_HOSTILE_ARGUMENT = {
    **{name: _ANYTHING for name in _ARGUMENTS},
    "to": _ANYTHING | st.lists(_ANYTHING, max_size=3),
    "headers": _ANYTHING | st.dictionaries(_HASHABLE, _ANYTHING, min_size=1, max_size=3),
    "attachments": _ANYTHING | st.lists(_ANYTHING, min_size=1, max_size=3),
}


@st.composite
def _arguments(draw: st.DrawFn) -> dict[str, Any]:
    hostile = draw(st.sampled_from([None, *_ARGUMENTS]))
    event(f"hostile: {hostile}")
    return {
        name: draw(_HOSTILE_ARGUMENT[name] if name == hostile else good)
        for name, good in _ARGUMENTS.items()
    }


@_PROPERTY
@given(arguments=_arguments(), max_bytes=_MAX_BYTES, big=st.sampled_from([0, 0, 1, 50]))
def test_notify_checks_then_build_refuse_in_one_line_or_build(
    arguments: dict[str, Any], max_bytes: int, big: int
) -> None:
    """notify()'s path before the store: argument checks, sizes, then the message."""
    if big and isinstance(arguments["text"], str):
        arguments["text"] += "x" * big * max_bytes  # huge next to the tiny limit
    try:
        notification = check_notification_arguments(**arguments)
        check_sizes(notification, max_bytes)
    except InvalidMessageError as exc:
        _refused(exc)
        refused: InvalidMessageError | None = exc
    else:
        refused = None
    if refused is not None:
        assert refused.field.split("[")[0].split(".")[0] in arguments
        return
    message = _build(notification, from_email="alerts@example.com", max_bytes=max_bytes)
    if message is not None:
        _assert_built_safely(message, notification)


@_PROPERTY
@given(
    inputs=_inputs(hostile_fields=False),
    max_bytes=st.integers(min_value=20, max_value=800),
    padding=st.tuples(st.sampled_from(["x", "é", "😀", "\n", "\r\n", " "]), st.integers(0, 800)),
)
def test_the_size_check_never_refuses_a_message_that_would_fit(
    inputs: tuple[Notification, dict[str, Any]], max_bytes: int, padding: tuple[str, int]
) -> None:
    """Whatever check_sizes refuses, build_message would have built bigger than the limit."""
    notification, options = inputs
    character, count = padding
    notification = dataclasses.replace(notification, text=notification.text + character * count)
    try:
        check_sizes(notification, max_bytes)
    except InvalidMessageError as exc:
        _refused(exc)
        refused = True
    else:
        refused = False
    if refused:
        message = _build(notification, max_bytes=10**9, **options)
        assert message is None or len(message.data) > max_bytes
