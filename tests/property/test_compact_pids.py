"""A client report's pseudonyms read back the same whether the KPI process kept them as bytes or text.

``raw.compact_pids`` keeps the pseudonymiser's pseudonyms (lowercase hex of 16 bytes, comma-joined)
as their bytes to halve what a day's client reports cost the KPI process; anything else stays text.
Distinct clients and sessions compare pseudonyms across reports, so a pseudonym must come back as
the same string from either form: random reports of real-looking pseudonyms, odd ones (upper case,
other lengths, empty), repeats and mixtures, made into sets as the engine makes them, equal the
sets of the text as stored.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from collector.kpi.clients import ClientsReport
from collector.kpi.raw import Presence, compact_pids

real = st.binary(min_size=16, max_size=16).map(bytes.hex)
odd = st.one_of(
    real.map(str.upper),
    st.text(alphabet="0123456789abcdef", min_size=1, max_size=40),
    st.text(alphabet=st.characters(exclude_characters=","), max_size=12),
)
reports = st.lists(st.one_of(real, real, odd), max_size=20).map(",".join)


@given(reports)
def test_a_report_reads_back_as_its_stored_text(stored: str) -> None:
    kept = compact_pids(stored)
    made = Presence("ap-1")(7, kept)
    assert made == ClientsReport(7, "ap-1", frozenset(stored.split(",")) if stored else frozenset())


@given(st.lists(real, min_size=1, max_size=12))
def test_the_pseudonymisers_reports_are_kept_as_16_bytes_a_pseudonym(pids: list[str]) -> None:
    kept = compact_pids(",".join(pids))
    assert isinstance(kept, bytes) and len(kept) == 16 * len(pids)
