"""the profile a job's next attempt goes through (fallback profiles)

A page its own profile cannot deliver moves to the next profile of that
profile's ``fallback`` list: ``via_profile`` names it (NULL: the job's own
profile) and ``via_since`` says when the job moved to it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from worker.store.tables import UtcDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("via_profile", sa.String(64), nullable=True))
        batch.add_column(sa.Column("via_since", UtcDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("via_since")
        batch.drop_column("via_profile")
