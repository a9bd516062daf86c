"""Client pseudonyms: stable per secret and day, unlinkable across days, never showing the MAC."""

from __future__ import annotations

import hashlib
import hmac
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.kpi.pseudonym import NotAMac, PseudonymError, Pseudonymiser, load_secret, normalise_mac
from collector.kpi.windows import NS

SECRET = b"operator-secret-of-32-bytes-long"
DAY = date(2026, 11, 23)
MAC = "02:1a:2b:3c:4d:5e"


def test_same_secret_same_day_gives_the_same_pid_in_two_processes() -> None:
    a, b = Pseudonymiser(SECRET), Pseudonymiser(SECRET)
    assert a.pid(MAC, DAY) == b.pid(MAC, DAY)
    assert a.shared


def test_pid_is_the_documented_hmac() -> None:
    day_key = hmac.digest(SECRET, b"city-telemetry/pid/v1/2026-11-23", hashlib.sha256)
    expected = hmac.digest(day_key, bytes.fromhex("021a2b3c4d5e"), hashlib.sha256)[:16].hex()
    assert Pseudonymiser(SECRET).pid(MAC, DAY) == expected
    assert len(expected) == 32


def test_different_days_or_secrets_give_different_pids() -> None:
    p = Pseudonymiser(SECRET)
    assert p.pid(MAC, DAY) != p.pid(MAC, date(2026, 11, 24))
    assert p.pid(MAC, DAY) != Pseudonymiser(b"another-secret-of-enough-bytes!!").pid(MAC, DAY)


def test_separators_and_case_do_not_matter() -> None:
    p = Pseudonymiser(SECRET)
    forms = ["02:1a:2b:3c:4d:5e", "02-1A-2B-3C-4D-5E", "021A.2B3C.4D5E", "021a2b3c4d5e", " 02:1A:2b:3C:4d:5E "]
    assert len({p.pid(f, DAY) for f in forms}) == 1


def test_the_local_day_decides_the_key() -> None:
    p = Pseudonymiser(SECRET)
    # 2026-11-22 23:30 UTC is 00:30 on the 23rd in Brussels.
    late_evening_utc = 1_795_390_200 * NS
    assert p.pid_at(MAC, late_evening_utc) == p.pid(MAC, DAY)


def test_no_mac_and_no_secret_in_repr_or_refusals() -> None:
    p = Pseudonymiser(SECRET)
    pid = p.pid(MAC, DAY)
    assert isinstance(pid, str)
    for text in (repr(p), str(p), pid):
        assert "021a2b3c4d5e" not in text.replace(":", "").lower()
        assert SECRET.decode() not in text
    refused = p.pid("02:1a:2b:3c:4d", DAY)
    assert isinstance(refused, NotAMac) and refused.reason == "not_a_mac"
    assert "1a" not in refused.detail and "02" not in refused.detail


@pytest.mark.parametrize("text", ["", "02:1a:2b:3c:4d:5g", "02:1a:2b:3c:4d:5e:6f", "hello world!"])
def test_what_is_not_a_mac_is_refused(text: str) -> None:
    assert isinstance(normalise_mac(text), NotAMac)


def test_without_secret_keys_are_random_per_day_and_per_process() -> None:
    a, b = Pseudonymiser(None), Pseudonymiser(None)
    assert not a.shared
    assert a.pid(MAC, DAY) == a.pid(MAC.upper(), DAY)  # stable within the process and the day
    assert a.pid(MAC, DAY) != b.pid(MAC, DAY)


def test_forgetting_a_day_key_makes_its_pids_unrecoverable() -> None:
    p = Pseudonymiser(None)
    before = p.pid(MAC, DAY)
    p.pid(MAC, date(2026, 11, 24))
    assert p.forget_before(date(2026, 11, 24)) == 1
    assert p.pid(MAC, DAY) != before


def test_key_file(tmp_path: Path) -> None:
    key = tmp_path / "pid.key"
    key.write_bytes(SECRET + b"\n")
    assert load_secret(key) == SECRET
    assert Pseudonymiser.from_key_file(key).pid(MAC, DAY) == Pseudonymiser(SECRET).pid(MAC, DAY)
    key.write_bytes(b"short")
    with pytest.raises(PseudonymError, match="5 bytes"):
        load_secret(key)
    with pytest.raises(PseudonymError, match="missing"):
        load_secret(tmp_path / "missing")


def _reference_normalise(text: str) -> bytes | None:
    """The documented rule, written plainly: 12 hex digits once ':', '-', '.', spaces and
    surrounding whitespace are removed, in any case."""
    digits = text.strip().lower().translate(str.maketrans("", "", ":-. "))
    if len(digits) != 12 or any(c not in "0123456789abcdef" for c in digits):
        return None
    return bytes.fromhex(digits)


MAC_LIKE = st.one_of(
    st.binary(min_size=6, max_size=6).map(lambda b: ":".join(f"{x:02x}" for x in b)),
    st.binary(min_size=6, max_size=6).map(lambda b: b.hex().upper()),
    st.text(alphabet="0123456789abcdefABCDEF:-. \t\n\r\x0bg\u0660", max_size=20),
    st.text(max_size=20),
)


@settings(max_examples=500, deadline=None)
@given(MAC_LIKE, st.booleans())
def test_the_fast_path_gives_what_the_documented_rule_and_hmac_give(text: str, shared: bool) -> None:
    """normalise_mac and pid take shortcuts (fromhex on the common form, pre-hashed HMAC pads):
    they must accept exactly what the plain rule accepts and give the library's HMAC bytes."""
    p = Pseudonymiser(SECRET if shared else None)
    expected_raw = _reference_normalise(text)
    got = p.pid(text, DAY)
    if expected_raw is None:
        assert isinstance(got, NotAMac) and isinstance(normalise_mac(text), NotAMac)
    else:
        assert normalise_mac(text) == expected_raw
        day_key = p._day_key(DAY)  # the key pid used (random per day without a secret)
        assert got == hmac.digest(day_key, expected_raw, hashlib.sha256)[:16].hex()


def test_a_forgotten_day_forgets_its_prehashed_key_too() -> None:
    p = Pseudonymiser(None)
    before = p.pid(MAC, DAY)
    assert p.forget_before(date(2026, 11, 24)) == 1
    assert p.pid(MAC, DAY) != before  # a new random key: the old pseudonyms cannot be remade
