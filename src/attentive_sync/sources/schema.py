"""The reference loyalty schema: the tables (or views) the engine reads a program from.

Table and column names are a contract. A brand whose loyalty data lives in another shape
creates SQL views with these names and columns; nothing else in the engine changes.
See ``SCHEMA.md`` beside this module for the meaning of every column.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    false,
)

# RowId: SQLite only aliases the rowid for a column declared exactly INTEGER PRIMARY KEY; a
# BIGINT key would add a second B-tree, doubling the work of seeding ten million ledger rows.
from attentive_sync.store.types import RowId, UtcDateTime

REWARD_KINDS: tuple[str, ...] = (
    "discount_voucher",
    "free_shipping",
    "gift_card",
    "custom",
    "point_slider",
    "free_product_voucher",
    "seamless_free_product",
)
LEDGER_KINDS: tuple[str, ...] = ("earned", "spent", "expired")
LEDGER_STATUSES: tuple[str, ...] = ("pending", "approved", "void")


# Same names as the hand-written migration, so the two can be compared constraint by constraint.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
    }
)

customers = Table(
    "customers",
    metadata,
    Column("customer_id", RowId, primary_key=True, autoincrement=False),
    Column("phone", Text),
    Column("email", Text),
    Column("client_user_id", Text),
    Column("shopify_id", Text),
    Column("klaviyo_id", Text),
    Column("first_name", Text),
    Column("last_name", Text),
    Column("city", Text),
    Column("state", Text),
    Column("zip", Text),
    Column("country", Text),
    Column("date_of_birth", Date),
    Column("enrolled_at", UtcDateTime(), nullable=False),
    Column("last_activity_at", UtcDateTime()),
    Column("tier", Text),
    Column("insights_segment", Text),
    Column("favorite_categories", Text),
)

audiences = Table(
    "audiences",
    metadata,
    Column("slug", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
)

audience_members = Table(
    "audience_members",
    metadata,
    Column("audience_slug", Text, ForeignKey("audiences.slug"), nullable=False),
    Column("customer_id", BigInteger, ForeignKey("customers.customer_id"), nullable=False),
    Column("joined_at", UtcDateTime(), nullable=False),
    # The key order makes "members of one audience, in customer order" an index range scan,
    # which is what keyset pagination walks.
    PrimaryKeyConstraint("audience_slug", "customer_id"),
    Index("ix_audience_members_customer_id", "customer_id"),
)

points_ledger = Table(
    "points_ledger",
    metadata,
    Column("entry_id", RowId, primary_key=True, autoincrement=False),
    Column("customer_id", BigInteger, nullable=False),
    Column("points", Integer, nullable=False),
    Column("kind", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("approved_at", UtcDateTime()),
    # Revision 0004: a spend that claimed a reward, an earn that came from an activity rule.
    Column("reward_id", Integer),
    Column("voucher_code", Text),
    Column("rule_name", Text),
    # Leads with customer_id, so it also serves every per-customer lookup; a separate
    # single-column index would only slow down writes.
    Index("ix_points_ledger_customer_created", "customer_id", "created_at"),
)

rewards = Table(
    "rewards",
    metadata,
    Column("reward_id", Integer, primary_key=True, autoincrement=False),
    Column("title", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("cost_points", Integer, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("in_stock", Boolean, nullable=False),
    Column("actionable", Boolean, nullable=False),
)

tiers = Table(
    "tiers",
    metadata,
    Column("tier_id", Integer, primary_key=True, autoincrement=False),
    Column("name", Text, nullable=False, unique=True),
    Column("position", Integer, nullable=False),
    Column("lower_bound", Integer, nullable=False),
    Column("upper_bound", Integer),
)

program_settings = Table(
    "program_settings",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("points_expiry_enabled", Boolean, nullable=False),
    Column("expiry_period_days", Integer, nullable=False),
    Column("expiry_notice_days", Integer, nullable=False),
    Column("reward_reminder_enabled_at", UtcDateTime()),
    # Revision 0004: events derived from the tables (off by default), and how many points
    # before the next tier a customer is "approaching" it (NULL: no such event).
    Column("derived_events_enabled", Boolean, nullable=False, server_default=false()),
    Column("approaching_tier_points", Integer),
)

referrals = Table(
    "referrals",
    metadata,
    Column("referral_id", RowId, primary_key=True, autoincrement=False),
    Column("referrer_id", BigInteger, nullable=False),
    Column("referred_customer_id", BigInteger),
    Column("referred_name", Text),
    Column("points_awarded", Integer, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("completed_at", UtcDateTime()),
    Index("ix_referrals_completed_at", "completed_at"),
)

# Parents before children: the order to create and fill; reversed, the order to clear.
REFERENCE_TABLES: tuple[Table, ...] = (
    customers,
    audiences,
    audience_members,
    points_ledger,
    rewards,
    tiers,
    program_settings,
    referrals,
)
