"""Connection reuse: N messages over one pooled connection vs a new connection per message.

Both sides talk STARTTLS + XOAUTH2 to the test SMTP server (aiosmtpd with a
test CA) on loopback; repetitions are interleaved and the ratio of medians is
reported, so the figure holds on a slower or busier machine too.

    python -m bench.smtp_reuse [--messages 1000] [--repetitions 3]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from providers import Token
from tests.fakes.smtp_server import FakeSmtpServer, make_tls
from worker.credentials import OAuthCredentials, Profile, Profiles
from worker.credentials.tokens import CachedToken
from worker.intake import Notification, build_message
from worker.transport.smtp import SmtpPool, SmtpSession
from worker.transport.tls import ssl_context

TOKEN = "bench-access-token"


@dataclass
class StaticCredentials:
    """Stands in for the token cache: the benchmark measures SMTP, not tokens."""

    profiles: Profiles

    def get(self, profile: Profile, *, force: bool = False) -> OAuthCredentials:
        token = Token(access_token=TOKEN, expires_at=time.time() + 3600)
        return OAuthCredentials("alerts@example.test", CachedToken(token, "memory"), None)

    def invalidate(self, name: str, rejected: OAuthCredentials) -> None:
        raise AssertionError("the benchmark token is never rejected")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--repetitions", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tls = make_tls(Path(tmp))
        server = FakeSmtpServer(tls=tls, token_ok=lambda user, token: token == TOKEN)
        server.start()
        try:
            profile = Profile(
                name="bench", provider="generic", host=server.host, port=server.port,
                security="starttls", ca_file=tls.ca_pem, from_email="alerts@example.test",
                auth="oauth", username="alerts@example.test",
            )  # fmt: skip
            credentials = StaticCredentials(Profiles(Path(tmp), {"bench": profile}))
            messages = [
                build_message(
                    Notification(
                        to=("oncall@example.test",), subject=f"bench {i}", text="x" * 1500
                    ),
                    job_id=f"bench-{i}",
                    from_email="alerts@example.test",
                )
                for i in range(args.messages)
            ]
            pooled, fresh = [], []
            for _ in range(args.repetitions):
                pooled.append(run_pooled(credentials, messages))
                fresh.append(run_fresh(credentials, profile, messages))
        finally:
            server.stop()

    def describe(label: str, runs: list[float]) -> str:
        rate = [args.messages / r for r in runs]
        return (
            f"{label:<32} {statistics.median(rate):8.0f} msg/s "
            f"(min {min(rate):.0f}, max {max(rate):.0f})"
        )

    print(
        f"# {args.messages} messages x {args.repetitions} repetitions, interleaved; "
        f"STARTTLS + XOAUTH2 to the aiosmtpd test server; {platform.python_version()}"
    )
    print(describe("one pooled connection", pooled))
    print(describe("new connection per message", fresh))
    print(f"pooled / per-message: {statistics.median(fresh) / statistics.median(pooled):.1f}x")


def run_pooled(credentials: StaticCredentials, messages: list) -> float:  # type: ignore[type-arg]
    pool = SmtpPool(credentials, max_messages_per_connection=len(messages))  # type: ignore[arg-type]
    started = time.perf_counter()
    profile = credentials.profiles.get("bench")
    results = [pool.send(profile, message) for message in messages]
    elapsed = time.perf_counter() - started
    assert all(r.outcome.kind == "delivered" for r in results)
    assert [r.reused_connection for r in results].count(False) == 1, "one connection in all"
    pool.close()
    return elapsed


def run_fresh(credentials: StaticCredentials, profile: Profile, messages: list) -> float:  # type: ignore[type-arg]
    context = ssl_context(profile)
    started = time.perf_counter()
    for message in messages:
        session = SmtpSession(profile, context)
        session.connect()
        session.authenticate(credentials.get(profile))
        assert session.send(message).kind == "delivered"
        session.close()
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
