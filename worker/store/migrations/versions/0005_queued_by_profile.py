"""queued jobs by profile and priority

A worker sending one job also claims other due jobs of the same profile and
priority, oldest first (``Claims.claim_with_queued``): this index finds them
without reading every queued job.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 20:30:00
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_jobs_queued_by_profile",
        "jobs",
        ["profile", "priority", "status", "created_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_queued_by_profile", table_name="jobs")
