"""Errors raised while reading or seeding the loyalty program's data.

SourceError
└── SeedError         a seed request that cannot be honoured as asked
"""

from __future__ import annotations


class SourceError(Exception):
    """Base class: something about the loyalty source the user must fix."""


class SeedError(SourceError):
    """The seed was refused: the database already holds a program, or the request is invalid."""
