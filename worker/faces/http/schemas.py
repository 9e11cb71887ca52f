"""The JSON the HTTP intake accepts and answers, as models (they are the OpenAPI schema too)."""

from __future__ import annotations

import base64
import binascii
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from worker.intake import Attachment

Address = str  # checked by the message builder, which names the field


class AttachmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filename: str = Field(min_length=1, max_length=255)
    content_type: str = Field("application/octet-stream", max_length=255)
    content_base64: str = Field(description="The file's bytes, base64-encoded.")

    @field_validator("content_base64")
    @classmethod
    def _base64(cls, value: str) -> str:
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("not valid base64") from None
        return value

    def attachment(self) -> Attachment:
        return Attachment(
            filename=self.filename,
            content_type=self.content_type,
            data=base64.b64decode(self.content_base64),
        )


class MessageIn(BaseModel):
    """One message's fields, as ``notify()`` takes them."""

    model_config = ConfigDict(extra="forbid")

    to: list[Address] = Field(default_factory=list, max_length=1000)
    cc: list[Address] = Field(default_factory=list, max_length=1000)
    bcc: list[Address] = Field(default_factory=list, max_length=1000)
    subject: str = Field(max_length=2000)
    text: str
    html: str | None = None
    reply_to: Address | None = None
    headers: dict[str, str] = Field(default_factory=dict, max_length=50)
    attachments: list[AttachmentIn] = Field(default_factory=list, max_length=100)

    def fields(self) -> dict[str, Any]:
        """This message's keyword arguments of ``notify()`` (a batch entry's, for notify_many)."""
        own = set(MessageIn.model_fields) - {"attachments"}
        values = self.model_dump(include=own)
        return values | {"attachments": [a.attachment() for a in self.attachments]}


_CALLBACK_URL = (
    "Where the job's events are POSTed as signed JSON (X-Mailpipe-Signature); "
    "MAILPIPE_CALLBACK_ALLOWED says where that may be."
)


class NotificationIn(MessageIn):
    """What ``notify()`` takes, as JSON; the ``Idempotency-Key`` header makes a retry safe."""

    profile: str = Field(min_length=1, max_length=64)
    priority: Literal["normal", "high"] = "normal"
    callback_url: str | None = Field(None, max_length=2000, description=_CALLBACK_URL)


class BatchMessageIn(MessageIn):
    """One personalised message of a batch; its own key makes resending the batch safe."""

    idempotency_key: str | None = Field(None, min_length=1, max_length=200)
    callback_url: str | None = Field(
        None, max_length=2000, description=_CALLBACK_URL + " This message's, not the batch's."
    )


class BatchIn(BaseModel):
    """Many messages of one profile (a fan-out): stored together, sent in batch tasks."""

    model_config = ConfigDict(extra="forbid")

    profile: str = Field(min_length=1, max_length=64)
    priority: Literal["normal", "high"] = "normal"
    callback_url: str | None = Field(
        None, max_length=2000, description=_CALLBACK_URL + " Every message's that names none."
    )
    messages: list[BatchMessageIn] = Field(min_length=1, max_length=10_000)


class Accepted(BaseModel):
    """The job was stored and queued (or already existed for this idempotency key)."""

    id: str
    status_url: str


class BatchAccepted(BaseModel):
    """Every message's job, in the order given."""

    notifications: list[Accepted]


class Health(BaseModel):
    status: Literal["ok"]
