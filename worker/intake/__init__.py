"""Intake: how a job enters: validate, build the message once, store, then publish."""

from worker.intake.arguments import check_notification_arguments, check_sizes
from worker.intake.message import Attachment, InvalidMessageError, Notification, build_message
from worker.intake.notify import Priority, notify, notify_many
from worker.queue.publishing import publish, publish_batch, publish_callbacks

__all__ = [
    "Attachment",
    "InvalidMessageError",
    "Notification",
    "Priority",
    "build_message",
    "check_notification_arguments",
    "check_sizes",
    "notify",
    "notify_many",
    "publish",
    "publish_batch",
    "publish_callbacks",
]
