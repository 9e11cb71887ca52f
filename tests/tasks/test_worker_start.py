"""What a worker's main process does once its tasks are loaded, before its pool forks."""

from __future__ import annotations

import gc
from types import SimpleNamespace

import pytest
from celery.signals import worker_init
from pydantic import SecretStr

import tasks.lifecycle


class CurrentSchema:
    def __init__(self, url: str) -> None:
        self.url = url

    def check_schema(self) -> None:
        pass

    def dispose(self) -> None:
        pass


def test_the_worker_moves_what_it_loaded_out_of_the_collectors_way_before_forking(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = SimpleNamespace(database_url=SecretStr("sqlite://"))
    monkeypatch.setattr(tasks.lifecycle, "get_settings", lambda: settings)
    monkeypatch.setattr(tasks.lifecycle, "Database", CurrentSchema)
    gc.unfreeze()
    try:
        worker_init.send(sender=None)
        assert gc.get_freeze_count() > 0, "the imports are frozen: pool children inherit that"
    finally:
        gc.unfreeze()
