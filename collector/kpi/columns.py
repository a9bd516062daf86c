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

A column whose cells are runs of fixed-size keys that repeat from row to row (an AP's client
reports: the pseudonyms of the clients it saw, most of them seen in the reports before) is an
:class:`InternedRows`: each distinct key is kept once, and a row is the numbers of its keys.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from itertools import islice
from operator import le
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast, overload

T = TypeVar("T")
NAN = float("nan")


def optional(value: float) -> float | None:
    """A float column's value: NaN is how ``None`` is stored."""
    return None if value != value else value


def stored(value: Any) -> float:
    """A float column's cell for ``value`` (``None`` as NaN)."""
    return NAN if value is None else float(value)


class InternedRows:
    """A column whose cells are runs of keys of ``size`` bytes each (``bytes`` of ``size`` x n,
    ``b""`` for none), held as one table of the distinct keys and, per row, their offsets in it.

    Why: an AP's client reports were most of what the KPI process held for a day (about 62 MiB at
    the Brussels scale as one ``bytes`` object a report: 33 bytes of header and 16 a pseudonym).
    A client stays for many reports, so most of a report's pseudonyms are in the one before. Here a
    pseudonym costs 4 bytes a report and 16 once; a report, 4 more. When every client is new at
    every report that is 20 bytes a pseudonym against 16, and 4 a report against 41 (a ``bytes``
    header and its list slot).

    A cell reads back as the ``bytes`` appended (keys in their order, repeats kept). What it cannot
    hold (not ``bytes``, a length not a multiple of ``size``, a table beyond 4 GiB) raises
    OverflowError, which :meth:`Columns.append` answers by moving the column to a list, as for an
    integer beyond 64 bits. While rows are added, a dict finds each key's offset; :meth:`trim` drops
    it (about 110 bytes a distinct key) once an AP's reports are read, and an append after rebuilds it.
    """

    __slots__ = ("_ends", "_index", "_members", "_size", "_table")

    def __init__(self, size: int) -> None:
        self._size = size
        self._table = bytearray()  # the distinct keys, one after the other
        self._index: dict[bytes, int] | None = {}  # key -> its offset in the table, while filling
        self._members = array("I")  # each row's keys, as offsets in the table, row after row
        self._ends = array("I")  # where each row's keys end in _members

    def append(self, cell: bytes) -> None:
        size = self._size
        if cell.__class__ is not bytes or len(cell) % size:
            raise OverflowError(f"an InternedRows cell is bytes of {size} x n, not {cell!r:.60}")
        index = self._index
        if index is None:
            table = self._table
            index = self._index = {bytes(table[at : at + size]): at for at in range(0, len(table), size)}
        members, table = self._members, self._table
        start = len(members)
        try:
            for at in range(0, len(cell), size):
                key = cell[at : at + size]
                offset = index.get(key)
                if offset is None:
                    offset = len(table)
                    members.append(offset)  # first: an offset beyond 32 bits fails before the table grows
                    table += key
                    index[key] = offset
                else:
                    members.append(offset)
            self._ends.append(len(members))
        except BaseException:
            del members[start:]  # the row whole or not at all (a key it added stays, unused)
            raise

    def pop(self) -> bytes:
        """Take the last row off (as a list's ``pop``, which :meth:`Columns.append` undoes a row with)."""
        cell = self[-1]
        self._ends.pop()
        del self._members[self._ends[-1] if self._ends else 0 :]
        return cell

    def trim(self) -> None:
        """Drop the index of the keys: memory only filling needs."""
        self._index = None

    @property
    def keys_held(self) -> int:
        """How many keys the table holds (each distinct key appended, once)."""
        return len(self._table) // self._size

    def take(self, order: Sequence[int]) -> InternedRows:
        """These rows in ``order`` (row numbers), with a copy of the table of keys (rarely made:
        :meth:`Columns.seal` reorders only a read that came out of time order)."""
        out = InternedRows(self._size)
        out._table, out._index = bytearray(self._table), None
        members, ends, taken = self._members, self._ends, out._members
        for row in order:
            taken.extend(members[ends[row - 1] if row else 0 : ends[row]])
            out._ends.append(len(taken))
        return out

    def _cell(self, row: int) -> bytes:
        table, size, ends = self._table, self._size, self._ends
        return b"".join([table[at : at + size] for at in self._members[ends[row - 1] if row else 0 : ends[row]]])

    def __len__(self) -> int:
        return len(self._ends)

    def cells(self, lo: int, hi: int) -> Iterator[bytes]:
        """Rows ``lo`` to ``hi`` (excluded), each made as it is read: what a pass over a cut needs."""
        return map(self._cell, range(lo, hi))

    def __iter__(self) -> Iterator[bytes]:
        return self.cells(0, len(self._ends))

    def __getitem__(self, index: int) -> bytes:
        if index < 0:
            index += len(self._ends)
        if not 0 <= index < len(self._ends):
            raise IndexError("InternedRows index out of range")
        return self._cell(index)


if TYPE_CHECKING:
    Column = array[Any] | list[Any] | InternedRows


class Columns(Sequence[T], Generic[T]):
    """Rows of (time, values...) as columns; ``make(ts, *values)`` is a row's object (``None``:
    the row as a tuple). ``typecodes`` are the value columns' ``array`` type codes, ``"O"`` for a
    column of Python objects (a list), or an empty column object (an :class:`InternedRows`)."""

    __slots__ = ("_columns", "_hi", "_lo", "_make")

    def __init__(self, make: Callable[..., T] | None, typecodes: str | Sequence[str | InternedRows] = "") -> None:
        self._make = make
        self._columns: list[Column] = [array("q")]
        self._columns.extend(
            code if isinstance(code, InternedRows) else [] if code == "O" else array(code) for code in typecodes
        )
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
        columns[0].append(ts)  # type: ignore[arg-type]  # the time column is always an array("q")

    def seal(self) -> None:
        """Sort the rows by time (stable: rows of one instant keep their order), as the pure
        functions expect, and take no more rows; a read that came in order costs one pass. Sealed
        columns and cuts are left as they are."""
        if self._hi >= 0:
            return
        ts = self._columns[0]
        self._hi = len(ts)
        self.trim()
        if all(map(le, ts, islice(ts, 1, None))):
            return
        order = sorted(range(len(ts)), key=ts.__getitem__)
        self._columns = [
            (
                array(c.typecode, map(c.__getitem__, order))
                if isinstance(c, array)
                else c.take(order)
                if isinstance(c, InternedRows)
                else [c[i] for i in order]
            )
            for c in self._columns
        ]

    def trim(self) -> None:
        """Free what only adding rows needs (an :class:`InternedRows`' index of its keys); rows may
        still be added."""
        for column in self._columns:
            if isinstance(column, InternedRows):
                column.trim()

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

    def times(self) -> array[int]:
        """The rows' times, in their order (a copy)."""
        lo, hi = self._bounds()
        return cast("array[int]", self._columns[0])[lo:hi]  # the time column is always an array("q")

    def __len__(self) -> int:
        lo, hi = self._bounds()
        return hi - lo

    def __iter__(self) -> Iterator[T]:
        lo, hi = self._bounds()
        parts = [c.cells(lo, hi) if isinstance(c, InternedRows) else c[lo:hi] for c in self._columns]
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
