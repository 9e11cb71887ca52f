"""Counters and histograms shared by every worker process and host, kept in Redis.

A counter in a worker process's memory would count one process of many and
die with it (prefork children come and go); Redis is shared by all of them,
so ``GET /metrics`` on any ``mailpipe serve`` shows the fleet's totals. A
Redis restart resets them, which Prometheus' ``rate()`` reads as a counter
reset. Recording never fails a job: a Redis error drops the sample and logs.

Each metric is one Redis hash (``mailpipe:metrics:<name>``); a field is the
JSON of its sorted labels, plus ``|le=<bound>``, ``|sum`` or ``|count`` for
histograms.
"""

from __future__ import annotations

import json
import logging
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import redis

from worker import redis_keys
from worker.errors import UnavailableError
from worker.redis_adapter import redis_errors

log = logging.getLogger(__name__)

Labels = Mapping[str, str]

COUNTERS: Mapping[str, str] = {
    "jobs_enqueued": "Notifications stored and queued, by profile.",
    "jobs_delivered": "Jobs whose message the server accepted, by profile.",
    "jobs_failed": "Jobs given up (permanent error or attempts used up), by profile.",
    "attempts": "Delivery attempts, by profile and outcome.",
    "token_requests": "HTTP requests to token endpoints, by profile and result.",
    "fallbacks": "Pages moved to a fallback profile, by profile and fallback.",
    "token_refresh_failures": "Token refreshes that failed, by profile and OAuth error.",
    "bounces": "Recipients a delivery status report said bounced (5.x.x), by profile.",
    "bounce_reports_unmatched": "Reports in a bounce mailbox that named no known job, by profile.",
    "callbacks": (
        "POSTs of events to callback URLs, by outcome: delivered, gone (410), retrying, "
        "gave_up (24 h passed), refused (MAILPIPE_CALLBACK_ALLOWED)."
    ),
}
# Seconds. Sends over a pooled connection take milliseconds; a page should be
# accepted within seconds of notify, and anything past a minute is a retry.
HISTOGRAMS: Mapping[str, tuple[str, tuple[float, ...]]] = {
    "send_duration_seconds": (
        "One attempt at sending, from claim to the server's last reply, by profile.",
        (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    ),
    "enqueue_to_accepted_seconds": (
        "From notify to the server accepting the message, by profile.",
        (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0),
    ),
}


@dataclass
class Samples:
    """Counts and observations to write in one Redis round trip."""

    counts: list[tuple[str, Labels, int]] = field(default_factory=list)
    observations: list[tuple[str, Labels, float]] = field(default_factory=list)

    def count(self, name: str, labels: Labels, amount: int = 1) -> Samples:
        if name not in COUNTERS:
            raise ValueError(f"unknown counter {name}")
        self.counts.append((name, labels, amount))
        return self

    def observe(self, name: str, labels: Labels, value: float) -> Samples:
        if name not in HISTOGRAMS:
            raise ValueError(f"unknown histogram {name}")
        self.observations.append((name, labels, value))
        return self


@dataclass(frozen=True)
class HistogramValue:
    buckets: Sequence[tuple[float, int]]  # (upper bound, cumulative count), +Inf last
    total: float
    count: int


class Metrics:
    """Writes samples to Redis, and reads every metric back for the exposition."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def record(self, samples: Samples) -> None:
        # Summed first: a batch's samples of one profile are a few commands, not many.
        counts: Counter[tuple[str, str]] = Counter()
        sums: defaultdict[tuple[str, str], float] = defaultdict(float)
        for name, labels, amount in samples.counts:
            counts[redis_keys.metric(name), _field(labels)] += amount
        for name, labels, value in samples.observations:
            key, base = redis_keys.metric(name), _field(labels)
            bound = next((b for b in HISTOGRAMS[name][1] if value <= b), None)
            counts[key, f"{base}|le={bound if bound is not None else '+Inf'}"] += 1
            counts[key, f"{base}|count"] += 1
            sums[key, f"{base}|sum"] += value
        pipe = self.redis.pipeline(transaction=False)
        for (key, name), amount in counts.items():
            pipe.hincrby(key, name, amount)
        for (key, name), value in sums.items():
            pipe.hincrbyfloat(key, name, value)
        try:
            with redis_errors("metrics"):
                pipe.execute()
        except UnavailableError as exc:
            log.warning("metrics not recorded (%s: %s)", type(exc).__name__, exc)

    def counter(self, name: str) -> dict[tuple[tuple[str, str], ...], int]:
        """Every label set of counter ``name`` with its value."""
        with redis_errors("metrics"):
            raw = self.redis.hgetall(redis_keys.metric(name))
        return {_labels(_text(f)): int(v) for f, v in raw.items()}

    def histogram(self, name: str) -> dict[tuple[tuple[str, str], ...], HistogramValue]:
        """Every label set of histogram ``name``, buckets made cumulative."""
        bounds = HISTOGRAMS[name][1]
        parts: dict[str, dict[str, float]] = {}
        with redis_errors("metrics"):
            raw = self.redis.hgetall(redis_keys.metric(name))
        for raw_field, raw_value in raw.items():
            base, _, part = _text(raw_field).rpartition("|")
            parts.setdefault(base, {})[part] = float(raw_value)
        values = {}
        for base, counts in parts.items():
            running, buckets = 0, []
            for bound in (*bounds, float("inf")):
                label = "+Inf" if bound == float("inf") else str(bound)
                running += int(counts.get(f"le={label}", 0))
                buckets.append((bound, running))
            values[_labels(base)] = HistogramValue(
                buckets=buckets, total=counts.get("sum", 0.0), count=int(counts.get("count", 0))
            )
        return values


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _field(labels: Labels) -> str:
    return json.dumps(sorted(labels.items()), separators=(",", ":"))


def _labels(text: str) -> tuple[tuple[str, str], ...]:
    return tuple((str(k), str(v)) for k, v in json.loads(text))
