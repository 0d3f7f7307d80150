"""Loyalty events derived from the program's own tables, for brands with no webhook producer.

Each run diffs the tables against the snapshot the previous run left (``derived_state``)
in set-based SQL, turns what changed into loyalty events (``rules``), and enqueues them in
the loyalty event queue in the same transaction that moves the snapshot (``run``). The
events then go through the one relay every loyalty event takes.
"""

from attentive_sync.engine.derived.run import derive, run_loyalty_changes

__all__ = ["derive", "run_loyalty_changes"]
