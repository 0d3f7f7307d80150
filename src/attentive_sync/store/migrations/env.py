"""Alembic environment for the state store.

Migrations are written by hand and frozen, so nothing here imports table metadata: a
revision must create the schema it was written for, not whatever the code says today.
Run them through ``attentive_sync.store.db.upgrade`` (or ``attentive-sync db init``),
which hands in an open connection so SQLite gets the same pragmas as the rest of the store
and PostgreSQL holds the advisory lock that keeps two starting workers from racing.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

connection: Connection | None = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "store migrations run through attentive_sync.store.db.upgrade(), "
        "which supplies the database connection"
    )

context.configure(connection=connection, target_metadata=None, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
