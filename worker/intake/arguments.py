"""``notify()``'s arguments, checked before anything is built or stored.

Producers call ``notify`` from Python, where nothing checks a type: a string
given as ``to`` would be taken for a list of one-letter addresses, ``None``
for a subject would surface as an AttributeError deep in the email package.
``check_notification_arguments`` turns every argument of the wrong type into
an InvalidMessageError naming it, and ``check_sizes`` refuses a body or an
attachment over the profile's limit before the message (several times its
size in memory while it is built) is made.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

from worker.addresses import callback_url_problem, shown
from worker.callback_targets import CallbackPolicy
from worker.intake.message import Attachment, InvalidMessageError, Notification

_PRIORITIES = ("normal", "high")
_MAX_IDEMPOTENCY_KEY = 200
_T = TypeVar("_T")


def check_notification_arguments(
    profile: object,
    to: object,
    subject: object,
    text: object,
    html: object = None,
    cc: object = (),
    bcc: object = (),
    reply_to: object = None,
    headers: object = None,
    attachments: object = (),
    idempotency_key: object = None,
    priority: object = "normal",
) -> Notification:
    """``notify``'s arguments as a Notification; InvalidMessageError names the first wrong one.

    Only types and the arguments ``build_message`` does not see (profile
    name, priority, idempotency key) are checked here: the message's own
    rules are ``build_message``'s.
    """
    name = _of_type("profile", profile, str)
    if not name.isprintable():  # no profile has such a name; an error would echo it
        raise InvalidMessageError("profile", f"{shown(name)} is not a profile name")
    if not isinstance(priority, str) or priority not in _PRIORITIES:
        raise InvalidMessageError("priority", f"{_given(priority)} is not normal or high")
    if idempotency_key is not None and (
        not isinstance(idempotency_key, str)
        or not 1 <= len(idempotency_key) <= _MAX_IDEMPOTENCY_KEY
        or not idempotency_key.isprintable()
    ):
        raise InvalidMessageError("idempotency_key", "must be 1 to 200 printable characters")
    return Notification(
        to=_addresses("to", to),
        cc=_addresses("cc", cc),
        bcc=_addresses("bcc", bcc),
        subject=_of_type("subject", subject, str),
        text=_of_type("text", text, str),
        html=None if html is None else _of_type("html", html, str),
        reply_to=None if reply_to is None else _of_type("reply_to", reply_to, str),
        headers=_headers(headers),
        attachments=_attachments(attachments),
    )


def check_sizes(notification: Notification, max_bytes: int) -> None:
    """Refuse, before the message is built, a body or attachment that cannot fit ``max_bytes``.

    Text and HTML are at least as long in the message as in UTF-8, and an
    attachment at least its size (base64 makes it a third more), so a part
    over the limit, or parts over it together, can only make a message over it.
    """
    total = 0
    for field_name, size in _part_sizes(notification, max_bytes):
        if size > max_bytes:
            raise InvalidMessageError(
                field_name, f"is {size} bytes, the profile's message limit is {max_bytes}"
            )
        total += size
        if total > max_bytes:
            raise InvalidMessageError(
                field_name,
                f"brings the message to at least {total} bytes, the profile's limit is {max_bytes}",
            )


def _part_sizes(notification: Notification, max_bytes: int) -> Iterable[tuple[str, int]]:
    yield "text", _utf8_size(notification.text, max_bytes)
    if notification.html is not None:
        yield "html", _utf8_size(notification.html, max_bytes)
    for i, attachment in enumerate(notification.attachments):
        yield f"attachments[{i}]", len(attachment.data)


def _utf8_size(text: str, max_bytes: int) -> int:
    """The UTF-8 size of ``text``, or its length when that alone is over the limit.

    Every character is at least one byte: a text with more characters than
    the limit is refused without a copy of it being made.
    """
    if len(text) > max_bytes:
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))


def _of_type(field_name: str, value: object, kind: type[_T]) -> _T:
    if not isinstance(value, kind):
        raise InvalidMessageError(field_name, f"must be a {_TYPE_NAMES[kind]}, not {_given(value)}")
    return value


_TYPE_NAMES: dict[type, str] = {
    str: "string",
    bytes: "bytes value",
    Attachment: "worker.intake.Attachment",
}


def _given(value: object) -> str:
    """What was given, for an error: a string as itself (cut), anything else by its type."""
    if isinstance(value, str):
        return shown(value)
    if value is None:
        return "None"
    return type(value).__name__


def _addresses(field_name: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise InvalidMessageError(
            field_name, f"must be a list of addresses, not {type(value).__name__}"
        )
    items = tuple(value)
    for i, item in enumerate(items):
        _of_type(f"{field_name}[{i}]", item, str)
    return items


def _headers(value: object) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidMessageError("headers", f"must be a mapping, not {type(value).__name__}")
    headers: dict[str, str] = {}
    for name, item in value.items():
        if not isinstance(name, str):
            raise InvalidMessageError(
                "headers", f"header names must be strings, not {type(name).__name__}"
            )
        headers[name] = _of_type(f"headers[{shown(name)}]", item, str)
    return headers


def _attachments(value: object) -> tuple[Attachment, ...]:
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        raise InvalidMessageError(
            "attachments", f"must be a list of attachments, not {type(value).__name__}"
        )
    items = tuple(value)
    for i, item in enumerate(items):
        attachment = _of_type(f"attachments[{i}]", item, Attachment)
        _of_type(f"attachments[{i}].filename", attachment.filename, str)
        _of_type(f"attachments[{i}].content_type", attachment.content_type, str)
        _of_type(f"attachments[{i}].data", attachment.data, bytes)
    return items


def check_callback_url(value: object, policy: CallbackPolicy) -> str | None:
    """``callback_url`` as given, if it is an http or https URL ``policy`` allows
    (MAILPIPE_CALLBACK_ALLOWED; its addresses are checked again when it is resolved)."""
    if value is None:
        return None
    problem = callback_url_problem(value) or policy.url_refusal(str(value))
    if problem:
        raise InvalidMessageError("callback_url", problem)
    return str(value)
