"""Reference loyalty schema: customers, audiences and members, points ledger, rewards,
tiers, program settings (see ``attentive_sync/sources/SCHEMA.md``).

Frozen DDL: later schema changes get a new revision, never an edit here. A brand that
keeps its loyalty data elsewhere can drop these tables and create views of the same names.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIME = sa.DateTime(timezone=True)
TABLES = (
    "customers",
    "audiences",
    "audience_members",
    "points_ledger",
    "rewards",
    "tiers",
    "program_settings",
)


def _customers() -> None:
    text_columns = (
        "phone", "email", "client_user_id", "shopify_id", "klaviyo_id", "first_name",
        "last_name", "city", "state", "zip", "country",
    )  # fmt: skip
    op.create_table(
        "customers",
        sa.Column("customer_id", ROW_ID, autoincrement=False, nullable=False),
        *(sa.Column(name, sa.Text()) for name in text_columns),
        sa.Column("date_of_birth", sa.Date()),
        sa.Column("enrolled_at", TIME, nullable=False),
        sa.Column("last_activity_at", TIME),
        sa.Column("tier", sa.Text()),
        sa.Column("insights_segment", sa.Text()),
        sa.Column("favorite_categories", sa.Text()),
        sa.PrimaryKeyConstraint("customer_id", name="pk_customers"),
    )


def _audiences() -> None:
    op.create_table(
        "audiences",
        sa.Column("slug", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("slug", name="pk_audiences"),
    )
    op.create_table(
        "audience_members",
        sa.Column("audience_slug", sa.Text(), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("joined_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("audience_slug", "customer_id", name="pk_audience_members"),
        sa.ForeignKeyConstraint(
            ["audience_slug"], ["audiences.slug"], name="fk_audience_members_audience_slug"
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.customer_id"], name="fk_audience_members_customer_id"
        ),
    )
    op.create_index("ix_audience_members_customer_id", "audience_members", ["customer_id"])


def _ledger() -> None:
    op.create_table(
        "points_ledger",
        sa.Column("entry_id", ROW_ID, autoincrement=False, nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("approved_at", TIME),
        sa.PrimaryKeyConstraint("entry_id", name="pk_points_ledger"),
    )
    op.create_index(
        "ix_points_ledger_customer_created", "points_ledger", ["customer_id", "created_at"]
    )


def _program() -> None:
    op.create_table(
        "rewards",
        sa.Column("reward_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("cost_points", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("in_stock", sa.Boolean(), nullable=False),
        sa.Column("actionable", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("reward_id", name="pk_rewards"),
    )
    op.create_table(
        "tiers",
        sa.Column("tier_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("lower_bound", sa.Integer(), nullable=False),
        sa.Column("upper_bound", sa.Integer()),
        sa.PrimaryKeyConstraint("tier_id", name="pk_tiers"),
        sa.UniqueConstraint("name", name="uq_tiers_name"),
    )
    op.create_table(
        "program_settings",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("points_expiry_enabled", sa.Boolean(), nullable=False),
        sa.Column("expiry_period_days", sa.Integer(), nullable=False),
        sa.Column("expiry_notice_days", sa.Integer(), nullable=False),
        sa.Column("reward_reminder_enabled_at", TIME),
        sa.PrimaryKeyConstraint("id", name="pk_program_settings"),
    )


def upgrade() -> None:
    _customers()
    _audiences()
    _ledger()
    _program()


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)
