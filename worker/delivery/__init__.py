"""Delivery: claim a job, respect the mailbox's limits, send it, record the attempt, decide."""

from worker.delivery.batch import deliver, deliver_batch, deliver_with_queued
from worker.delivery.decide import Decision, next_step
from worker.delivery.leases import Leases
from worker.delivery.rate_limit import RateLimiter
from worker.delivery.service import DeliveryContext, envelope

__all__ = [
    "Decision",
    "DeliveryContext",
    "Leases",
    "RateLimiter",
    "deliver",
    "deliver_batch",
    "deliver_with_queued",
    "envelope",
    "next_step",
]
