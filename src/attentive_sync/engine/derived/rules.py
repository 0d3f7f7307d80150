"""What a change of state, or a new row, means as loyalty events. Pure: no SQL, no clock.

- A tier change is an upgrade or a downgrade by tier position (``tier_changed`` too when
  selected); getting a first tier is neither, nor is losing the tier.
- A segment change into Loyal, At Risk or Win Back is a move into that segment.
- ``reward_available``: the balance rose past the cost of at least one reward that can be
  offered (enabled, in stock, actionable, of a supported kind); at most once per 7 days.
- ``approaching_tier``: the balance came within the program's threshold of the next tier's
  lower bound; at most once per 7 days.
- Ledger rows and referrals are events of their own, keyed by their row id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from attentive_sync.domain.loyalty.catalogue import EventKey
from attentive_sync.domain.loyalty.selection import EventSelection
from attentive_sync.engine.derived.queries import Tier
from attentive_sync.store.records import NewEvent

COOLDOWN = timedelta(days=7)
ID_PREFIX = "derived"
# The project's words for the insights segments (the same as a platform's relayed events).
SEGMENT_NAMES = {"loyal": "Loyal", "at risk": "At Risk", "win back": "Win Back"}
SEGMENT_KEYS = {
    "Loyal": EventKey.MOVED_TO_LOYAL,
    "At Risk": EventKey.MOVED_TO_AT_RISK,
    "Win Back": EventKey.MOVED_TO_WIN_BACK,
}
STATE_KEYS = (
    EventKey.TIER_CHANGED,
    EventKey.TIER_UPGRADED,
    EventKey.TIER_DOWNGRADED,
    EventKey.MOVED_TO_LOYAL,
    EventKey.MOVED_TO_AT_RISK,
    EventKey.MOVED_TO_WIN_BACK,
    EventKey.REWARD_AVAILABLE,
    EventKey.APPROACHING_TIER,
)
ROW_KEYS = (EventKey.ACTIVITY_COMPLETED, EventKey.REWARD_CLAIMED, EventKey.REFERRAL_COMPLETE)
DERIVED_KEYS = (*ROW_KEYS, *STATE_KEYS)


def segment_name(value: str | None) -> str | None:
    """``at_risk``, ``At-Risk`` and ``At Risk`` are one segment, named ``At Risk``; another
    segment in lower-case slug form is named by its words (``active`` is ``Active``)."""
    if value is None or not value.strip():
        return None
    words = " ".join(value.replace("-", " ").replace("_", " ").casefold().split())
    if words in SEGMENT_NAMES:
        return SEGMENT_NAMES[words]
    return words.title() if value == value.lower() else value.strip()


@dataclass(frozen=True)
class Program:
    """What the rules need of the program: tiers, offerable rewards, the threshold."""

    tiers: Mapping[str, Tier]
    rewards: Sequence[Mapping[str, Any]]  # offerable rewards, cheapest first
    approaching_tier_points: int | None
    selection: EventSelection

    def next_tier(self, name: str | None) -> Tier | None:
        current = self.tiers.get(name) if name is not None else None
        if current is None:
            return None
        above = [t for t in self.tiers.values() if t.position > current.position]
        return min(above, key=lambda t: t.position) if above else None


@dataclass
class Derived:
    """A run's events, and for each customer the cooldown times to record."""

    events: list[NewEvent] = field(default_factory=list)
    reward_available_at: dict[int, datetime] = field(default_factory=dict)
    approaching_tier_at: dict[int, datetime] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, event: NewEvent) -> None:
        self.events.append(event)
        self.count(event.topic)

    def count(self, name: str) -> None:
        self.counts[name] = self.counts.get(name, 0) + 1


def state_event_id(key: EventKey, customer_id: int, generation: int) -> str:
    """One per key, customer and run generation: a re-run of the same generation (after a
    crash before its commit) makes the same ids, and a committed generation never repeats."""
    return f"{ID_PREFIX}:{key.value}:{customer_id}:g{generation}"


def _cooled(last: datetime | None, now: datetime) -> bool:
    return last is None or now - last >= COOLDOWN


def _tier_events(change: Mapping[str, Any], program: Program) -> list[tuple[EventKey, dict]]:
    old, new = change["old_tier"], change["tier"]
    if old is None or new is None or old == new:
        return []
    out: list[tuple[EventKey, dict[str, Any]]] = [
        (EventKey.TIER_CHANGED, {"previous_tier": old, "new_tier": new})
    ]
    before, after = program.tiers.get(old), program.tiers.get(new)
    if before is not None and after is not None and before.position != after.position:
        key = (
            EventKey.TIER_UPGRADED if after.position > before.position else EventKey.TIER_DOWNGRADED
        )
        bounds = {"tier_lower_bound": after.lower_bound, "tier_upper_bound": after.upper_bound}
        out.append((key, {"previous_tier": old, "new_tier": new, **bounds}))
    return out


def _segment_event(change: Mapping[str, Any]) -> tuple[EventKey, dict] | None:
    old, new = segment_name(change["old_segment"]), segment_name(change["insights_segment"])
    if new is None or new == old or new not in SEGMENT_KEYS:
        return None
    return SEGMENT_KEYS[new], {"previous_segment": old, "new_segment": new}


def _reward_event(change: Mapping[str, Any], program: Program) -> dict[str, Any] | None:
    old, new = int(change["old_balance"]), int(change["points_balance"])
    if not any(old < r["cost_points"] <= new for r in program.rewards):
        return None
    affordable = [dict(r) for r in program.rewards if r["cost_points"] <= new]
    return {"available_rewards": affordable, "points_balance": new}


def _within(tier: Tier | None, balance: int, threshold: int) -> bool:
    return tier is not None and 0 < tier.lower_bound - balance <= threshold


def _approaching_event(change: Mapping[str, Any], program: Program) -> dict[str, Any] | None:
    threshold = program.approaching_tier_points
    if threshold is None or change["tier"] is None:
        return None
    upcoming = program.next_tier(change["tier"])
    balance = int(change["points_balance"])
    if upcoming is None or not _within(upcoming, balance, threshold):
        return None
    same_tier = change["old_tier"] == change["tier"]
    if same_tier and _within(upcoming, int(change["old_balance"]), threshold):
        return None  # already within the threshold at the last run
    return {
        "current_tier": change["tier"],
        "next_tier": upcoming.name,
        "points_required": upcoming.lower_bound - balance,
    }


def derive_state_events(
    change: Mapping[str, Any], program: Program, generation: int, now: datetime, out: Derived
) -> None:
    """The events one customer's change of state makes, into ``out``."""
    cid = int(change["customer_id"])
    found: list[tuple[EventKey, dict[str, Any]]] = _tier_events(change, program)
    segment = _segment_event(change)
    if segment is not None:
        found.append(segment)
    reward = _reward_event(change, program)
    if reward is not None:
        if _cooled(change["reward_available_at"], now):
            found.append((EventKey.REWARD_AVAILABLE, reward))
        else:
            out.count("cooldown_suppressed")
    approaching = _approaching_event(change, program)
    if approaching is not None:
        if _cooled(change["approaching_tier_at"], now):
            found.append((EventKey.APPROACHING_TIER, approaching))
        else:
            out.count("cooldown_suppressed")
    for key, properties in found:
        if not program.selection.selects(key):
            out.count("not_selected")
            continue
        payload = {k: v for k, v in properties.items() if v is not None}
        out.add(NewEvent(state_event_id(key, cid, generation), key.value, cid, now, payload))
        if key is EventKey.REWARD_AVAILABLE:
            out.reward_available_at[cid] = now
        elif key is EventKey.APPROACHING_TIER:
            out.approaching_tier_at[cid] = now


def ledger_event(row: Mapping[str, Any]) -> tuple[EventKey, dict[str, Any]]:
    """An activity rule's earn or a reward's spend. A spend whose reward is not in
    ``rewards`` carries no title: the relay quarantines it as an invalid payload."""
    if row["kind"] == "earned":
        return EventKey.ACTIVITY_COMPLETED, {
            "rule_name": row["rule_name"],
            "points_awarded": int(row["points"]),
        }
    claimed = {
        "reward_title": row["title"],
        "reward_type": row["reward_kind"],
        "points_spent": abs(int(row["points"])),
        "voucher_code": row["voucher_code"],
    }
    return EventKey.REWARD_CLAIMED, {k: v for k, v in claimed.items() if v is not None}


def derive_row_events(
    ledger: Sequence[Mapping[str, Any]],
    referrals: Sequence[Mapping[str, Any]],
    selection: EventSelection,
    out: Derived,
) -> None:
    """Events of new ledger rows and newly completed referrals, each keyed by its row."""
    found: list[tuple[EventKey, str, int, datetime, dict[str, Any]]] = []
    for row in ledger:
        key, payload = ledger_event(row)
        entry = f"ledger:{int(row['entry_id'])}"
        found.append((key, entry, int(row["customer_id"]), row["created_at"], payload))
    for row in referrals:
        payload = {
            "referred_customer": (row["referred_name"] or "").strip() or "a friend",
            "points_awarded": int(row["points_awarded"]),
        }
        ref = f"referral:{int(row['referral_id'])}"
        found.append(
            (EventKey.REFERRAL_COMPLETE, ref, int(row["referrer_id"]), row["completed_at"], payload)
        )
    for key, ref, cid, occurred_at, payload in found:
        if not selection.selects(key):
            out.count("not_selected")
            continue
        out.add(NewEvent(f"{ID_PREFIX}:{key.value}:{ref}", key.value, cid, occurred_at, payload))
