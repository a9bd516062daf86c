"""``columns.InternedRows`` reads back as the list of cells appended to it, and keeps a key once.

An AP's client reports are held this way (collector/kpi/raw.py): each distinct pseudonym once, a
report as the offsets of its pseudonyms. Random runs of appends (cells of keys from a small set, so
that keys repeat, with repeats inside a cell too), undone rows, trims and reorders are compared
with a plain list of the same cells; and inside :class:`Columns`, a cell it cannot hold moves the
column to a list with every row kept, as an integer beyond 64 bits does.
"""

from __future__ import annotations

from array import array

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector.kpi.columns import Columns, InternedRows

SIZE = 3
key_pool = st.lists(st.binary(min_size=SIZE, max_size=SIZE), min_size=1, max_size=6, unique=True)


@st.composite
def operations(draw: st.DrawFn) -> list[tuple[str, bytes]]:
    pool = draw(key_pool)
    cell = st.lists(st.sampled_from(pool), max_size=5).map(b"".join)
    step = st.one_of(cell.map(lambda c: ("append", c)), st.just(("pop", b"")), st.just(("trim", b"")))
    return draw(st.lists(step, max_size=40))


def _keys(cells: list[bytes]) -> set[bytes]:
    return {cell[at : at + SIZE] for cell in cells for at in range(0, len(cell), SIZE)}


def _check(rows: InternedRows, model: list[bytes]) -> None:
    assert list(rows) == model
    assert len(rows) == len(model)
    assert list(rows.cells(0, len(model))) == model and list(rows.cells(1, len(model) - 1)) == model[1:-1]
    for i in range(-len(model), len(model)):
        assert rows[i] == model[i]
    for bad in (len(model), -len(model) - 1):
        with pytest.raises(IndexError):
            rows[bad]
    assert rows.keys_held >= len(_keys(model))  # keys of rows undone may stay: never fewer


@given(operations())
def test_rows_read_back_as_appended_through_pops_and_trims(steps: list[tuple[str, bytes]]) -> None:
    rows, model, appended = InternedRows(SIZE), [], []
    for step, cell in steps:
        if step == "append":
            rows.append(cell)
            model.append(cell)
            appended.append(cell)
        elif step == "pop" and model:
            assert rows.pop() == model.pop()
        elif step == "trim":
            rows.trim()  # a later append must find the keys already held, not add them again
    _check(rows, model)
    assert rows.keys_held == len(_keys(appended))  # each key once, those of rows undone included


@given(operations(), st.randoms(use_true_random=False))
def test_a_reorder_is_the_cells_in_that_order(steps: list[tuple[str, bytes]], random: object) -> None:
    rows, model = InternedRows(SIZE), []
    for step, cell in steps:
        if step == "append":
            rows.append(cell)
            model.append(cell)
    order = list(range(len(model)))
    random.shuffle(order)  # type: ignore[attr-defined]
    taken = rows.take(order)
    _check(taken, [model[i] for i in order])
    extra = model[0] if model else b"abc"
    taken.append(extra)  # an append to the rows taken finds its keys in their table
    assert taken[-1] == extra and taken.keys_held == rows.keys_held + (0 if model else 1)
    _check(rows, model)  # and the rows taken from are as they were


def test_a_key_seen_again_is_not_held_again() -> None:
    for trimmed in (False, True):
        rows = InternedRows(2)
        for _ in range(100):
            rows.append(b"aabbccdd")
            if trimmed:
                rows.trim()
        rows.append(b"ddaaee")
        assert rows.keys_held == 5
        assert rows[0] == b"aabbccdd" and rows[-1] == b"ddaaee" and len(rows) == 101


@pytest.mark.parametrize("odd", ["a,b", b"abcd", 7])
def test_a_cell_it_cannot_hold_moves_the_column_to_a_list_and_keeps_every_row(odd: object) -> None:
    columns: Columns[tuple[int, object]] = Columns(None, [InternedRows(SIZE)])
    columns.append(2, b"abcdef")
    columns.append(1, b"")
    columns.append(3, odd)
    columns.append(4, b"abc")
    assert list(columns) == [(2, b"abcdef"), (1, b""), (3, odd), (4, b"abc")]  # not sealed: as appended
    columns.seal()
    assert list(columns) == [(1, b""), (2, b"abcdef"), (3, odd), (4, b"abc")]


def test_sealed_columns_sort_their_cells_with_their_times() -> None:
    columns: Columns[tuple[int, bytes]] = Columns(None, [InternedRows(SIZE)])
    for ts, cell in ((30, b"abc"), (10, b"defabc"), (20, b""), (10, b"ghi")):
        columns.append(ts, cell)
    columns.seal()
    assert list(columns) == [(10, b"defabc"), (10, b"ghi"), (20, b""), (30, b"abc")]
    assert list(columns.cut(10, 21)) == [(10, b"defabc"), (10, b"ghi"), (20, b"")]
    assert columns[1] == (10, b"ghi")


def test_a_row_that_fails_is_undone_whole() -> None:
    rows = InternedRows(SIZE)
    rows.append(b"abc")
    with pytest.raises(OverflowError):
        rows.append(b"abcd")  # not a run of whole keys
    assert list(rows) == [b"abc"]


def test_a_row_that_fails_midway_is_undone_and_its_new_keys_are_found_again() -> None:
    rows = InternedRows(SIZE)
    rows._members = array("B")  # offsets of one byte: the 87th distinct key's (86 x 3 = 258) overflows
    first = b"".join(bytes([i, 0, 0]) for i in range(80))
    rows.append(first)
    with pytest.raises(OverflowError):
        rows.append(b"".join(bytes([i, 1, 0]) for i in range(10)))  # keys 81 to 90: fails at the 87th
    assert list(rows) == [first]  # the row whole or not at all
    held = rows.keys_held  # the keys it added before failing stay in the table ...
    rows.append(b"".join(bytes([i, 1, 0]) for i in range(5)))  # ... and are found, not added again
    assert rows.keys_held == held and list(rows) == [first, b"".join(bytes([i, 1, 0]) for i in range(5))]
