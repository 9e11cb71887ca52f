"""This process's copy of each profile's token: kept per grant fingerprint, or not at all."""

from __future__ import annotations

import time

from providers import Token
from worker.credentials.tokens.memory_copy import MemoryCopy


def token(value: str = "t1") -> Token:
    return Token(access_token=value, expires_at=time.time() + 3600)


def test_a_token_is_handed_back_only_for_the_fingerprint_it_was_kept_for() -> None:
    memory, kept = MemoryCopy(), token()
    memory.keep("m365", "fp1", kept)
    assert memory.get("m365", "fp1") is kept
    assert memory.get("m365", "fp2") is None
    assert memory.get("google", "fp1") is None


def test_forget_drops_one_profile_and_clear_drops_all() -> None:
    memory = MemoryCopy()
    memory.keep("m365", "fp", token())
    memory.keep("google", "fp", token("t2"))
    memory.forget("m365")
    assert "m365" not in memory
    assert "google" in memory
    memory.clear()
    assert "google" not in memory


def test_a_disabled_copy_keeps_nothing() -> None:
    memory = MemoryCopy(enabled=False)
    memory.keep("m365", "fp", token())
    assert "m365" not in memory
    assert memory.get("m365", "fp") is None
