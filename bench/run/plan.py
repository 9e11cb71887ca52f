"""What a benchmark run measures (`Plan`), and measuring it: every variant, interleaved.

Repetitions are interleaved so that a slow spell of the machine hits every
variant alike rather than one of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bench.run.baseline_runs import run_baseline
from bench.run.figures import Run
from bench.run.intake_runs import SERVERS, IntakeRun, run_intake
from bench.run.mailpipe_runs import MailpipeSetup, run_mailpipe
from bench.run.processes import Pool
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


def measure(plan: Plan, stores: list[str], tmp: Path) -> Results:
    results = Results()
    n = plan.messages
    with servers(tmp, reply_delay=0.0, token_delay=0.0) as s:
        results.sink = s.sink_name
        for _ in range(plan.repetitions):
            for store in stores:
                run = run_mailpipe(s, tmp, n, MailpipeSetup(store=store, pool=MAIN_POOL))
                results.local.setdefault(f"mailpipe ({store})", []).append(run)
            run = run_mailpipe(s, tmp, n, MailpipeSetup(pool=MAIN_POOL, task_events=True))
            results.local.setdefault("mailpipe (sqlite, task events on)", []).append(run)
            run = run_mailpipe(s, tmp, n, MailpipeSetup(pool=MAIN_POOL, bulk=True))
            results.local.setdefault(BULK, []).append(run)
            for variant in ("ideal", "naive"):
                run = run_baseline(variant, s, tmp, n, MAIN_POOL)
                results.local.setdefault(variant, []).append(run)
        results.scaling[MAIN_POOL] = {
            "mailpipe": results.local["mailpipe (sqlite)"],
            "ideal": results.local["ideal"],
        }
        for _ in range(plan.repetitions):
            for pool in plan.scaling:
                runs = results.scaling.setdefault(pool, {})
                runs.setdefault("mailpipe", []).append(
                    run_mailpipe(s, tmp, n, MailpipeSetup(pool=pool))
                )
                runs.setdefault("ideal", []).append(run_baseline("ideal", s, tmp, n, pool))
        setup = MailpipeSetup(pool=MAIN_POOL, bulk=True, pages=plan.backlog_pages)
        results.behind_backlog = run_mailpipe(s, tmp, plan.backlog_messages, setup)
        results.intake = measure_intake(plan, s, tmp)
        results.relay = measure_relay(s, tmp, plan.repetitions, plan.relay_messages)
        if plan.profile:
            setup = MailpipeSetup(pool=MAIN_POOL, profile_to=tmp / "py-spy.raw")
            results.profiled = run_mailpipe(s, tmp, n, setup)
        for store in stores:
            peak = summarize(results.local[f"mailpipe ({store})"])["rate"]
            for share, name in ((2, "half"), (4, "a quarter")):
                setup = MailpipeSetup(store=store, pool=MAIN_POOL, paced_rate=peak / share)
                results.latency[f"{store}, {name} of the peak"] = [run_mailpipe(s, tmp, n, setup)]
        s.tokens.lifetime_seconds = plan.token_lifetime
        for profiles, pool in plan.token_runs:
            results.tokens.append(
                run_tokens(
                    s,
                    tmp,
                    profiles=profiles,
                    pool=pool,
                    seconds=plan.token_seconds,
                    rate=plan.token_rate,
                    skew=plan.token_skew,
                )
            )
    results.wan = measure_wan(plan, tmp)
    return results


def measure_wan(plan: Plan, tmp: Path) -> dict[str, list[Run]]:
    """WAN mode: replies and the token endpoint delayed, at most WAN_CONNECTIONS connections."""
    wan: dict[str, list[Run]] = {}
    with servers(tmp, reply_delay=WAN_REPLY_DELAY, token_delay=0.15) as s:
        wan_pool = Pool("prefork", WAN_CONNECTIONS)
        for _ in range(plan.repetitions):
            setup = MailpipeSetup(pool=wan_pool, max_connections=WAN_CONNECTIONS)
            wan.setdefault(WAN_SINGLE, []).append(run_mailpipe(s, tmp, plan.wan_messages, setup))
            setup = MailpipeSetup(pool=wan_pool, max_connections=WAN_CONNECTIONS, bulk=True)
            wan.setdefault(BULK, []).append(run_mailpipe(s, tmp, plan.wan_bulk_messages, setup))
            setup = MailpipeSetup(
                pool=wan_pool, max_connections=WAN_CONNECTIONS, bulk=True, pipeline_messages=True
            )
            wan.setdefault(BULK_GROUPED, []).append(
                run_mailpipe(s, tmp, plan.wan_bulk_messages, setup)
            )
            wan.setdefault("naive", []).append(
                run_baseline("naive", s, tmp, plan.wan_messages, wan_pool)
            )
    return wan


def measure_intake(plan: Plan, s: Servers, tmp: Path) -> dict[str, list[IntakeRun]]:
    """mailpipe's HTTP intake and the bare endpoint, repetitions interleaved."""
    runs: dict[str, list[IntakeRun]] = {variant: [] for variant in SERVERS}
    for _ in range(plan.repetitions):
        for variant in SERVERS:
            runs[variant].append(
                run_intake(variant, s, tmp, plan.intake_requests, plan.intake_paced_seconds)
            )
    return runs
