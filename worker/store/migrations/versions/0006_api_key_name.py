"""the API key that made each job

A job made through the HTTP intake records the name of the API key that
made it: a key sees only its own jobs, and idempotency keys are unique per
profile and API key, so that no key can take another's idempotency key first
and have its page answered with the decoy's job. Jobs made without a key
(the CLI, notify(), the relay) keep one idempotency key per profile.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_WITHOUT_API_KEY = sa.text("api_key_name IS NULL")
_WITH_API_KEY = sa.text("api_key_name IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("api_key_name", sa.String(length=64), nullable=True))
        batch.drop_constraint("uq_jobs_profile_idempotency_key", type_="unique")
    # Partial indexes: NULLs never collide in a unique index, and the jobs made
    # without a key must still share one idempotency key per profile.
    op.create_index(
        "uq_jobs_idempotency_key_without_api_key",
        "jobs",
        ["profile", "idempotency_key"],
        unique=True,
        sqlite_where=_WITHOUT_API_KEY,
        postgresql_where=_WITHOUT_API_KEY,
    )
    op.create_index(
        "uq_jobs_idempotency_key_per_api_key",
        "jobs",
        ["profile", "api_key_name", "idempotency_key"],
        unique=True,
        sqlite_where=_WITH_API_KEY,
        postgresql_where=_WITH_API_KEY,
    )


def downgrade() -> None:
    op.drop_index("uq_jobs_idempotency_key_per_api_key", table_name="jobs")
    op.drop_index("uq_jobs_idempotency_key_without_api_key", table_name="jobs")
    # Two keys' jobs may share an idempotency key: theirs are released, as an expired one is.
    op.execute("UPDATE jobs SET idempotency_key = NULL WHERE api_key_name IS NOT NULL")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("api_key_name")
        batch.create_unique_constraint(
            "uq_jobs_profile_idempotency_key", ["profile", "idempotency_key"]
        )
