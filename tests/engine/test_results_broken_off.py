"""A results file that breaks off mid-download settles none of its records.

The client streams results files; when the connection drops after some lines were read,
the records before the break must not be settled as accepted (nor the rest as missing)
from half a file: every record of the job goes back for a later run.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

from pydantic import SecretStr
from support.program import CONFIG
from support.transports import CutResults

from attentive_sync.attentive import AttentiveClient
from attentive_sync.domain.errors import RecordRejected
from attentive_sync.engine.audience.export import run_incremental
from attentive_sync.engine.delivery.collaborators import direct_waiter, thread_pool_sender
from attentive_sync.engine.mapping import Mapper
from attentive_sync.settings import DEMO_API_KEY, AttentiveSettings
from attentive_sync.sources.loyalty import load_customers
from attentive_sync.store.records import NewDelta


def mappable(runtime, count: int) -> list[int]:
    mapper, found = Mapper(CONFIG), []
    for row in load_customers(runtime.source, range(1, 400)):
        try:
            mapper.map(row, {"vip": True})
        except RecordRejected:
            continue
        found.append(row["customer_id"])
    assert len(found) >= count
    return found[:count]


def test_no_record_is_settled_from_a_results_file_cut_mid_way(runtime, emulator):
    transport = CutResults(limit=1_500)  # a few lines of the job's results, then a drop
    settings = AttentiveSettings(
        api_key=SecretStr(DEMO_API_KEY), base_url=emulator.base_url, backoff_base=0.01
    )
    cutting = dataclasses.replace(runtime, client=AttentiveClient(settings, transport=transport))
    ids, now = mappable(runtime, 20), datetime.now(timezone.utc)
    runtime.store.deltas.enqueue([NewDelta("vip", cid, "enter", now) for cid in ids])

    report = run_incremental(
        cutting, CONFIG, "test", thread_pool_sender(cutting, "test", 1), direct_waiter(cutting, 5.0)
    )

    assert transport.cut == 1, "the results download was not cut"
    assert report.counts["records_sent"] == 20
    assert report.counts["accepted"] == 0 and report.counts["rejected"] == 0
    assert report.counts["retried"] == 20
    assert runtime.store.deltas.counts()["pending"] == 20  # all back for a later run
    assert runtime.store.quarantine.summary() == {}
    assert all(runtime.store.accepted.for_customers([cid]).get(cid, {}) == {} for cid in ids)
    cutting.client.close()
