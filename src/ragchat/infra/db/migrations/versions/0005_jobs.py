"""Ingestion jobs: uploads are stored as jobs and parsed and embedded in the background.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ingest_jobs",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("collection", sa.Text, nullable=False),
        sa.Column("owner_id", sa.Integer),
        sa.Column("owner_name", sa.Text, nullable=False),
        sa.Column("address", sa.Text),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("started_at", sa.Text),
        sa.Column("finished_at", sa.Text),
        sa.Column("claimed_by", sa.Text),
        sa.Column("heartbeat_at", sa.Text),
    )
    op.create_index("ingest_jobs_by_status", "ingest_jobs", ["status", "created_at"])
    op.create_index("ingest_jobs_by_owner", "ingest_jobs", ["owner_id", "created_at"])
    op.create_table(
        "ingest_job_files",
        sa.Column("job_id", sa.Text, sa.ForeignKey("ingest_jobs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("filename", sa.Text, nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("data", sa.LargeBinary),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("document_id", sa.Text),
        sa.Column("chunks", sa.Integer, nullable=False, server_default="0"),
    )
