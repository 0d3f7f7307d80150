"""Run reports whose counts add up, rendered as Markdown for the Prefect UI (and the terminal)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Report:
    """Named counts plus the identities they must satisfy (``total = part + part + ...``)."""

    title: str
    counts: Counter[str] = field(default_factory=Counter)
    identities: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, amount: int = 1) -> None:
        self.counts[name] += amount

    def merge(self, other: Report) -> None:
        self.counts.update(other.counts)
        self.notes.extend(other.notes)
        for name, seconds in other.timings.items():
            self.timings[name] = self.timings.get(name, 0.0) + seconds

    def must_add_up(self, total: str, *parts: str) -> None:
        self.identities.append((total, parts))

    def problems(self) -> list[str]:
        """Identities that do not hold; an empty list means every count is accounted for."""
        out = []
        for total, parts in self.identities:
            summed = sum(self.counts[p] for p in parts)
            if not self._holds(total, parts):
                out.append(f"{total} = {self.counts[total]} but {' + '.join(parts)} = {summed}")
        return out

    def _holds(self, total: str, parts: tuple[str, ...]) -> bool:
        return self.counts[total] == sum(self.counts[p] for p in parts)

    def to_markdown(self) -> str:
        lines = [f"# {self.title}", "", "| count | value |", "|---|---:|"]
        lines += [f"| {name} | {value:,} |" for name, value in self.counts.items()]
        if self.identities:
            lines += ["", "**Counts that add up**", ""]
            for total, parts in self.identities:
                mark = "ok" if self._holds(total, parts) else "MISMATCH"
                lines.append(f"- {total} = {' + '.join(parts)}: {mark}")
        if self.timings:
            lines += ["", "| step | seconds |", "|---|---:|"]
            lines += [f"| {name} | {secs:.2f} |" for name, secs in self.timings.items()]
        if self.notes:
            lines += ["", *[f"- {note}" for note in self.notes]]
        return "\n".join(lines)
