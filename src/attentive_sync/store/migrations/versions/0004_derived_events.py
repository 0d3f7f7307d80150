"""Derived loyalty events: what the program's own tables must hold, and the engine's snapshot.

Reference schema (``attentive_sync/sources/SCHEMA.md``):

- ``points_ledger.reward_id`` / ``voucher_code``: a spend that claimed a reward;
- ``points_ledger.rule_name``: an earn that came from an activity rule;
- ``referrals``: one row per referral, complete once ``completed_at`` is set;
- ``program_settings.derived_events_enabled`` (off) and ``approaching_tier_points``.

A table the brand replaced with a view is left alone (its view gains the columns instead).

Engine state:

- ``derived_state``: each customer's tier, segment and balance as last seen, and when the
  two cooled-down events were last sent to them;
- ``derived_progress``: the baseline, the ledger position read so far, the run generation;
- ``derived_referrals_seen``: the completed referrals already turned into events.

Frozen DDL: later schema changes get a new revision, never an edit here.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIME = sa.DateTime(timezone=True)
LEDGER_COLUMNS = ("reward_id", "voucher_code", "rule_name")
SETTINGS_COLUMNS = ("derived_events_enabled", "approaching_tier_points")


def _tables() -> set[str]:
    return set(sa.inspect(op.get_bind()).get_table_names())


def _reference(tables: set[str]) -> None:
    if "points_ledger" in tables:
        with op.batch_alter_table("points_ledger") as batch:
            batch.add_column(sa.Column("reward_id", sa.Integer()))
            batch.add_column(sa.Column("voucher_code", sa.Text()))
            batch.add_column(sa.Column("rule_name", sa.Text()))
    if "program_settings" in tables:
        with op.batch_alter_table("program_settings") as batch:
            batch.add_column(
                sa.Column(
                    "derived_events_enabled",
                    sa.Boolean(),
                    nullable=False,
                    server_default=sa.false(),
                )
            )
            batch.add_column(sa.Column("approaching_tier_points", sa.Integer()))
    views = set(sa.inspect(op.get_bind()).get_view_names())
    if "referrals" not in tables | views:
        op.create_table(
            "referrals",
            sa.Column("referral_id", ROW_ID, autoincrement=False, nullable=False),
            sa.Column("referrer_id", sa.BigInteger(), nullable=False),
            sa.Column("referred_customer_id", sa.BigInteger()),
            sa.Column("referred_name", sa.Text()),
            sa.Column("points_awarded", sa.Integer(), nullable=False),
            sa.Column("created_at", TIME, nullable=False),
            sa.Column("completed_at", TIME),
            sa.PrimaryKeyConstraint("referral_id", name="pk_referrals"),
        )
        op.create_index("ix_referrals_completed_at", "referrals", ["completed_at"])


def _engine_state() -> None:
    op.create_table(
        "derived_state",
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("tier", sa.Text()),
        sa.Column("insights_segment", sa.Text()),
        sa.Column("points_balance", sa.BigInteger(), nullable=False),
        sa.Column("reward_available_at", TIME),
        sa.Column("approaching_tier_at", TIME),
        sa.PrimaryKeyConstraint("customer_id", name="pk_derived_state"),
    )
    op.create_table(
        "derived_progress",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.Column("ledger_entry_id", sa.BigInteger(), nullable=False),
        sa.Column("baseline_at", TIME, nullable=False),
        sa.Column("last_run_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_derived_progress"),
    )
    op.create_table(
        "derived_referrals_seen",
        sa.Column("referral_id", sa.BigInteger(), nullable=False),
        sa.Column("seen_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("referral_id", name="pk_derived_referrals_seen"),
    )


def upgrade() -> None:
    _reference(_tables())
    _engine_state()


def downgrade() -> None:
    for table in ("derived_referrals_seen", "derived_progress", "derived_state"):
        op.drop_table(table)
    tables = _tables()
    if "referrals" in tables:
        op.drop_table("referrals")
    if "program_settings" in tables:
        with op.batch_alter_table("program_settings") as batch:
            for column in reversed(SETTINGS_COLUMNS):
                batch.drop_column(column)
    if "points_ledger" in tables:
        with op.batch_alter_table("points_ledger") as batch:
            for column in reversed(LEDGER_COLUMNS):
                batch.drop_column(column)
