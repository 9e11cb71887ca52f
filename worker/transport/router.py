"""The Transport a worker uses: each profile's own (``transport = "smtp" | "graph"``)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from worker.credentials import Profile
from worker.transport.base import OutgoingMessage, SendResult, Transport


class TransportRouter:
    """Sends each message through the transport its profile names."""

    def __init__(self, transports: Mapping[str, Transport]) -> None:
        self.transports = transports

    def send(self, profile: Profile, message: OutgoingMessage) -> SendResult:
        return self.transports[profile.transport].send(profile, message)

    def send_many(
        self, profile: Profile, messages: Sequence[OutgoingMessage]
    ) -> Iterator[SendResult]:
        return self.transports[profile.transport].send_many(profile, messages)

    def close(self) -> None:
        for transport in self.transports.values():
            transport.close()
