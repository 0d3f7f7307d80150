"""The one-time backfill: page every member of the exported audiences to Attentive,
resumably, as one record per customer carrying every exported audience they are in.

The audiences are walked together by customer id with keyset pagination, so memory stays
flat however large they are. The checkpoint moves only after every batch of a page has
been submitted and its job recorded, so it never gets ahead of delivery; records a
recorded job already carries, or the quarantine already holds, are skipped on resume, so
nothing is sent or parked twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from attentive_sync.domain.errors import RecordRejected
from attentive_sync.domain.export_config import ExportConfig
from attentive_sync.domain.users import BulkUser
from attentive_sync.engine.audience.diff import plans_backfill_members
from attentive_sync.engine.delivery.kinds import BackfillMember, by_audience
from attentive_sync.engine.delivery.submit import Batch, Wire, make_batches
from attentive_sync.engine.mapping import customer_row
from attentive_sync.engine.runtime import Runtime
from attentive_sync.engine.stages import stage
from attentive_sync.engine.wire import WireMapper
from attentive_sync.sources.loyalty import (
    iter_audience_member_pages,
    iter_membership_pages,
    load_customers,
)
from attentive_sync.store.jobs import JobItem

KIND = "audience_backfill"
MEMBER = BackfillMember()
# A page: (customer_id, the exported audiences they are in) per customer, ascending.
Entries = Sequence[tuple[int, tuple[str, ...]]]


def walk_key(audiences: Sequence[str]) -> str:
    """What a backfill's checkpoint is kept under: the slug of its one audience, or its
    audiences' slugs joined with ``+`` (a digest of them, were that longer than 200)."""
    key = "+".join(sorted(set(audiences)))
    return key if len(key) <= 200 else "+" + hashlib.sha256(key.encode()).hexdigest()


@dataclass
class BackfillPage:
    # The walk's key: its audience, or its audiences joined with "+".
    audience: str
    last_customer_id: int
    members_read: int
    batches: list[Batch] = field(default_factory=list)
    quarantined: int = 0
    skipped: int = 0
    skipped_quarantined: int = 0


class BackfillPlanner:
    """Turns audience pages into batches; the caller sends them, then ``commit``s the page."""

    def __init__(
        self, runtime: Runtime, config: ExportConfig, run_key: str, page_size: int = 2048
    ) -> None:
        self.runtime = runtime
        self.config = config
        self.run_key = run_key
        self.page_size = page_size
        self.mapper = WireMapper(config)
        self._fields = sorted(config.fields_read())
        self._read: dict[str, int] = {}

    def pages(self) -> Iterator[BackfillPage]:
        audiences = sorted(set(self.config.audiences))
        if not audiences:
            return
        key = walk_key(audiences)
        checkpoint = self.runtime.store.checkpoints.get(self.run_key, key)
        after = checkpoint.last_customer_id if checkpoint else 0
        self._read[key] = checkpoint.members_read if checkpoint else 0
        horizon = self._resume_horizon()
        for entries in self._walk(audiences, after):
            yield self._page(key, entries, resumed=entries[0][0] <= horizon)

    def _walk(self, audiences: list[str], after: int) -> Iterator[Entries]:
        source, size = self.runtime.source, self.page_size
        if len(audiences) > 1:
            yield from iter_membership_pages(source, audiences, after, size)
            return
        (only,) = audiences
        for ids in iter_audience_member_pages(source, only, after, size):
            yield [(cid, (only,)) for cid in ids]

    def _resume_horizon(self) -> int:
        """The highest customer id an earlier run of this key sent or parked: pages past it
        were never touched (only the pages from the checkpoint up to it can have been, by
        a run stopped mid-page or one that read ahead), so they skip the resume checks."""
        prefix = f"{self.run_key}|"
        store = self.runtime.store
        return max(
            store.jobs.last_member_carried(self.run_key),
            store.quarantine.last_customer_parked(MEMBER.source_kind, prefix),
        )

    def members_read(self) -> int:
        """Members read so far across the audiences, runs before a resume included."""
        return sum(self._read.values())

    def commit(self, page: BackfillPage) -> None:
        """Every batch of ``page`` is recorded: move the checkpoint past it."""
        self._read[page.audience] += page.members_read
        self.runtime.store.checkpoints.set(
            self.run_key, page.audience, page.last_customer_id, self._read[page.audience]
        )

    def _page(self, key: str, entries: Entries, resumed: bool = True) -> BackfillPage:
        ids = [cid for cid, _ in entries]
        if plans_backfill_members(self.config):
            # Before anything is sent: the membership diff must know whom a job may carry.
            for audience, members in by_audience(entries).items():
                self.runtime.store.sent_members.add(audience, members)
        records = [
            (cid, ref, audiences)
            for cid, of_customer in entries
            for ref, audiences in MEMBER.refs(self.run_key, cid, of_customer)
        ]
        page = BackfillPage(key, last_customer_id=ids[-1], members_read=len(records))
        carried: set[str] = set()
        parked: set[str] = set()
        if resumed:
            with stage("resume checks"):
                store, refs = self.runtime.store, [ref for _, ref, _ in records]
                carried = store.jobs.carried(MEMBER.source_kind, refs)
                parked = store.quarantine.open_refs(MEMBER.source_kind, refs)
        with stage("read customers"):
            rows = {
                row["customer_id"]: row
                for row in load_customers(self.runtime.source, ids, self._fields)
            }
        with stage("map"):
            pairs, parked_now = self._map(records, rows, carried, parked, page)
        with stage("quarantine"):
            # One transaction for the page's quarantined records, not one each.
            self.runtime.store.quarantine.add_many(parked_now)
        page.quarantined = len(parked_now)
        page.batches = make_batches(pairs, self.config.batch_size)
        return page

    def _map(
        self,
        records: list[tuple[int, str, tuple[str, ...]]],
        rows: dict[int, dict[str, Any]],
        carried: set[str],
        parked: set[str],
        page: BackfillPage,
    ) -> tuple[list[tuple[Wire | BulkUser, JobItem]], list[dict[str, Any]]]:
        pairs: list[tuple[Wire | BulkUser, JobItem]] = []
        parked_now: list[dict[str, Any]] = []
        flags: dict[tuple[str, ...], dict[str, bool]] = {}
        for cid, ref, audiences in records:
            if ref in carried:
                page.skipped += 1
                continue
            if ref in parked:
                page.skipped_quarantined += 1
                continue
            memberships = flags.get(audiences)
            if memberships is None:
                memberships = flags[audiences] = dict.fromkeys(audiences, True)
            item = JobItem(cid, MEMBER.source_kind, ref, memberships)
            try:
                pairs.append((self.mapper.map(customer_row(rows, cid), memberships), item))
            except RecordRejected as exc:
                parked_now.append(
                    {
                        "source_kind": MEMBER.source_kind,
                        "source_ref": ref,
                        "customer_id": cid,
                        "reason_code": exc.code,
                        "detail": exc.detail,
                        "payload": {"audiences": list(audiences)},
                    }
                )
        return pairs, parked_now
