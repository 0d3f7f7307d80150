"""Input checks shared by the notice computations: a wrong frame fails with a named column."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd


def require_columns(frame: pd.DataFrame, columns: Iterable[str], name: str) -> None:
    """Raise ValueError naming the frame and every missing column, before any arithmetic runs."""
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ValueError(f"{name} is missing column(s): {', '.join(missing)}")


def flag(series: pd.Series) -> pd.Series:
    """Read a boolean column strictly: NULL, 0 and anything but true/1 count as False.

    ``astype(bool)`` would turn a NULL (NaN) into True and list a reward nobody enabled.
    """
    return series.eq(True)
