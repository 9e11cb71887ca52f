"""claims, sends and pending recipients

Each claim gets its own id (a late writer that lost its lease cannot touch
the new owner's record), sends are counted at the claim (a job that keeps
failing to record cannot be sent forever), and the recipients still to send
after a partial delivery are kept.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claim_id", sa.String(length=32), nullable=True))
        batch_op.add_column(
            sa.Column("sends", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
        batch_op.add_column(sa.Column("pending", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("pending")
        batch_op.drop_column("sends")
        batch_op.drop_column("claim_id")
