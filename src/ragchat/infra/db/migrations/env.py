"""Alembic's entry point for ragchat's migrations: always run through `ragchat.infra.db.migrate`, which
hands over a connection already inside a transaction (so a migration is all or nothing)."""

from __future__ import annotations

from alembic import context

from ragchat.infra.db.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
