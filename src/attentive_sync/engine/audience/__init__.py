"""The audience export: a resumable backfill and the incremental enter/exit deltas."""
