"""The secret scan after each test (conftest's ``secrets``) reads all of Redis, not one corner."""

from __future__ import annotations

import redis

from tests.conftest import redis_contents

WRITES = {
    "string": lambda c, k, v: c.set(k, v),
    "hash": lambda c, k, v: c.hset(k, "field", v),
    "list": lambda c, k, v: c.rpush(k, v),
    "set": lambda c, k, v: c.sadd(k, v),
    "zset": lambda c, k, v: c.zadd(k, {v: 1.0}),
    "stream": lambda c, k, v: c.xadd(k, {"field": v}),
}


def test_every_database_and_every_value_type_is_read(redis_url: str) -> None:
    base = redis_url.rsplit("/", 1)[0]
    for n, (kind, write) in enumerate(WRITES.items()):
        client = redis.Redis.from_url(f"{base}/{n * 3}")  # databases 0, 3, ... 15
        write(client, f"key-{kind}", f"value-in-a-{kind}")
        client.close()
    try:
        found = b"\n".join(redis_contents(redis_url))
        assert [k for k in WRITES if f"value-in-a-{k}".encode() not in found] == []
        assert all(f"key-{k}".encode() in found for k in WRITES), "key names are read too"
    finally:
        client = redis.Redis.from_url(redis_url)
        client.flushall()
        client.close()
