"""Saved conversations: one user's chats, their turns with sources, and feedback on each answer.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "conversations",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE")),
        sa.Column("collection", sa.Text, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Text, nullable=False),
        sa.Column("share_token", sa.Text, unique=True),
    )
    op.create_index("conversations_by_user", "conversations", ["user_id", "updated_at"])
    op.create_index("conversations_by_age", "conversations", ["updated_at"])
    op.create_table(
        "conversation_turns",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column(
            "conversation_id",
            sa.Text,
            sa.ForeignKey("conversations.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("question", sa.Text, nullable=False),
        sa.Column("answer", sa.Text, nullable=False),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("sources", sa.Text, nullable=False),
        sa.Column("prompt_chunks", sa.Text, nullable=False),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("rating", sa.Text),
        sa.Column("comment", sa.Text),
        sa.Column("rated_at", sa.Text),
        sa.UniqueConstraint("conversation_id", "position"),
    )
    op.create_index("conversation_turns_by_rating", "conversation_turns", ["rated_at"])
