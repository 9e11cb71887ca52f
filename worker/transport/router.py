"""The Transport a worker uses: each profile's own (``transport = "smtp" | "graph"``)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from worker.credentials import Credentials
from worker.transport.base import OutgoingMessage, SendResult, Transport


class TransportRouter:
    """Sends each message through the transport its profile names."""

    def __init__(self, credentials: Credentials, transports: Mapping[str, Transport]) -> None:
        self.credentials = credentials
        self.transports = transports

    def send(self, profile_name: str, message: OutgoingMessage) -> SendResult:
        profile = self.credentials.profiles.get(profile_name)
        return self.transports[profile.transport].send(profile_name, message)

    def send_many(
        self, profile_name: str, messages: Sequence[OutgoingMessage]
    ) -> Iterator[SendResult]:
        profile = self.credentials.profiles.get(profile_name)
        return self.transports[profile.transport].send_many(profile_name, messages)

    def close(self) -> None:
        for transport in self.transports.values():
            transport.close()
