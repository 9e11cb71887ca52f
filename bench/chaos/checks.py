"""The verdict: no job lost, duplicates explained, attempts consistent, no secret leaked.

These are the run's pass/fail rules; the exit status follows `Verdict.passed`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from bench.chaos.plan import CRASH_WINDOW_SECONDS
from bench.chaos.records import JobRow
from bench.chaos_sink import Accepted
from tests.leaks import SecretRegistry


@dataclass
class Verdict:
    delivered: int = 0
    failed: int = 0
    not_final: list[str] = field(default_factory=list)
    delivered_unseen: list[str] = field(default_factory=list)
    failed_without_reason: list[str] = field(default_factory=list)
    unexpected_failures: Counter[str] = field(default_factory=Counter)  # reason → jobs
    duplicates: int = 0
    explained: int = 0
    unexplained: list[str] = field(default_factory=list)
    attempts: int = 0
    attempt_problems: list[str] = field(default_factory=list)
    leaks: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return len(self.not_final) + len(self.delivered_unseen) + len(self.failed_without_reason)

    @property
    def passed(self) -> bool:
        return not (self.lost or self.unexplained or self.attempt_problems or self.leaks)


def check_jobs(verdict: Verdict, jobs: list[JobRow], bad: set[str], seen: set[str]) -> None:
    for job in jobs:
        if job.status == "delivered":
            verdict.delivered += 1
            if job.message_id not in seen:
                verdict.delivered_unseen.append(job.id)
        elif job.status == "failed":
            verdict.failed += 1
            if not job.outcome_text:
                verdict.failed_without_reason.append(job.id)
            elif job.id not in bad:
                verdict.unexpected_failures[job.outcome_text] += 1
        else:
            verdict.not_final.append(f"{job.id} ({job.status})")


def check_duplicates(verdict: Verdict, accepted: list[Accepted], crashes: list[float]) -> None:
    """Each copy after the first is explained when the copy before it reached the sink
    at most CRASH_WINDOW_SECONDS before a crash."""
    arrivals: dict[str, list[float]] = {}
    for message in accepted:
        arrivals.setdefault(message.message_id, []).append(message.at)
    for message_id, times in arrivals.items():
        for earlier in sorted(times)[:-1]:
            verdict.duplicates += 1
            if any(0 <= crash - earlier <= CRASH_WINDOW_SECONDS for crash in crashes):
                verdict.explained += 1
            else:
                verdict.unexplained.append(message_id)


def check_attempts(
    verdict: Verdict, jobs: list[JobRow], outcomes: dict[str, list[str]], max_attempts: int
) -> None:
    for job in jobs:
        attempts = outcomes.get(job.id, [])
        verdict.attempts += len(attempts)
        if len(attempts) != job.attempt_count:
            problem = f"attempt_count {job.attempt_count}, {len(attempts)} attempts rows"
            verdict.attempt_problems.append(f"{job.id}: {problem}")
        if job.status == "delivered" and attempts.count("delivered") != 1:
            problem = f"delivered with {attempts.count('delivered')} delivered attempts"
            verdict.attempt_problems.append(f"{job.id}: {problem}")
        gave_up = bool(attempts) and (attempts[-1] == "permanent" or len(attempts) >= max_attempts)
        if job.status == "failed" and not gave_up:
            problem = f"failed after {attempts}, neither permanent nor out of attempts"
            verdict.attempt_problems.append(f"{job.id}: {problem}")


def find_secrets(registry: SecretRegistry, texts: dict[str, str]) -> list[str]:
    """'abcdef… in <where>' for every secret found, shortened so the report leaks nothing."""
    return [
        f"{value[:6]}… in {where}"
        for where, text in texts.items()
        for value in registry.found_in([text])
    ]
