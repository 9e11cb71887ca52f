"""The schema version a worker checks is read without Alembic, and agrees with it."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from worker.errors import ConfigError
from worker.store import database
from worker.store.database import alembic_config, schema_head


def test_schema_head_is_alembics_head() -> None:
    expected = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert schema_head() == expected


def test_two_heads_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a.py").write_text('revision = "a"\ndown_revision = None\n')
    (tmp_path / "b.py").write_text('revision: str = "b"\ndown_revision = "a"\n')
    (tmp_path / "c.py").write_text('revision = "c"\ndown_revision = ("a",)\n')
    monkeypatch.setattr(database, "MIGRATIONS", tmp_path)
    with pytest.raises(ConfigError, match="2 heads"):
        schema_head()
    (tmp_path / "d.py").write_text('revision = "d"\ndown_revision = ("b", "c")\n')  # a merge
    assert schema_head() == "d"
