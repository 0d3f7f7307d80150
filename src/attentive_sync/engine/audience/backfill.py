"""The one-time backfill: page every member of each audience to Attentive, resumably.

Members are read with keyset pagination, so memory stays flat however large the audience.
The checkpoint moves only after every batch of a page has been submitted and its job
recorded, so it never gets ahead of delivery; members a recorded job already carries, or
the quarantine already holds, are skipped on resume, so nothing is sent or parked twice.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from attentive_sync.domain.errors import RecordRejected
from attentive_sync.domain.export_config import ExportConfig
from attentive_sync.domain.users import BulkUser
from attentive_sync.engine.audience.diff import plans_backfill_members
from attentive_sync.engine.delivery.kinds import BackfillMember
from attentive_sync.engine.delivery.submit import Batch, Wire, make_batches
from attentive_sync.engine.mapping import customer_row
from attentive_sync.engine.runtime import Runtime
from attentive_sync.engine.stages import stage
from attentive_sync.engine.wire import WireMapper
from attentive_sync.sources.loyalty import iter_audience_member_pages, load_customers
from attentive_sync.store.jobs import JobItem

KIND = "audience_backfill"
MEMBER = BackfillMember()


@dataclass
class BackfillPage:
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
        for audience in self.config.audiences:
            checkpoint = self.runtime.store.checkpoints.get(self.run_key, audience)
            after = checkpoint.last_customer_id if checkpoint else 0
            self._read[audience] = checkpoint.members_read if checkpoint else 0
            horizon = self._resume_horizon(audience)
            source = self.runtime.source
            for ids in iter_audience_member_pages(source, audience, after, self.page_size):
                yield self._page(audience, ids, resumed=ids[0] <= horizon)

    def _resume_horizon(self, audience: str) -> int:
        """The highest customer id an earlier run of this key sent or parked: pages past it
        were never touched (only the pages from the checkpoint up to it can have been, by
        a run stopped mid-page or one that read ahead), so they skip the resume checks."""
        prefix = MEMBER.ref(self.run_key, audience, 0)[:-1]
        store = self.runtime.store
        return max(
            store.jobs.last_customer_carried(MEMBER.source_kind, prefix),
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

    def _page(self, audience: str, ids: Sequence[int], resumed: bool = True) -> BackfillPage:
        page = BackfillPage(audience, last_customer_id=ids[-1], members_read=len(ids))
        if plans_backfill_members(self.config):
            # Before anything is sent: the membership diff must know whom a job may carry.
            self.runtime.store.sent_members.add(audience, ids)
        refs = {cid: MEMBER.ref(self.run_key, audience, cid) for cid in ids}
        carried: set[str] = set()
        parked: set[str] = set()
        if resumed:
            with stage("resume checks"):
                store = self.runtime.store
                carried = store.jobs.carried(MEMBER.source_kind, list(refs.values()))
                parked = store.quarantine.open_refs(MEMBER.source_kind, list(refs.values()))
        with stage("read customers"):
            rows = {
                row["customer_id"]: row
                for row in load_customers(self.runtime.source, ids, self._fields)
            }
        with stage("map"):
            pairs, parked_now = self._map(audience, ids, rows, refs, carried, parked, page)
        with stage("quarantine"):
            # One transaction for the page's quarantined members, not one each.
            self.runtime.store.quarantine.add_many(parked_now)
        page.quarantined = len(parked_now)
        page.batches = make_batches(pairs, self.config.batch_size)
        return page

    def _map(
        self,
        audience: str,
        ids: Sequence[int],
        rows: dict[int, dict[str, Any]],
        refs: dict[int, str],
        carried: set[str],
        parked: set[str],
        page: BackfillPage,
    ) -> tuple[list[tuple[Wire | BulkUser, JobItem]], list[dict[str, Any]]]:
        pairs: list[tuple[Wire | BulkUser, JobItem]] = []
        parked_now: list[dict[str, Any]] = []
        for cid in ids:
            item = JobItem(cid, MEMBER.source_kind, refs[cid], {audience: True})
            if refs[cid] in carried:
                page.skipped += 1
                continue
            if refs[cid] in parked:
                page.skipped_quarantined += 1
                continue
            try:
                pairs.append((self.mapper.map(customer_row(rows, cid), {audience: True}), item))
            except RecordRejected as exc:
                parked_now.append(
                    {
                        "source_kind": MEMBER.source_kind,
                        "source_ref": item.source_ref,
                        "customer_id": cid,
                        "reason_code": exc.code,
                        "detail": exc.detail,
                        "payload": {"audience": audience},
                    }
                )
        return pairs, parked_now
