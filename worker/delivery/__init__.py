"""Delivery: claim a job, respect the mailbox's limits, send it, record the attempt, decide."""

from worker.delivery.rate_limit import RateLimiter
from worker.delivery.service import Decision, DeliveryContext, deliver

__all__ = ["Decision", "DeliveryContext", "RateLimiter", "deliver"]
