"""The chaos itself: worker kills, a Redis restart and a 429 burst, on a timeline.

Each fault comes at a fixed share of the producer's progress, so runs compare;
the timeline's crash times are what explain a duplicate delivery.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy

from bench.chaos.plan import REDIS_DOWN_SECONDS
from bench.chaos.private_redis import PrivateRedis
from bench.chaos.processes import wait_until
from bench.chaos.producer import Progress
from bench.chaos.token_endpoint import FlakyTokenEndpoint
from bench.chaos.workers import Workers
from worker import redis_keys
from worker.runtime import Runtime


@dataclass(frozen=True)
class ChaosEvent:
    at: float  # time.time()
    what: str
    # May cut a send between the server's 250 and the attempt's record: a worker
    # SIGKILLed, or Redis gone (the workers then cancel their running tasks,
    # worker_cancel_long_running_tasks_on_connection_loss).
    crash: bool = False


class Chaos:
    """Faults at fixed fractions of the producer's progress, noted on a timeline."""

    def __init__(
        self, redis_server: PrivateRedis, workers: Workers, tokens: FlakyTokenEndpoint, rt: Runtime
    ) -> None:
        self.redis = redis_server
        self.workers = workers
        self.tokens = tokens
        self.rt = rt
        self.started = time.time()
        self.timeline: list[ChaosEvent] = []
        self.worker_kills = 0
        self.redis_restarts = 0
        self.caught_mid_send = 0  # jobs a killed worker had claimed

    def run(self, progress: Progress) -> None:
        # The 429 burst comes after the last kill: a worker killed while it waits out
        # a Retry-After leaves the profile's token lock behind for token_lock_seconds
        # (120 s at least), every send for that profile waits on it, and that stall
        # would hide everything else this run measures.
        schedule: list[tuple[float, Callable[[], None]]] = [
            (0.15, self.kill_worker),
            (0.35, self.kill_worker),
            (0.55, self.restart_redis),
            (0.70, self.kill_worker),
            (0.80, self.throttle_tokens),
        ]
        for fraction, action in schedule:
            progress.wait_for(fraction)
            action()

    def kill_worker(self) -> None:
        """SIGKILL the oldest worker, preferably while it holds a job (up to 3 s of waiting)."""
        name = self.workers.oldest()
        wait_until(lambda: self._claimed_by(name) > 0, 3.0, poll=0.005)
        pid = self.workers.kill(name)
        self.worker_kills += 1
        caught = self._claimed_by(name)
        self.caught_mid_send += caught
        self.note(
            f"SIGKILL worker {name} (process group {pid}), {caught} job(s) mid-send", crash=True
        )
        self.workers.start()
        self.note("replacement worker ready")

    def throttle_tokens(self) -> None:
        """Arm a burst of 429s and drop every cached token, so the burst is met at once."""
        self.tokens.throttle_next(6, retry_after_seconds=2)
        for key in self.rt.redis.scan_iter(match=redis_keys.token("*", "*")):
            self.rt.redis.delete(key)
        for profile in self.rt.profiles:
            self.rt.redis.publish(redis_keys.TOKEN_INVALIDATED_CHANNEL, profile.name)
        self.note("token endpoint: the next 6 requests get 429, Retry-After: 2; tokens dropped")

    def restart_redis(self) -> None:
        self.redis.kill()
        self.redis_restarts += 1
        self.note("SIGKILL redis-server", crash=True)
        time.sleep(REDIS_DOWN_SECONDS)
        self.redis.start()
        self.note("redis-server restarted on the same port, AOF replayed")

    def note(self, what: str, *, crash: bool = False) -> None:
        event = ChaosEvent(time.time(), what, crash)
        self.timeline.append(event)
        print(f"chaos: +{event.at - self.started:5.1f}s {what}", flush=True)

    def _claimed_by(self, node: str) -> int:
        """Jobs left claimed by a dead worker: they wait for their lease to end."""
        query = "SELECT count(*) FROM jobs WHERE status = 'sending' AND worker LIKE :node"
        with self.rt.store.engine.connect() as connection:
            found = connection.execute(sqlalchemy.text(query), {"node": f"{node}@%"}).scalar()
        return int(found or 0)

    def crash_times(self) -> list[float]:
        return [event.at for event in self.timeline if event.crash]
