"""Job holds for the unsettled jobs a lease stops reading record by record.

From this revision, a lease finds the customers of its own queue's unsettled jobs through
the rows those jobs carry in flight (``store/_lease.py``); a job whose rows cannot hold its
customers back holds them itself, under ``job:<job id>``, until it settles. Jobs recorded
before carry no such hold, so every unsettled job of those kinds takes one here, on all of
its customers (its rows in flight hold some of them as well; settling ends the hold).

Frozen: later changes get a new revision, never an edit here.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# The job kinds whose records are queue rows (audience deltas, attribute writes), and how
# long a job's hold lasts at most (Attentive keeps a job two weeks), as of this revision.
KINDS = ("audience_incremental", "loyalty_profile", "reward_reminder", "expiry_notice")
HOLD = timedelta(days=14)


def upgrade() -> None:
    bind = op.get_bind()
    until = datetime.now(timezone.utc) + HOLD
    if bind.dialect.name == "sqlite":
        until = until.replace(tzinfo=None)  # stored as naive UTC text there
    kinds = ", ".join(f"'{kind}'" for kind in KINDS)
    statement = sa.text(
        "INSERT INTO customer_holds (customer_id, holder, reason, until) "
        "SELECT DISTINCT i.customer_id, substr('job:' || j.job_id, 1, 200), 'job', :until "
        "FROM bulk_job_items i JOIN bulk_jobs j ON j.job_id = i.job_id "
        f"WHERE NOT j.settled AND j.kind IN ({kinds})"
    ).bindparams(sa.bindparam("until", type_=sa.DateTime(timezone=True)))
    bind.execute(statement, {"until": until})


def downgrade() -> None:
    op.execute("DELETE FROM customer_holds WHERE reason = 'job'")
