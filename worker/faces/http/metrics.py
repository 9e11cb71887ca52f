"""``GET /metrics``: the fleet's counters from Redis, and gauges read from the store and broker.

Counters and histograms are written by every worker process into Redis
(``worker.metrics``), so any ``serve`` process shows the same fleet-wide
totals. Gauges (jobs by status, the oldest due job, queue depth) are read at
scrape time from the database, the system of record, and from the broker.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from worker.errors import MailpipeError
from worker.faces.http.deps import caller, intake
from worker.faces.http.keys import Caller
from worker.faces.profile_status import profile_status
from worker.metrics import COUNTERS, HISTOGRAMS
from worker.queue import CRITICAL_QUEUE, QUEUE, Producer, waiting_messages

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
STATUSES = ("queued", "sending", "delivered", "failed", "bounced")

router = APIRouter()


@router.get("/metrics", response_class=PlainTextResponse)
def metrics(request: Request, who: Annotated[Caller, Depends(caller)]) -> Response:
    """Prometheus text format: jobs, attempts, tokens, latencies, queue depth."""
    body, content_type = exposition(intake(request).runtime)
    return Response(body, media_type=content_type)


class MailpipeCollector(Collector):
    def __init__(self, runtime: Producer) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        up = 1.0
        try:
            yield from self._shared()
            yield from self._store()
            yield from self._profiles()
        except MailpipeError as exc:  # Redis or the database unavailable (a bug still raises)
            log.warning("metrics incomplete: %s", exc)
            up = 0.0
        yield from self._queues()
        yield GaugeMetricFamily(
            "mailpipe_up", "1 when the metrics could read Redis and the database.", value=up
        )

    def _shared(self) -> Iterator[Metric]:
        metrics = self.runtime.metrics
        for name, help_text in COUNTERS.items():
            names = _label_names(name)
            counter = CounterMetricFamily(f"mailpipe_{name}", help_text, labels=names)
            # Every profile's series from 0, so the first failure is an increase
            # that rate() and increase() can see, not a series that appears at 1.
            values = {tuple(v): 0 for v in self._zeros(name)}
            for labels, count in metrics.counter(name).items():
                values[tuple(dict(labels).get(n, "") for n in names)] = count
            for label_values, count in sorted(values.items()):
                counter.add_metric(list(label_values), count)
            yield counter
        for name, (help_text, _) in HISTOGRAMS.items():
            histogram = HistogramMetricFamily(f"mailpipe_{name}", help_text, labels=["profile"])
            for labels, value in sorted(metrics.histogram(name).items()):
                buckets = [(_bound(b), n) for b, n in value.buckets]
                histogram.add_metric([dict(labels).get("profile", "")], buckets, value.total)
            yield histogram

    def _zeros(self, counter: str) -> Iterator[list[str]]:
        for profile in self.runtime.profiles.by_name:
            for extra in _KNOWN_VALUES.get(counter, [()]):
                yield [profile, *extra]

    def _store(self) -> Iterator[Metric]:
        store = self.runtime.store
        counts = store.status_counts()
        jobs = GaugeMetricFamily("mailpipe_jobs", "Jobs by status.", labels=["status"])
        for status in STATUSES:
            jobs.add_metric([status], counts.get(status, 0))
        yield jobs
        oldest = store.oldest_due_queued_at(datetime.now(UTC))
        age = (datetime.now(UTC) - oldest).total_seconds() if oldest else 0.0
        yield GaugeMetricFamily(
            "mailpipe_oldest_queued_job_age_seconds",
            "Age of the oldest job that is due and still queued (0: none).",
            value=max(age, 0.0),
        )

    def _profiles(self) -> Iterator[Metric]:
        healthy = GaugeMetricFamily(
            "mailpipe_profile_healthy",
            "1 when the profile's last token refresh worked, 0 when it failed "
            "(OAuth profiles that have been refreshed).",
            labels=["profile"],
        )
        idle = GaugeMetricFamily(
            "mailpipe_refresh_token_idle_days_left",
            "Days before the IdP's idle limit ends the profile's stored refresh token.",
            labels=["profile"],
        )
        for profile in self.runtime.profiles:
            status = profile_status(self.runtime, profile)
            if status["healthy"] is not None:
                healthy.add_metric([profile.name], 1.0 if status["healthy"] else 0.0)
            refresh = status["refresh_token"]
            if refresh and refresh["idle_days_left"] is not None:
                idle.add_metric([profile.name], refresh["idle_days_left"])
        yield healthy
        yield idle

    def _queues(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "mailpipe_queue_messages", "Task messages waiting on the broker.", labels=["queue"]
        )
        for queue in (CRITICAL_QUEUE, QUEUE):
            depth.add_metric([queue], self._depth(queue))
        yield depth

    def _depth(self, queue: str) -> float:
        # A broker that cannot say shows as 0 here and as down in /readyz.
        return float(waiting_messages(self.runtime.celery, queue) or 0)


def exposition(runtime: Producer) -> tuple[bytes, str]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MailpipeCollector(runtime))
    return generate_latest(registry), CONTENT_TYPE


_KNOWN_VALUES: dict[str, list[tuple[str, ...]]] = {
    "attempts": [(k,) for k in ("delivered", "transient", "auth_rejected", "permanent")],
    "token_requests": [(r,) for r in ("ok", "transient", "permanent")],
    # Label values not known in advance (the IdP's error, the fallback): no zero series.
    "token_refresh_failures": [],
    "fallbacks": [],
}


def _label_names(counter: str) -> list[str]:
    extra = {
        "attempts": ["outcome"],
        "token_requests": ["result"],
        "token_refresh_failures": ["error"],
        "fallbacks": ["fallback"],
    }
    return ["profile", *extra.get(counter, [])]


def _bound(value: float) -> str:
    return "+Inf" if value == float("inf") else repr(value)
