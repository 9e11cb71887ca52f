"""graph bounce cursor

A bounce mailbox read through Microsoft Graph keeps its place as a delta link
(the URL of the next delta query), not as UIDVALIDITY and a UID.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-21 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("bounce_cursors") as batch:
        batch.add_column(sa.Column("delta_link", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("bounce_cursors") as batch:
        batch.drop_column("delta_link")
