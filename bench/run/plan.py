"""What a benchmark run measures (`Plan`), and measuring it: every variant, interleaved.

Repetitions are interleaved so that a slow spell of the machine hits every
variant alike rather than one of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.run.baseline_runs import run_baseline
from bench.run.figures import Run
from bench.run.intake_runs import SERVERS as INTAKE_SERVERS
from bench.run.intake_runs import IntakeRun, run_intake
from bench.run.mailpipe_runs import MailpipeSetup, run_mailpipe
from bench.run.processes import Pool
from bench.run.progress import Progress
from bench.run.relay_runs import SERVERS as RELAY_SERVERS
from bench.run.relay_runs import RelayRun, measure_relay
from bench.run.servers import Servers, servers
from bench.run.tables import summarize
from bench.run.token_runs import TokenRun, run_tokens


@dataclass
class Plan:
    messages: int = 1000
    wan_messages: int = 300
    # The bulk variant is faster: a longer run, so start-up weighs on its rate as on the others.
    wan_bulk_messages: int = 3000
    repetitions: int = 3
    scaling: tuple[Pool, ...] = (Pool("prefork", 1), Pool("prefork", 4), Pool("threads", 4))
    # (profiles, pool) for the token runs, each ``token_seconds`` long at ``token_rate``.
    token_runs: tuple[tuple[int, Pool], ...] = (
        (1, Pool("prefork", 4)),
        (50, Pool("prefork", 1)),
        (50, Pool("prefork", 4)),
    )
    token_lifetime: int = 20
    token_skew: int = 5
    token_seconds: float = 45.0
    token_rate: float = 20.0
    profile: bool = False  # one more drain under py-spy
    # The HTTP intake: requests at the peak (closed loop), then seconds at half of it.
    intake_requests: int = 3000
    intake_paced_seconds: float = 10.0
    # The SMTP relay: messages over each of its 4 connections.
    relay_messages: int = 500
    # Priority: a bulk backlog of this many, and high-priority pages sent meanwhile.
    backlog_messages: int = 10_000
    backlog_pages: int = 60


QUICK = Plan(
    messages=30,
    wan_messages=10,
    wan_bulk_messages=20,
    repetitions=1,
    scaling=(Pool("threads", 2),),
    token_runs=((3, Pool("prefork", 2)),),
    token_lifetime=4,
    token_skew=1,
    token_seconds=7.0,
    token_rate=10.0,
    intake_requests=200,
    intake_paced_seconds=2.0,
    relay_messages=25,
    backlog_messages=120,
    backlog_pages=3,
)
MAIN_POOL = Pool("prefork", 2)
BULK = "mailpipe bulk (sqlite, notify_many)"
# The same with the profile's opt-in pipeline_messages (a content grouped with the next commands).
BULK_GROUPED = "mailpipe bulk, pipeline_messages"
WAN_SINGLE = "mailpipe (sqlite)"
# WAN mode: every SMTP reply comes this much later, over at most this many connections.
WAN_REPLY_DELAY = 0.02
WAN_CONNECTIONS = 3


@dataclass
class Results:
    sink: str = ""
    local: dict[str, list[Run]] = field(default_factory=dict)
    latency: dict[str, list[Run]] = field(default_factory=dict)
    scaling: dict[Pool, dict[str, list[Run]]] = field(default_factory=dict)
    tokens: list[TokenRun] = field(default_factory=list)
    wan: dict[str, list[Run]] = field(default_factory=dict)
    intake: dict[str, list[IntakeRun]] = field(default_factory=dict)
    relay: dict[str, list[RelayRun]] = field(default_factory=dict)
    behind_backlog: Run | None = None
    profiled: Run | None = None


def planned_runs(plan: Plan, stores: list[str], *, latency_only: bool = False) -> int:
    """How many runs ``measure`` (or ``measure_latency``) makes: the progress lines' total."""
    latency = 2 * len(stores)
    if latency_only:
        return len(stores) * plan.repetitions + latency
    local = plan.repetitions * (len(stores) + 4)
    scaling = plan.repetitions * 2 * len(plan.scaling)
    faces = plan.repetitions * (len(INTAKE_SERVERS) + len(RELAY_SERVERS))
    wan = plan.repetitions * 4
    return local + scaling + 1 + faces + int(plan.profile) + latency + len(plan.token_runs) + wan


def _drain(run: Run) -> str:
    if run.latency_ms:
        return f"{run.rate:.0f} msg/s, p99 {run.latency_ms[2]:.0f} ms"
    return f"{run.rate:.0f} msg/s"


def _mailpipe_run(s: Servers, tmp: Path, n: int, setup: MailpipeSetup) -> Callable[[], Run]:
    """One mailpipe run, to be made when called (by ``Progress.run``)."""
    return lambda: run_mailpipe(s, tmp, n, setup)


def measure(plan: Plan, stores: list[str], tmp: Path, progress: Progress) -> Results:
    results = Results()
    n = plan.messages

    def mailpipe(name: str, setup: MailpipeSetup, messages: int = n) -> Run:
        return progress.run(name, lambda: run_mailpipe(s, tmp, messages, setup), _drain)

    def baseline(variant: str, pool: Pool) -> Run:
        return progress.run(
            f"{variant} ({pool})", lambda: run_baseline(variant, s, tmp, n, pool), _drain
        )

    with servers(tmp, reply_delay=0.0, token_delay=0.0) as s:
        results.sink = s.sink_name
        for _ in range(plan.repetitions):
            for store in stores:
                name = f"mailpipe ({store})"
                run = mailpipe(name, MailpipeSetup(store=store, pool=MAIN_POOL))
                results.local.setdefault(name, []).append(run)
            name = "mailpipe (sqlite, task events on)"
            run = mailpipe(name, MailpipeSetup(pool=MAIN_POOL, task_events=True))
            results.local.setdefault(name, []).append(run)
            run = mailpipe(BULK, MailpipeSetup(pool=MAIN_POOL, bulk=True))
            results.local.setdefault(BULK, []).append(run)
            for variant in ("ideal", "naive"):
                results.local.setdefault(variant, []).append(baseline(variant, MAIN_POOL))
        results.scaling[MAIN_POOL] = {
            "mailpipe": results.local["mailpipe (sqlite)"],
            "ideal": results.local["ideal"],
        }
        for _ in range(plan.repetitions):
            for pool in plan.scaling:
                runs = results.scaling.setdefault(pool, {})
                run = mailpipe(f"mailpipe (sqlite, {pool})", MailpipeSetup(pool=pool))
                runs.setdefault("mailpipe", []).append(run)
                runs.setdefault("ideal", []).append(baseline("ideal", pool))
        setup = MailpipeSetup(pool=MAIN_POOL, bulk=True, pages=plan.backlog_pages)
        results.behind_backlog = mailpipe("pages behind a backlog", setup, plan.backlog_messages)
        results.intake = measure_intake(plan, s, tmp, progress)
        results.relay = measure_relay(s, tmp, plan.repetitions, plan.relay_messages, progress)
        if plan.profile:
            setup = MailpipeSetup(pool=MAIN_POOL, profile_to=tmp / "py-spy.raw")
            results.profiled = mailpipe("mailpipe (sqlite) under py-spy", setup)
        results.latency = latency_runs(plan, stores, results.local, s, tmp, progress)
        s.tokens.lifetime_seconds = plan.token_lifetime
        for profiles, pool in plan.token_runs:

            def tokens(profiles: int = profiles, pool: Pool = pool) -> TokenRun:
                return run_tokens(
                    s,
                    tmp,
                    profiles=profiles,
                    pool=pool,
                    seconds=plan.token_seconds,
                    rate=plan.token_rate,
                    skew=plan.token_skew,
                )

            results.tokens.append(
                progress.run(
                    f"tokens, {profiles} profiles ({pool})",
                    tokens,
                    lambda run: f"{run.total} token requests",
                )
            )
    results.wan = measure_wan(plan, tmp, progress)
    return results


def latency_runs(
    plan: Plan,
    stores: list[str],
    drains: dict[str, list[Run]],
    s: Servers,
    tmp: Path,
    progress: Progress,
) -> dict[str, list[Run]]:
    """Each store paced at half and a quarter of its drain rate (the median of ``drains``)."""
    latency: dict[str, list[Run]] = {}
    for store in stores:
        peak = summarize(drains[f"mailpipe ({store})"])["rate"]
        for share, pace in ((2, "half"), (4, "a quarter")):
            name = f"{store}, {pace} of the peak"
            setup = MailpipeSetup(store=store, pool=MAIN_POOL, paced_rate=peak / share)
            latency[name] = [
                progress.run(name, _mailpipe_run(s, tmp, plan.messages, setup), _drain)
            ]
    return latency


def measure_latency(plan: Plan, stores: list[str], tmp: Path, progress: Progress) -> Results:
    """Only what the latency table needs: each store's drain rate, then the paced runs."""
    results = Results()
    with servers(tmp, reply_delay=0.0, token_delay=0.0) as s:
        results.sink = s.sink_name
        for _ in range(plan.repetitions):
            for store in stores:
                name = f"mailpipe ({store})"
                measure = _mailpipe_run(
                    s, tmp, plan.messages, MailpipeSetup(store=store, pool=MAIN_POOL)
                )
                run = progress.run(name, measure, _drain)
                results.local.setdefault(name, []).append(run)
        results.latency = latency_runs(plan, stores, results.local, s, tmp, progress)
    return results


def measure_wan(plan: Plan, tmp: Path, progress: Progress) -> dict[str, list[Run]]:
    """WAN mode: replies and the token endpoint delayed, at most WAN_CONNECTIONS connections."""
    wan: dict[str, list[Run]] = {}
    with servers(tmp, reply_delay=WAN_REPLY_DELAY, token_delay=0.15) as s:
        wan_pool = Pool("prefork", WAN_CONNECTIONS)

        def mailpipe(name: str, messages: int, setup: MailpipeSetup) -> None:
            run = progress.run(f"WAN {name}", lambda: run_mailpipe(s, tmp, messages, setup), _drain)
            wan.setdefault(name, []).append(run)

        for _ in range(plan.repetitions):
            setup = MailpipeSetup(pool=wan_pool, max_connections=WAN_CONNECTIONS)
            mailpipe(WAN_SINGLE, plan.wan_messages, setup)
            setup = MailpipeSetup(pool=wan_pool, max_connections=WAN_CONNECTIONS, bulk=True)
            mailpipe(BULK, plan.wan_bulk_messages, setup)
            setup = MailpipeSetup(
                pool=wan_pool, max_connections=WAN_CONNECTIONS, bulk=True, pipeline_messages=True
            )
            mailpipe(BULK_GROUPED, plan.wan_bulk_messages, setup)
            naive = progress.run(
                "WAN naive",
                lambda: run_baseline("naive", s, tmp, plan.wan_messages, wan_pool),
                _drain,
            )
            wan.setdefault("naive", []).append(naive)
    return wan


def measure_intake(
    plan: Plan, s: Servers, tmp: Path, progress: Progress
) -> dict[str, list[IntakeRun]]:
    """mailpipe's HTTP intake and its yardsticks, repetitions interleaved."""
    runs: dict[str, list[IntakeRun]] = {variant: [] for variant in INTAKE_SERVERS}
    for _ in range(plan.repetitions):
        for variant in INTAKE_SERVERS:

            def intake(variant: str = variant) -> IntakeRun:
                return run_intake(variant, s, tmp, plan.intake_requests, plan.intake_paced_seconds)

            runs[variant].append(
                progress.run(
                    f"HTTP intake, {variant}",
                    intake,
                    lambda run: f"{run.peak.accepted_per_second:.0f} accepted/s at the peak",
                )
            )
    return runs
