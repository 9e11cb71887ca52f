"""An asyncio front for Postfix's smtp-sink: answers AUTH itself, can delay replies.

smtp-sink is the fastest SMTP sink at hand (about 10k messages/s here) but it
answers any AUTH with "250 Ok", which smtplib rightly refuses (RFC 4954 wants
235). The front answers AUTH XOAUTH2 with 235 (checking the token's shape and
counting logins), forwards everything else byte for byte, and in WAN mode
holds every server reply for ``delay_seconds`` — about the round trip to a
cloud provider. It also counts Message-IDs so duplicates can be found.

    python -m bench.smtp_front --listen 2525 --sink 2526 [--delay 0.02]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import collections
import re
import signal
from dataclasses import dataclass, field

_XOAUTH2 = re.compile(rb"^user=[^\x01]+\x01auth=Bearer [^\x01]+\x01\x01$")
_MESSAGE_ID = re.compile(rb"\r\nMessage-ID:\s*(<[^>]+>)\r\n", re.IGNORECASE)


@dataclass
class Stats:
    logins: int = 0
    bad_logins: int = 0
    message_ids: collections.Counter[bytes] = field(default_factory=collections.Counter)


class Front:
    def __init__(self, sink_port: int, delay_seconds: float = 0.0) -> None:
        self.sink_port = sink_port
        self.delay_seconds = delay_seconds
        self.stats = Stats()

    async def handle(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        sink_in, sink_out = await asyncio.open_connection("127.0.0.1", self.sink_port)
        replies = asyncio.create_task(self._relay_replies(sink_in, client_out))
        try:
            await self._relay_commands(client_in, client_out, sink_out)
        finally:
            sink_out.close()
            await replies
            client_out.close()

    async def _relay_commands(
        self,
        client_in: asyncio.StreamReader,
        client_out: asyncio.StreamWriter,
        sink_out: asyncio.StreamWriter,
    ) -> None:
        # Line by line until AUTH is done, then whole chunks: per-line Python
        # work would make this front, not the sink, the bottleneck.
        while line := await client_in.readline():
            if line[:5].upper() == b"AUTH ":
                await self._reply(client_out, self._auth(line))
                break
            sink_out.write(line)
            await sink_out.drain()
        tail = b""
        while chunk := await client_in.read(65536):
            for match in _MESSAGE_ID.finditer(tail + chunk):
                self.stats.message_ids[match.group(1)] += 1
            tail = chunk[-200:]  # a header split across two reads is still seen once
            sink_out.write(chunk)
            await sink_out.drain()

    def _auth(self, line: bytes) -> bytes:
        parts = line.split()
        try:
            ok = (
                len(parts) == 3
                and parts[1].upper() == b"XOAUTH2"
                and bool(_XOAUTH2.match(base64.b64decode(parts[2], validate=True)))
            )
        except binascii.Error:
            ok = False
        if ok:
            self.stats.logins += 1
            return b"235 2.7.0 Authentication successful\r\n"
        self.stats.bad_logins += 1
        return b"535 5.7.8 Authentication credentials invalid\r\n"

    async def _relay_replies(
        self, sink_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        while line := await sink_in.readline():
            if line.startswith(b"250-AUTH"):
                line = b"250-AUTH XOAUTH2\r\n"
            await self._reply(client_out, line)

    async def _reply(self, client_out: asyncio.StreamWriter, line: bytes) -> None:
        if self.delay_seconds and line[3:4] != b"-":
            await asyncio.sleep(self.delay_seconds)  # one round trip per reply
        client_out.write(line)
        await client_out.drain()


async def serve(listen_port: int, sink_port: int, delay_seconds: float) -> None:
    front = Front(sink_port, delay_seconds)
    server = await asyncio.start_server(front.handle, "127.0.0.1", listen_port, backlog=512)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()
    duplicates = sum(1 for n in front.stats.message_ids.values() if n > 1)
    print(
        f"logins={front.stats.logins} bad_logins={front.stats.bad_logins} "
        f"messages={sum(front.stats.message_ids.values())} "
        f"unique={len(front.stats.message_ids)} duplicated_ids={duplicates}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=int, required=True)
    parser.add_argument("--sink", type=int, required=True)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds added to each reply")
    args = parser.parse_args()
    asyncio.run(serve(args.listen, args.sink, args.delay))


if __name__ == "__main__":
    main()
