"""The chaos itself: worker kills (one at DATA), a database outage, a Redis restart, 429s.

Each fault comes at a fixed share of the producer's progress, so runs compare.
A kill notes which jobs the dead worker held (read from the database once it is
dead), for the recovery times; every crash notes the span in which a send the
sink accepted could have gone unmarked, which is what explains a duplicate.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy

from bench.chaos.db_outage import DatabaseOutage
from bench.chaos.plan import DATA_HOLD_SECONDS, REDIS_DOWN_SECONDS, Plan
from bench.chaos.private_redis import PrivateRedis
from bench.chaos.processes import wait_until
from bench.chaos.producer import Progress
from bench.chaos.sink import ChaosSink, DataHold
from bench.chaos.token_endpoint import FlakyTokenEndpoint
from bench.chaos.workers import Workers, node_of
from worker import redis_keys
from worker.runtime import Runtime
from worker.store import Job, utcnow

# How long the kill at DATA tries to catch a message at DATA whose sender it can
# tell before it settles for an ordinary kill (the run would have to be idle).
DATA_WAIT_SECONDS = 15.0


@dataclass(frozen=True)
class ChaosEvent:
    at: float  # time.time()
    what: str


@dataclass(frozen=True)
class Held:
    job_id: str
    lease_until: float  # time.time() at which its claim's lease ends (no one renews it now)


@dataclass(frozen=True)
class Kill:
    at: float  # time.time() of the SIGKILL
    worker: str  # node name, chaos-N
    held: tuple[Held, ...]  # the jobs it left claimed (status sending), read once it was dead
    at_data: str | None = None  # the Message-ID the sink held at DATA when it was killed

    @property
    def job_ids(self) -> frozenset[str]:
        return frozenset(h.job_id for h in self.held)


@dataclass(frozen=True)
class Crash:
    """A span in which a send accepted by the sink may have gone unmarked.

    A worker killed, or Redis gone (the send mark cannot be written, and the
    workers cancel their running tasks on losing the broker). ``jobs``: the
    jobs it concerns, when known.
    """

    what: str  # "kill", "kill at DATA", "redis restart", "unplanned exit"
    start: float
    end: float
    jobs: frozenset[str] | None = None


class Chaos:
    """Faults at fixed fractions of the producer's progress, noted on a timeline."""

    def __init__(
        self,
        plan: Plan,
        redis_server: PrivateRedis,
        workers: Workers,
        tokens: FlakyTokenEndpoint,
        sink: ChaosSink,
        outage: DatabaseOutage,
        rt: Runtime,
    ) -> None:
        self.plan = plan
        self.redis = redis_server
        self.workers = workers
        self.tokens = tokens
        self.sink = sink
        self.outage = outage
        self.rt = rt
        self.started = time.time()
        self.timeline: list[ChaosEvent] = []
        self.kills: list[Kill] = []
        self.crashes: list[Crash] = []
        self.redis_restarts = 0
        self.db_outage_seconds = 0.0
        self.stored_during_outage = 0  # jobs notify() could store while the database was down
        self._progress: Progress | None = None

    def run(self, progress: Progress) -> None:
        # A killed worker's jobs come back a lease (20 s) and a sweep after the kill, so
        # no outage may fall then: the outages come first, then the kills, each recovery
        # measuring a kill alone. In the full run (100 s of enqueueing) the jobs whose
        # tasks the Redis restart cancelled are back before the first kill; in the quick
        # one a killed worker may still hold some (their lease left is shorter).
        # The 429 burst comes after the last kill: a worker killed while it waits out
        # a Retry-After leaves the profile's token lock behind for token_lock_seconds
        # (120 s at least), every send for that profile waits on it, and that stall
        # would hide everything else this run measures.
        schedule: list[tuple[float, Callable[[], None]]] = [
            (0.02, self.database_outage),
            (0.12, self.restart_redis),
            (0.45, self.kill_worker),
            (0.55, self.kill_at_data),
            (0.65, self.kill_worker),
            (0.95, self.throttle_tokens),
        ]
        self._progress = progress
        for fraction, action in schedule:
            progress.wait_for(fraction)
            action()

    def kill_worker(self) -> None:
        """SIGKILL the oldest worker, preferably while it holds a job (up to 3 s of waiting)."""
        name = self.workers.oldest()
        wait_until(lambda: bool(self._held_by(name)) and not self._refreshing(), 3.0, poll=0.005)
        self._between_token_refreshes()
        self._kill(name)
        self._replace()

    def kill_at_data(self) -> None:
        """SIGKILL the worker whose message is in flight at DATA: the sink holds its 250."""
        # A held message whose sender cannot be told, or that came while a token refresh
        # was in flight (a refresh is slow on a busy machine, and on a 503): catch the
        # next one, for as long as DATA_WAIT_SECONDS, not for a number of messages.
        deadline = time.monotonic() + DATA_WAIT_SECONDS
        while time.monotonic() < deadline:
            hold = self.sink.hold_next_data(DATA_HOLD_SECONDS)
            try:
                name = self._sender_at_data(hold, deadline)
                if name is not None:
                    self._kill(name, at_data=hold.message_id)
            finally:
                self.sink.cancel_hold(hold)  # a 250 now goes nowhere: its client is dead
            if name is not None:
                self._replace()
                return
        self.note("no message caught at DATA: killing the oldest worker instead")
        self.kill_worker()

    def _sender_at_data(self, hold: DataHold, deadline: float) -> str | None:
        """The running worker sending the held message, while the sink still holds it."""
        if not hold.started.wait(max(0.0, deadline - time.monotonic())):
            return None
        query = sqlalchemy.select(Job.worker).where(
            Job.message_id == hold.message_id, Job.status == "sending"
        )
        with self.rt.store.engine.connect() as connection:
            worker = connection.execute(query).scalar()
        name = node_of(worker) if worker else None
        if name is None or not self.workers.is_running(name) or self._refreshing():
            return None
        return name if hold.holding() else None

    def database_outage(self) -> None:
        self.outage.begin()
        started, stored = time.time(), self._stored()
        self.note(f"database outage begins: {self.outage.description}")
        time.sleep(self.plan.db_outage_seconds)
        self.stored_during_outage = self._stored() - stored
        self.outage.end()
        self.db_outage_seconds = time.time() - started
        self.note(
            f"database outage ends after {self.db_outage_seconds:.1f} s "
            f"({self.stored_during_outage} jobs stored meanwhile)"
        )

    def _stored(self) -> int:
        return len(self._progress.job_ids) if self._progress is not None else 0

    def restart_redis(self) -> None:
        self._between_token_refreshes()
        killed = time.time()
        self.redis.kill()
        self.redis_restarts += 1
        self.note("SIGKILL redis-server")
        time.sleep(REDIS_DOWN_SECONDS)
        self.redis.start()
        self.crashes.append(Crash("redis restart", killed, time.time()))
        self.note("redis-server restarted on the same port, AOF replayed")

    def throttle_tokens(self) -> None:
        """Arm a burst of 429s and drop every cached token, so the burst is met at once."""
        self.tokens.throttle_next(6, retry_after_seconds=2)
        for key in self.rt.redis.scan_iter(match=redis_keys.token("*", "*")):
            self.rt.redis.delete(key)
        for profile in self.rt.profiles:
            self.rt.redis.publish(redis_keys.TOKEN_INVALIDATED_CHANNEL, profile.name)
        self.note("token endpoint: the next 6 requests get 429, Retry-After: 2; tokens dropped")

    def worker_exited(self, name: str, code: int, *, noticed_within: float) -> None:
        """A worker died on its own (the supervisor noticed): a crash of unknown jobs."""
        now = time.time()
        self.crashes.append(Crash("unplanned exit", now - noticed_within, now))
        self.note(f"worker {name} exited on its own (exit code {code}): restarting it")

    def note(self, what: str) -> None:
        event = ChaosEvent(time.time(), what)
        self.timeline.append(event)
        print(f"chaos: +{event.at - self.started:5.1f}s {what}", flush=True)

    def _kill(self, name: str, *, at_data: str | None = None) -> None:
        at = time.time()
        pid = self.workers.kill(name)
        held = self._held_by(name)  # nothing of it runs now: this is what it left
        kill = Kill(at, name, held, at_data)
        self.kills.append(kill)
        what = "kill at DATA" if at_data else "kill"
        self.crashes.append(Crash(what, at, at, kill.job_ids))
        where = f" while its message {at_data} was in flight at DATA" if at_data else ""
        self.note(f"SIGKILL worker {name} (process group {pid}){where}, {len(held)} job(s) held")

    def _replace(self) -> None:
        self.workers.start()
        self.note("replacement worker ready")

    def _refreshing(self) -> bool:
        """Some process holds a profile's token-refresh lock (milliseconds; seconds on a 503)."""
        keys = [redis_keys.token_lock(profile.name) for profile in self.rt.profiles]
        return bool(self.rt.redis.exists(*keys))

    def _between_token_refreshes(self, seconds: float = 10.0) -> None:
        """Wait (bounded) until no token refresh is in flight.

        A refresh's single-flight lock outlives a holder killed with it, and a holder
        that loses Redis mid-refresh cannot release it (the AOF brings it back): every
        send of that profile then waits for the lock's TTL, token_lock_seconds (120 s
        at least). That stall is a limitation of its own, not what a kill or the
        Redis restart here measures, so they land between refreshes.
        """
        if not wait_until(lambda: not self._refreshing(), seconds, poll=0.005):
            self.note(f"a token refresh still in flight after {seconds:g} s: going ahead")

    def _held_by(self, node: str) -> tuple[Held, ...]:
        """Jobs claimed by this worker under a live lease: if it is dead, they wait for it.

        A claim whose lease already ran out is no one's: the sweep hands it on anyway.
        """
        query = sqlalchemy.select(Job.id, Job.lease_until).where(
            Job.status == "sending", Job.worker.like(f"{node}@%"), Job.lease_until > utcnow()
        )
        with self.rt.store.engine.connect() as connection:
            rows = connection.execute(query).tuples().all()
        return tuple(Held(job, lease.timestamp() if lease else 0.0) for job, lease in rows)
