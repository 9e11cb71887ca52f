"""Token requests over paced runs longer than a token's lifetime, one profile or many.

Tokens are what a naive sender wastes; these runs show mailpipe asks once per
lifetime per profile, whatever the pool.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from pathlib import Path

from bench.run.mailpipe_runs import MailpipeSetup, run_mailpipe
from bench.run.processes import Pool
from bench.run.servers import Servers


@dataclass
class TokenRun:
    profiles: int
    pool: Pool
    seconds: float
    messages: int
    effective_lifetime: float  # the endpoint's lifetime less the skew
    requests: dict[str, list[float]]  # profile -> request times

    @property
    def total(self) -> int:
        return sum(len(times) for times in self.requests.values())

    @property
    def expected_per_profile(self) -> int:
        """One token at the first message, then one per effective lifetime until the last."""
        last_message = self.seconds * (self.messages - 1) / self.messages
        return int(last_message // self.effective_lifetime) + 1

    @property
    def shortest_gap(self) -> float | None:
        gaps = [b - a for times in self.requests.values() for a, b in itertools.pairwise(times)]
        return min(gaps) if gaps else None


def run_tokens(
    s: Servers, tmp: Path, *, profiles: int, pool: Pool, seconds: float, rate: float, skew: int
) -> TokenRun:
    since = time.monotonic()
    setup = MailpipeSetup(
        pool=pool,
        profiles=profiles,
        token_skew_seconds=skew,
        paced_rate=rate,
        messages_per_connection=1,
    )
    n = int(seconds * rate)
    run_mailpipe(s, tmp, n, setup)
    names = [f"bench{i}" for i in range(profiles)]
    return TokenRun(
        profiles=profiles,
        pool=pool,
        seconds=n / rate,
        messages=n,
        effective_lifetime=s.tokens.lifetime_seconds - skew,
        requests={n: [t for t in s.tokens.times.get(n, []) if t >= since] for n in names},
    )
