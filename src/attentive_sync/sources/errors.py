"""Errors raised while reading or seeding the loyalty program's data.

SourceError
└── SeedError         a seed request that cannot be honoured as asked

``UnreadableValue`` is not raised: it stands in a row for one value that cannot be read as
its column's type, so one bad value costs one record, not the whole read.
"""

from __future__ import annotations

from dataclasses import dataclass


class SourceError(Exception):
    """Base class: something about the loyalty source the user must fix."""


class SeedError(SourceError):
    """The seed was refused: the database already holds a program, or the request is invalid."""


@dataclass(frozen=True, slots=True)
class UnreadableValue:
    """A source value that cannot be read as its column's type (``2024-13-45`` in a date
    column stored as text, ``garbage`` in a timestamp column behind a text view).

    ``reason`` says what the value is not (``not a valid date``), never what it is: the
    value may be personal data, and the reason ends up in the quarantine and the logs.
    """

    column: str
    reason: str
