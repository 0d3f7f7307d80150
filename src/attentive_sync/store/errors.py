"""Errors raised by the state store, sorted by what the caller does next.

    StoreError
    ├── InvalidRecordError      the caller passed a record that can never be stored: fix the input
    ├── UnsupportedDatabaseError the URL names a database other than SQLite or PostgreSQL
    ├── SchemaNotReadyError     the database is not at the current schema: run ``db init``
    ├── UnknownJobError         no bulk job with that id was recorded
    └── JobAlreadyRecordedError the bulk job id was recorded before

Database driver errors (connection refused, lock timeouts) are not wrapped: they are
SQLAlchemy's ``OperationalError`` family, which already says what to retry.
"""

from __future__ import annotations


class StoreError(Exception):
    """Base class of every error the store raises on purpose."""


class InvalidRecordError(StoreError, ValueError):
    """A record handed to the store breaks one of its rules (bad action, naive time, ...)."""


class UnsupportedDatabaseError(StoreError, ValueError):
    """The store URL is not a SQLite or PostgreSQL URL."""


class SchemaNotReadyError(StoreError):
    """The database schema is missing or older than this code expects."""


class UnknownJobError(StoreError, LookupError):
    """A bulk job id that the store has never recorded."""


class JobAlreadyRecordedError(StoreError):
    """A bulk job id recorded twice: Attentive never reuses one, so this is a caller bug."""
