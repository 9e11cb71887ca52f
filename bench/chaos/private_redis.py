"""The run's own redis-server, AOF on, and every text it holds for the secret scan.

Killed and restarted mid-run, it must come back with its queues from the AOF;
afterwards its values and the AOF are searched for secrets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import redis

from tests.support import RedisServer


class PrivateRedis(RedisServer):
    """The run's redis-server, AOF on; after a kill, ``start`` replays the AOF."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir()
        super().__init__(directory, aof=True)

    def values(self) -> str:
        """Every key and value in every database, as text (for the secret scan)."""
        texts = []
        for db in range(16):
            client = redis.Redis.from_url(f"{self.url}/{db}")
            texts += [_dump(client, key) for key in client.scan_iter(count=1000)]
            client.close()
        return "\n".join(texts)

    def aof(self) -> str:
        """The AOF holds every write ever made, even to keys deleted since."""
        files = sorted(self.directory.glob("appendonlydir/*"))
        return "\n".join(path.read_bytes().decode(errors="replace") for path in files)


def _dump(client: redis.Redis, key: bytes) -> str:
    kind = client.type(key)
    values: list[Any] = []
    if kind == b"string":
        values = [client.get(key)]
    elif kind == b"hash":
        values = [part for pair in client.hgetall(key).items() for part in pair]
    elif kind == b"list":
        values = client.lrange(key, 0, -1)
    elif kind == b"set":
        values = list(client.smembers(key))
    elif kind == b"zset":
        values = client.zrange(key, 0, -1)
    return " ".join(_text(v) for v in [key, *values] if v)


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value
