"""Packing users into bulk requests: ``add`` -> full -> drain.

A batch is flushed when it is full, or early when a user already in it changes again, so
two changes for one user never share a request and are applied in order.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class Batcher(Generic[T]):
    max_size: int = 256
    _items: list[T] = field(default_factory=list)
    _keys: set[Hashable] = field(default_factory=set)
    early_flushes: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.max_size <= 256:
            raise ValueError("a batch holds 1..256 users")

    def add(self, key: Hashable, item: T) -> list[list[T]]:
        """Add one item; return the batches this closed (zero, one, or two)."""
        closed: list[list[T]] = []
        if key in self._keys:
            self.early_flushes += 1
            closed.append(self.drain())
        self._items.append(item)
        self._keys.add(key)
        if len(self._items) >= self.max_size:
            closed.append(self.drain())
        return closed

    def drain(self) -> list[T]:
        items, self._items, self._keys = self._items, [], set()
        return items

    def __len__(self) -> int:
        return len(self._items)
