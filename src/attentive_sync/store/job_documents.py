"""A queue job's items as one document (``bulk_job_documents``).

A job of an incremental run (or of the attribute writes) carries up to 256 rows of one
queue. Written one ``bulk_job_items`` row per record (three B-trees each), recording them
cost a third of recording the job; one row per job costs one insert. The document keeps,
in request order, each record's customer id, queue seq and attributes (shared attribute
objects once), and gives back exactly the ``JobItem`` values it was made from: a job whose
items are not all rows of its queue with a plain seq as ref is recorded as rows instead.

Nothing needs to find such a job's customers through its items. While the job is
unsettled, the queue rows it carries are ``inflight`` under its id (a lease of that queue
skips their customers; a lease of another queue and a backfill's send checks look for
them there), and when the job could not move every one of them (its run's lease ran out),
it holds its customers itself (``holds.JOB``) until it settles.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import bindparam, insert, select
from sqlalchemy.engine import Connection

from attentive_sync.store.db import json_text, json_value
from attentive_sync.store.job_members import ItemLike
from attentive_sync.store.tables import bulk_job_documents


def document_of(items: Sequence[ItemLike], queue_kind: str) -> str | None:
    """The items as one document, when every one is a row of the ``queue_kind`` queue whose
    ref is its seq written plainly (so it reads back to itself); None otherwise."""
    if not items:
        return None
    records: list[list[int]] = []
    shared: dict[int, int] = {}
    attributes: list[Mapping[str, Any]] = []
    for item in items:
        ref = item.source_ref
        if item.source_kind != queue_kind or not _plain_seq(ref):
            return None
        # The items are alive for the whole call, so an object's id names it.
        which = shared.setdefault(id(item.attributes), len(attributes))
        if which == len(attributes):
            attributes.append(item.attributes)
        records.append([item.customer_id, int(ref), which])
    return json_text(
        {"kind": queue_kind, "attributes": [dict(a) for a in attributes], "records": records}
    )


def _plain_seq(ref: str) -> bool:
    # ASCII digits without a leading zero: ``str(int(ref)) == ref``.
    return ref.isascii() and ref.isdigit() and (ref == "0" or ref[0] != "0")


def decoded(text: str) -> list[tuple[int, str, str, Mapping[str, Any]]]:
    """``(customer_id, source_kind, source_ref, attributes)`` of each record, in order."""
    document = json_value(text)
    kind, shared = document["kind"], document["attributes"]
    return [(cid, kind, str(seq), shared[which]) for cid, seq, which in document["records"]]


def record_in(conn: Connection, job_id: str, text: str) -> None:
    conn.execute(_INSERT, {"job_id": job_id, "records": text})


def of_job(conn: Connection, job_id: str) -> list[tuple[int, str, str, Mapping[str, Any]]] | None:
    """The job's records in request order, or None when it keeps no document."""
    text = conn.execute(_OF_JOB, {"job_id": job_id}).scalar()
    return None if text is None else decoded(text)


# Built once: recording and settling run these per job.
_d = bulk_job_documents.c
_INSERT = insert(bulk_job_documents)
_OF_JOB = select(_d.records).where(_d.job_id == bindparam("job_id"))
