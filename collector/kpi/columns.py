"""Readings of one kind held as columns (arrays of numbers), made into objects only while read.

Contract: a :class:`Columns` is a ``Sequence`` of the objects its ``make`` builds from one row of
its columns (a ``Report``, a ``CounterReading``, a tuple...), sorted by time once :meth:`seal` has
run. :meth:`cut` gives the rows of a time range as a view that shares the columns: no copy.
``None`` in a float column is stored as NaN (line protocol cannot carry a NaN, so a stored reading
never is one) and ``make`` turns it back.

Why: the KPI engine reads a whole day back (raw.py). As lists of small frozen dataclasses, each
with its own int and float objects, a stored row cost the KPI process about 400 bytes after the
read and 600 with the day computed, 3 GiB for a Brussels-size day (docs/performance.md, "KPI
process memory"). In columns a row is 8 bytes a value; the pure KPI functions still take sequences
of the same objects, built one at a time as they iterate and dropped after, so none of them
changed. The price is building the objects again on each pass over a device's readings.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from itertools import islice
from operator import le
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

T = TypeVar("T")
if TYPE_CHECKING:
    Column = array[Any] | list[Any]
NAN = float("nan")


def optional(value: float) -> float | None:
    """A float column's value: NaN is how ``None`` is stored."""
    return None if value != value else value


def stored(value: Any) -> float:
    """A float column's cell for ``value`` (``None`` as NaN)."""
    return NAN if value is None else float(value)


class Columns(Sequence[T], Generic[T]):
    """Rows of (time, values...) as columns; ``make(ts, *values)`` is a row's object (``None``:
    the row as a tuple). ``typecodes`` are the value columns' ``array`` type codes, ``"O"`` for a
    column of Python objects (a list)."""

    __slots__ = ("_columns", "_hi", "_lo", "_make")

    def __init__(self, make: Callable[..., T] | None, typecodes: str = "") -> None:
        self._make = make
        self._columns: list[Column] = [array("q")]
        self._columns.extend([] if code == "O" else array(code) for code in typecodes)
        self._lo = 0
        self._hi = -1  # -1: to the end (the columns are still being filled)

    # -- filling (before any cut) -------------------------------------------------------------

    def append(self, ts: int, *values: Any) -> None:
        """One row, in column order. An integer beyond 64 bits (a counter read back as a float
        from a database someone else also writes) moves its column to a list: kept, not refused."""
        if self._hi >= 0:
            raise ValueError("these columns are sealed or a cut: nothing can be added")
        columns = self._columns
        if len(values) != len(columns) - 1:
            raise ValueError(f"{len(columns) - 1} values a row, not {len(values)}")
        done = 0
        try:
            for i, value in enumerate(values, 1):
                try:
                    columns[i].append(value)
                except OverflowError:
                    columns[i] = list(columns[i])
                    columns[i].append(value)
                done = i
        except BaseException:
            for i in range(1, done + 1):  # the row whole or not at all: the columns stay of one length
                columns[i].pop()
            raise
        columns[0].append(ts)

    def seal(self) -> None:
        """Sort the rows by time (stable: rows of one instant keep their order), as the pure
        functions expect, and take no more rows; a read that came in order costs one pass. Sealed
        columns and cuts are left as they are."""
        if self._hi >= 0:
            return
        ts = self._columns[0]
        self._hi = len(ts)
        if all(map(le, ts, islice(ts, 1, None))):
            return
        order = sorted(range(len(ts)), key=ts.__getitem__)
        self._columns = [
            (array(c.typecode, map(c.__getitem__, order)) if isinstance(c, array) else [c[i] for i in order])
            for c in self._columns
        ]

    def share_times(self, known: list[Column]) -> None:
        """Use an equal time column from ``known`` instead of this one (once sealed), else
        add this one to it. The readings of one message (an AP's uptime, clients and both uplink
        counters; a radio's three) share their times: one column of them, not three or four."""
        assert self._hi >= 0, "only sealed columns share their times: an append would change both"
        ts = self._columns[0]
        for other in known:
            if other is ts:
                return
            if len(other) == len(ts) and other == ts:
                self._columns[0] = other
                return
        known.append(ts)

    # -- reading -------------------------------------------------------------------------------

    def _bounds(self) -> tuple[int, int]:
        return self._lo, (len(self._columns[0]) if self._hi < 0 else self._hi)

    def cut(self, from_ns: int, to_ns: int) -> Columns[T]:
        """The rows with ``from_ns <= ts < to_ns``, a view on the same columns (sealed first: a
        time cut needs the rows in time order)."""
        self.seal()
        lo, hi = self._bounds()
        ts = self._columns[0]
        view: Columns[T] = Columns.__new__(Columns)
        view._make = self._make
        view._columns = self._columns
        view._lo = bisect_left(ts, from_ns, lo, hi)
        view._hi = max(view._lo, bisect_left(ts, to_ns, lo, hi))
        return view

    def any_within(self, from_ns: int, to_ns: int) -> bool:
        """Whether a row has ``from_ns <= ts < to_ns`` (sealed first, as :meth:`cut`)."""
        self.seal()
        lo, hi = self._bounds()
        ts = self._columns[0]
        return bisect_left(ts, from_ns, lo, hi) < bisect_left(ts, to_ns, lo, hi)

    def times(self) -> Column:
        """The rows' times, in their order (a copy)."""
        lo, hi = self._bounds()
        return self._columns[0][lo:hi]

    def __len__(self) -> int:
        lo, hi = self._bounds()
        return hi - lo

    def __iter__(self) -> Iterator[T]:
        lo, hi = self._bounds()
        parts = [c[lo:hi] for c in self._columns]
        if self._make is None:
            return zip(*parts, strict=True)  # type: ignore[return-value]  # rows as tuples: T is a tuple type
        return map(self._make, *parts)

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> list[T]: ...

    def __getitem__(self, index: int | slice) -> T | list[T]:
        if isinstance(index, slice):
            return list(self)[index]
        lo, hi = self._bounds()
        if index < 0:
            index += hi - lo
        if not 0 <= index < hi - lo:
            raise IndexError("Columns index out of range")
        row = [c[lo + index] for c in self._columns]
        return tuple(row) if self._make is None else self._make(*row)  # type: ignore[return-value]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Columns | list):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable while filled, compared by content

    def __repr__(self) -> str:
        return f"<Columns of {len(self)} rows>"
