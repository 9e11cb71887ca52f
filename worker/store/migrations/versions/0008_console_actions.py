"""the operator console: its actions, and a failed job's retry budget

``console_actions`` records what an operator did in the console (retry a
failed job, cancel a queued one, check a profile, send a test) and who did
it. ``jobs.retried_after`` holds the attempts a job had made when an operator
last retried it, so the retry budget counts from there.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-14 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from worker.store.tables import UtcDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(
            sa.Column("retried_after", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
    op.create_table(
        "console_actions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("actor", sa.String(200), nullable=True),
        sa.Column("address", sa.String(64), nullable=True),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("job_id", sa.String(32), nullable=True),
        sa.Column("profile", sa.String(64), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
    )
    op.create_index("ix_console_actions_at", "console_actions", ["at"])
    op.create_index("ix_console_actions_job_id", "console_actions", ["job_id"])


def downgrade() -> None:
    op.drop_index("ix_console_actions_job_id", table_name="console_actions")
    op.drop_index("ix_console_actions_at", table_name="console_actions")
    op.drop_table("console_actions")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("retried_after")
